//! Simulator scenarios for the membership core: joins, crash detection, refutation, partitions,
//! graceful leaves and lossy networks, all on a virtual clock and reproducible by seed.

use hearsay_swim::config::suspicion_timeout;
use hearsay_swim::testing::Sim;
use hearsay_swim::wire::NodeStateKind;
use hearsay_swim::{Config, Event};
use std::time::Duration;

/// The seed for a scenario: `HEARSAY_SIM_SEED` overrides the default. Printed so that a failing
/// run (whose output cargo shows) can be replayed.
fn seed(default: u64) -> u64 {
    let seed = std::env::var("HEARSAY_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    eprintln!("sim seed = {seed} (replay with HEARSAY_SIM_SEED={seed})");
    seed
}

fn name(i: usize) -> String {
    format!("node-{i}")
}

/// Starts `n` LAN nodes that all join node 0, staggered by 10 ms, and waits until every node
/// sees all `n` alive.
fn converged_cluster(seed: u64, n: usize, tweak: impl Fn(&mut Config) + Copy) -> Sim {
    let mut sim = Sim::new(seed);
    for i in 0..n {
        sim.add_node(&name(i), tweak);
        if i > 0 {
            sim.join(i, 0);
        }
        sim.run_for(Duration::from_millis(10));
    }
    let ok = sim.run_until_pred(Duration::from_millis(100), Duration::from_secs(120), |s| {
        (0..n).all(|i| s.alive_count(i) == n)
    });
    assert!(ok, "cluster of {n} did not converge; seed {seed}");
    sim
}

fn failed_events(sim: &Sim, observer: usize, subject: &str) -> usize {
    sim.nodes[observer]
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::MemberFailed(m) if m.name == subject))
        .count()
}

#[test]
fn hundred_nodes_join_and_converge() {
    let seed = seed(1);
    let sim = converged_cluster(seed, 100, |_| {});
    for i in 0..100 {
        assert_eq!(sim.alive_count(i), 100, "node {i} view; seed {seed}");
        let joined = sim.nodes[i]
            .events
            .iter()
            .filter(|(_, e)| matches!(e, Event::MemberJoined(_)))
            .count();
        assert_eq!(
            joined, 100,
            "node {i} saw each member join exactly once; seed {seed}"
        );
    }
    eprintln!(
        "100 nodes converged after {:?} of virtual time",
        sim.elapsed()
    );
}

#[test]
fn crashed_node_is_declared_dead_by_every_member_within_the_formula() {
    let seed = seed(2);
    let n = 20;
    let mut sim = converged_cluster(seed, n, |_| {});
    let cfg = Config::lan("x", hearsay_swim::testing::addr_of(0));
    // memberlist: the suspicion timeout starts at max = SuspicionMaxTimeoutMult * min and only
    // shrinks; the first suspicion needs a probe of the node, which every member makes within
    // one probe interval plus its own timeout; dissemination of the verdict takes gossip rounds.
    let min = suspicion_timeout(cfg.suspicion_mult, n, cfg.probe_interval);
    let max = min * cfg.suspicion_max_timeout_mult;
    let bound = cfg.probe_interval * 2 + max + cfg.gossip_interval * 20;
    let victim = 7;
    sim.crash(victim);
    let crashed_at = sim.now();
    let ok = sim.run_until_pred(Duration::from_millis(50), bound, |s| {
        s.up()
            .all(|i| s.state_of(i, &name(victim)) == Some(NodeStateKind::Dead))
    });
    let took = sim.now() - crashed_at;
    eprintln!(
        "crash detected by all {} survivors after {took:?} (bound {bound:?}, min {min:?})",
        n - 1
    );
    assert!(
        ok,
        "not every member marked the crashed node dead within {bound:?}; seed {seed}"
    );
    for i in sim.up().collect::<Vec<_>>() {
        assert_eq!(
            failed_events(&sim, i, &name(victim)),
            1,
            "node {i}; seed {seed}"
        );
    }
}

