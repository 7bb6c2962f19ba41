//! Simulator scenarios for deployment dissemination (`hearsay_deploy::testing`): a deploy
//! reaches a thousand nodes through rumor pushes and anti-entropy, crashed nodes that restart
//! with their old set and late joiners converge too, concurrent deploys of one name settle on
//! one winner everywhere, and push traffic stays bounded. Virtual clock, reproducible by seed
//! (`HEARSAY_SIM_SEED`).

use hearsay_deploy::testing::{simulate, SimConfig, SimReport};
use std::time::Duration;

fn seed(default: u64) -> u64 {
    let seed = std::env::var("HEARSAY_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    eprintln!("sim seed = {seed} (replay with HEARSAY_SIM_SEED={seed})");
    seed
}

fn print(label: &str, c: &SimConfig, r: &SimReport) {
    println!(
        "{label}: n={} crashed={} joiners={} fanout={} interval={:?}\n  \
         converged {:?} after the deploy; joiners {:?} after joining; restarted {:?} after \
         restarting; run {:?}\n  \
         messages {} (pushes {}, sync requests {}, sync replies {}, pushbacks {}); \
         max per node sent {} received {}; learned by push {}, by sync {}",
        c.nodes,
        c.crashed,
        c.joiners,
        c.fanout,
        c.interval,
        r.converged,
        r.joiners_converged,
        r.restarted_converged,
        r.elapsed,
        r.messages,
        r.pushes,
        r.sync_requests,
        r.sync_replies,
        r.pushbacks,
        r.max_sent,
        r.max_received,
        r.learned_by_push,
        r.learned_by_sync,
    );
}

/// Every group reached the winner, within bounds far above the expected figures (a rumor
/// takes well under a second; anti-entropy a few intervals at worst).
fn assert_converged(c: &SimConfig, r: &SimReport) {
    let bound = 6 * c.interval;
    let converged = r
        .converged
        .expect("every node that stayed up holds the deployment");
    assert!(converged <= bound, "steady nodes took {converged:?}");
    let joiners = r.joiners_converged.expect("every joiner holds it");
    assert!(joiners <= bound, "joiners took {joiners:?}");
    let restarted = r
        .restarted_converged
        .expect("every restarted node holds it");
    assert!(restarted <= bound, "restarted nodes took {restarted:?}");
    assert!(r.all_agree, "every node up ends with the same set");
}

#[test]
fn a_deploy_reaches_a_thousand_nodes_despite_crashes_and_joiners() {
    let c = SimConfig {
        seed: seed(1),
        ..SimConfig::default()
    };
    assert_eq!((c.nodes, c.crashed, c.joiners), (1000, 50, 50));
    let r = simulate(&c);
    print("single deploy", &c, &r);
    assert_converged(&c, &r);
    // Each node pushes a record it newly learned to `fanout` peers once: one record, so at
    // most fanout pushes per node that learned it.
    let learners = (c.nodes + c.joiners) as u64;
    assert!(
        r.pushes <= c.fanout as u64 * learners,
        "{} pushes for {learners} learners",
        r.pushes
    );
    assert!(
        r.learned_by_push > r.learned_by_sync,
        "the rumor does most of the work"
    );
    // No node is a hot spot: a few pushes, one sync per interval, and first contacts.
    assert!(r.max_sent <= 60 && r.max_received <= 60, "{r:?}");
}

#[test]
fn concurrent_deploys_of_one_name_settle_on_one_winner_everywhere() {
    let c = SimConfig {
        seed: seed(2),
        concurrent: true,
        ..SimConfig::default()
    };
    let r = simulate(&c);
    print("two concurrent deploys", &c, &r);
    // Convergence is measured on the winner's id: every node ends holding that record.
    assert_converged(&c, &r);
    let learners = (c.nodes + c.joiners) as u64;
    assert!(
        r.pushes <= 2 * c.fanout as u64 * learners,
        "{} pushes: each node learns at most both records",
        r.pushes
    );
}

#[test]
fn without_failures_the_rumor_alone_reaches_nearly_everyone() {
    let c = SimConfig {
        seed: seed(3),
        crashed: 0,
        joiners: 0,
        ..SimConfig::default()
    };
    let r = simulate(&c);
    print("no failures", &c, &r);
    assert_converged(&c, &r);
    // Push-once with fanout 3 leaves about 5% uninformed; anti-entropy catches them.
    assert!(r.learned_by_push >= (c.nodes as u64) * 85 / 100, "{r:?}");
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let c = SimConfig {
        nodes: 200,
        crashed: 10,
        joiners: 10,
        seed: seed(4),
        ..SimConfig::default()
    };
    let (a, b) = (simulate(&c), simulate(&c));
    assert_eq!(a, b);
    let other = simulate(&SimConfig {
        seed: c.seed + 1,
        ..c.clone()
    });
    assert_ne!(a, other);
}

#[test]
fn a_small_cluster_converges_too() {
    let c = SimConfig {
        nodes: 3,
        crashed: 1,
        joiners: 1,
        seed: seed(5),
        latency: (Duration::from_millis(1), Duration::from_millis(5)),
        ..SimConfig::default()
    };
    let r = simulate(&c);
    print("three nodes", &c, &r);
    assert_converged(&c, &r);
}