#[test]
fn suspected_node_that_is_alive_refutes() {
    let seed = seed(3);
    let n = 10;
    let mut sim = converged_cluster(seed, n, |_| {});
    let target = 3;
    let inc_before = sim.nodes[target].swim.as_ref().unwrap().local().incarnation;
    // Cut the node off for less than the minimum suspicion timeout (4 s at n = 10): the others
    // suspect it, but it is healed before they may declare it dead.
    sim.set_group(target, 1);
    let mut suspected = false;
    for _ in 0..30 {
        sim.run_for(Duration::from_millis(100));
        suspected |= sim
            .up()
            .any(|i| sim.state_of(i, &name(target)) == Some(NodeStateKind::Suspect));
    }
    sim.heal();
    sim.run_for(Duration::from_secs(30));
    assert!(suspected, "nobody suspected the isolated node; seed {seed}");
    let inc_after = sim.nodes[target].swim.as_ref().unwrap().local().incarnation;
    assert!(
        inc_after > inc_before,
        "node did not refute with a higher incarnation; seed {seed}"
    );
    for i in 0..n {
        assert_eq!(
            failed_events(&sim, i, &name(target)),
            0,
            "node {i} declared it dead; seed {seed}"
        );
        assert_eq!(
            sim.state_of(i, &name(target)),
            Some(NodeStateKind::Alive),
            "node {i}; seed {seed}"
        );
    }
}

#[test]
fn partition_heals_and_the_halves_merge() {
    let seed = seed(4);
    let n = 10;
    let mut sim = converged_cluster(seed, n, |_| {});
    for i in n / 2..n {
        sim.set_group(i, 1);
    }
    // Long enough for each half to declare the other dead.
    let ok = sim.run_until_pred(Duration::from_millis(200), Duration::from_secs(120), |s| {
        (0..n / 2).all(|i| (n / 2..n).all(|j| s.state_of(i, &name(j)) == Some(NodeStateKind::Dead)))
            && (n / 2..n)
                .all(|i| (0..n / 2).all(|j| s.state_of(i, &name(j)) == Some(NodeStateKind::Dead)))
    });
    assert!(ok, "halves did not declare each other dead; seed {seed}");
    for i in 0..n {
        assert_eq!(
            sim.alive_count(i),
            n / 2,
            "node {i} during the partition; seed {seed}"
        );
    }
    sim.heal();
    // memberlist never probes dead nodes; the layer above reconnects (Serf's reconnect loop
    // joins a failed member). One join across the cut is enough for both halves to merge.
    sim.join(0, n - 1);
    let ok = sim.run_until_pred(Duration::from_millis(100), Duration::from_secs(60), |s| {
        (0..n).all(|i| s.alive_count(i) == n)
    });
    assert!(
        ok,
        "halves did not merge after the partition healed; seed {seed}"
    );
}

#[test]
fn short_partition_heals_without_help() {
    let seed = seed(5);
    let n = 10;
    let mut sim = converged_cluster(seed, n, |_| {});
    for i in n / 2..n {
        sim.set_group(i, 1);
    }
    sim.run_for(Duration::from_secs(2));
    sim.heal();
    let ok = sim.run_until_pred(Duration::from_millis(100), Duration::from_secs(60), |s| {
        (0..n).all(|i| s.alive_count(i) == n)
    });
    assert!(
        ok,
        "cluster did not settle after a short partition; seed {seed}"
    );
    for i in 0..n {
        for j in 0..n {
            assert_eq!(
                failed_events(&sim, i, &name(j)),
                0,
                "{i} failed {j}; seed {seed}"
            );
        }
    }
}

#[test]
fn graceful_leave_is_seen_as_left_not_failed() {
    let seed = seed(6);
    let n = 10;
    let mut sim = converged_cluster(seed, n, |_| {});
    let leaver = 4;
    sim.with_node(leaver, |s, now| s.leave(now));
    let ok = sim.run_until_pred(Duration::from_millis(50), Duration::from_secs(10), |s| {
        s.nodes[leaver]
            .events
            .iter()
            .any(|(_, e)| *e == Event::LeaveComplete)
    });
    assert!(ok, "leave broadcast never completed; seed {seed}");
    sim.crash(leaver);
    sim.run_for(Duration::from_secs(20));
    for i in sim.up().collect::<Vec<_>>() {
        assert_eq!(
            sim.state_of(i, &name(leaver)),
            Some(NodeStateKind::Left),
            "node {i}; seed {seed}"
        );
        assert_eq!(
            failed_events(&sim, i, &name(leaver)),
            0,
            "node {i}; seed {seed}"
        );
        let left = sim.nodes[i]
            .events
            .iter()
            .filter(|(_, e)| matches!(e, Event::MemberLeft(m) if m.name == name(leaver)))
            .count();
        assert_eq!(left, 1, "node {i} saw one leave; seed {seed}");
    }
}

#[test]
fn lossy_network_gives_no_false_dead_verdicts() {
    let seed = seed(7);
    let n = 50;
    let mut sim = converged_cluster(seed, n, |_| {});
    sim.loss = 0.10;
    sim.run_for(Duration::from_secs(300));
    let mut false_verdicts = 0;
    for i in 0..n {
        for j in 0..n {
            false_verdicts += failed_events(&sim, i, &name(j));
        }
    }
    eprintln!(
        "300 s at 10% loss: {} packets, {} lost, {false_verdicts} false dead verdicts",
        sim.stats.packets_sent, sim.stats.packets_lost
    );
    assert_eq!(false_verdicts, 0, "seed {seed}");
    for i in 0..n {
        assert_eq!(sim.alive_count(i), n, "node {i}; seed {seed}");
    }
}

#[test]
fn encrypted_cluster_converges_and_keeps_a_wrong_key_out() {
    use hearsay_swim::Keyring;
    let seed = seed(8);
    let key = Keyring::new(vec![7u8; 32], vec![]).unwrap();
    let wrong = Keyring::new(vec![9u8; 16], vec![]).unwrap();
    let mut sim = Sim::new(seed);
    for i in 0..5 {
        sim.add_node_with(&name(i), Some(key.clone()), Vec::new(), |_| {});
        if i > 0 {
            sim.join(i, 0);
        }
    }
    let intruder = sim.add_node_with("intruder", Some(wrong), Vec::new(), |_| {});
    sim.join(intruder, 0);
    sim.run_for(Duration::from_secs(20));
    for i in 0..5 {
        assert_eq!(sim.alive_count(i), 5, "node {i}; seed {seed}");
        assert_eq!(
            sim.state_of(i, "intruder"),
            None,
            "node {i} let the intruder in; seed {seed}"
        );
    }
    assert_eq!(sim.alive_count(intruder), 1, "seed {seed}");
    let join = sim.nodes[intruder]
        .events
        .iter()
        .find_map(|(_, e)| match e {
            Event::JoinFinished { joined, errors, .. } => Some((*joined, errors.clone())),
            _ => None,
        });
    let (joined, errors) = join.expect("join finished");
    assert_eq!(joined, 0, "seed {seed}");
    assert!(
        !errors.is_empty(),
        "the failed join names its error; seed {seed}"
    );
}

#[test]
fn nodes_with_different_labels_stay_apart() {
    let seed = seed(9);
    let mut sim = Sim::new(seed);
    let label = |l: &'static str| move |c: &mut Config| c.wire.label = l.into();
    let a0 = sim.add_node("a0", label("blue"));
    let a1 = sim.add_node("a1", label("blue"));
    let b0 = sim.add_node("b0", label("green"));
    sim.join(a1, a0);
    sim.join(b0, a0);
    sim.run_for(Duration::from_secs(20));
    assert_eq!(sim.alive_count(a0), 2, "seed {seed}");
    assert_eq!(sim.alive_count(a1), 2, "seed {seed}");
    assert_eq!(sim.alive_count(b0), 1, "seed {seed}");
    assert_eq!(sim.state_of(a0, "b0"), None, "seed {seed}");
}
