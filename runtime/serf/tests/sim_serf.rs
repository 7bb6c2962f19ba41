//! Simulator scenarios for the Serf layer: events reach every node once, duplicates and old
//! events are dropped, tag-filtered queries are answered by exactly the matching members,
//! intents mark a graceful leave as left. Virtual clock, reproducible by seed.

use hearsay_serf::event::{Event, MemberStatus};
use hearsay_serf::messages::{self, Message};
use hearsay_serf::{QueryParams, Serf, SerfConfig};
use hearsay_swim::testing::Sim;
use hearsay_swim::wire::{encode_message, Codec, Message as WireMessage, WireConfig};
use hearsay_swim::Config;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

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

fn add(sim: &mut Sim<Serf>, i: usize, tags: BTreeMap<String, String>) -> usize {
    sim.add_core(|addr, seed, now| {
        let mut cfg = SerfConfig::new(Config::lan(name(i), addr));
        cfg.tags = tags;
        Serf::new(cfg, None, seed, now).expect("valid config")
    })
}

fn alive(sim: &Sim<Serf>, i: usize) -> usize {
    sim.nodes[i]
        .swim
        .as_ref()
        .map_or(0, |s| s.count_with_status(MemberStatus::Alive))
}

/// `n` nodes; node i joins a random earlier node (a join tree spreads the push/pull load).
fn cluster(seed: u64, n: usize, tags: impl Fn(usize) -> BTreeMap<String, String>) -> Sim<Serf> {
    let mut sim: Sim<Serf> = Sim::new(seed);
    let mut pick = seed;
    for i in 0..n {
        add(&mut sim, i, tags(i));
        if i > 0 {
            pick = pick
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let j = (pick >> 33) as usize % i;
            let addr = sim.nodes[j].addr;
            sim.with_node(i, |s, now| s.join(now, &[addr], true).unwrap());
        }
        sim.run_for(Duration::from_millis(5));
    }
    let ok = sim.run_until_pred(Duration::from_millis(200), Duration::from_secs(300), |s| {
        (0..n).all(|i| alive(s, i) == n)
    });
    assert!(ok, "{n} Serf nodes did not converge; seed {seed}");
    sim
}

fn user_events(sim: &Sim<Serf>, i: usize, event: &str) -> Vec<Vec<u8>> {
    sim.nodes[i]
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::User(u) if u.name == event => Some(u.payload.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn an_event_reaches_all_of_a_thousand_nodes_once() {
    let seed = seed(11);
    let n = 1000;
    let mut sim = cluster(seed, n, |_| BTreeMap::new());
    eprintln!(
        "{n} nodes converged after {:?} of virtual time",
        sim.elapsed()
    );
    // Let the join storm's intents finish their retransmissions: a steady cluster.
    sim.run_for(Duration::from_secs(30));
    let fired = sim.now();
    sim.with_node(17, |s, now| {
        s.user_event(now, "deploy", b"v42", false).unwrap()
    });
    let ok = sim.run_until_pred(Duration::from_millis(50), Duration::from_secs(60), |s| {
        (0..n).all(|i| !user_events(s, i, "deploy").is_empty())
    });
    assert!(ok, "event did not reach every node; seed {seed}");
    eprintln!("event reached all {n} nodes after {:?}", sim.now() - fired);
    // Let gossip and anti-entropy run on: nobody may see it twice.
    sim.run_for(Duration::from_secs(30));
    for i in 0..n {
        assert_eq!(
            user_events(&sim, i, "deploy"),
            vec![b"v42".to_vec()],
            "node {i}; seed {seed}"
        );
    }
}

/// Builds the UDP packet a peer would send carrying one Serf message.
fn packet_with(msg: &Message) -> Vec<u8> {
    let codec = Codec::new(
        WireConfig {
            compression: false,
            ..WireConfig::default()
        },
        None,
    );
    let inner = encode_message(&WireMessage::User(messages::encode(msg)));
    let mut rng = rand::rngs::mock::StepRng::new(1, 1);
    codec.seal_packet(&inner, false, &mut rng)
}

#[test]
fn duplicate_and_old_events_are_dropped() {
    let seed = seed(12);
    let mut sim = cluster(seed, 5, |_| BTreeMap::new());
    sim.with_node(0, |s, now| s.user_event(now, "once", b"1", false).unwrap());
    sim.run_for(Duration::from_secs(10));
    let from = sim.nodes[0].addr;
    let ltime = sim.nodes[1].swim.as_ref().unwrap().clocks().1 - 1;
    // The same event again, straight from the wire, twice.
    let dup = Message::UserEvent(messages::UserEvent {
        ltime,
        name: "once".into(),
        payload: b"1".to_vec(),
        cc: false,
    });
    for _ in 0..2 {
        let pkt = packet_with(&dup);
        sim.with_node(1, |s, now| s.handle_packet(now, from, &pkt));
    }
    // Push the event clock far ahead, then send an event older than the 512-slot buffer.
    for k in 0..600 {
        sim.with_node(0, |s, now| {
            s.user_event(now, "tick", &(k as u16).to_be_bytes(), false)
                .unwrap()
        });
    }
    sim.run_for(Duration::from_secs(30));
    let old = Message::UserEvent(messages::UserEvent {
        ltime: 2,
        name: "ancient".into(),
        payload: Vec::new(),
        cc: false,
    });
    let pkt = packet_with(&old);
    sim.with_node(1, |s, now| s.handle_packet(now, from, &pkt));
    sim.run_for(Duration::from_secs(5));
    for i in 0..5 {
        assert_eq!(
            user_events(&sim, i, "once").len(),
            1,
            "node {i} saw a duplicate; seed {seed}"
        );
        assert!(
            user_events(&sim, i, "ancient").is_empty(),
            "node {i} took an old event; seed {seed}"
        );
        // A burst of 600 from one node outruns the 512-slot buffer at the receivers (Serf
        // drops what falls behind it as old); none may arrive twice.
        let ticks = user_events(&sim, i, "tick");
        let unique: HashSet<&Vec<u8>> = ticks.iter().collect();
        assert_eq!(
            unique.len(),
            ticks.len(),
            "node {i} saw a tick twice; seed {seed}"
        );
        assert!(
            ticks.len() >= 512,
            "node {i} saw only {} ticks; seed {seed}",
            ticks.len()
        );
    }
}

/// Answers every query each node received since the last call, with its own name.
fn answer_queries(sim: &mut Sim<Serf>, answered: &mut HashSet<(usize, u64, u32)>) {
    for i in 0..sim.nodes.len() {
        let pending: Vec<(u64, u32)> = sim.nodes[i]
            .events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Query(q) => Some((q.ltime, q.id)),
                _ => None,
            })
            .filter(|(l, id)| !answered.contains(&(i, *l, *id)))
            .collect();
        for (ltime, id) in pending {
            answered.insert((i, ltime, id));
            let me = name(i);
            sim.with_node(i, |s, now| {
                s.respond(now, ltime, id, me.as_bytes()).unwrap()
            });
        }
    }
}

#[test]
fn tag_filtered_query_is_answered_by_exactly_the_matching_members() {
    let seed = seed(13);
    let n = 30;
    let role = |i: usize| {
        let mut t = BTreeMap::new();
        t.insert(
            "role".to_owned(),
            if i.is_multiple_of(3) { "web" } else { "db" }.to_owned(),
        );
        t
    };
    let mut sim = cluster(seed, n, role);
    let mut params = QueryParams {
        request_ack: true,
        ..QueryParams::default()
    };
    params.filter_tags.insert("role".into(), "^web$".into());
    let qid = sim
        .with_node(4, |s, now| s.query(now, "who", b"", params).unwrap())
        .unwrap();
    let mut answered = HashSet::new();
    let mut done = false;
    for _ in 0..200 {
        sim.run_for(Duration::from_millis(50));
        answer_queries(&mut sim, &mut answered);
        done = sim.nodes[4]
            .events
            .iter()
            .any(|(_, e)| matches!(e, Event::QueryDone { query } if *query == qid));
        if done {
            break;
        }
    }
    assert!(done, "query never finished; seed {seed}");
    let mut responders = HashSet::new();
    let mut ackers = HashSet::new();
    for (_, e) in &sim.nodes[4].events {
        match e {
            Event::QueryResponse {
                query,
                from,
                payload,
            } if *query == qid => {
                assert_eq!(payload, from.as_bytes());
                assert!(responders.insert(from.clone()), "two responses from {from}");
            }
            Event::QueryAck { query, from } if *query == qid => {
                ackers.insert(from.clone());
            }
            _ => {}
        }
    }
    let expected: HashSet<String> = (0..n).filter(|i| i.is_multiple_of(3)).map(name).collect();
    assert_eq!(responders, expected, "seed {seed}");
    assert_eq!(ackers, expected, "seed {seed}");
}

#[test]
fn finish_early_completes_once_every_match_answered() {
    let seed = seed(14);
    let n = 8;
    let mut sim = cluster(seed, n, |_| BTreeMap::new());
    let params = QueryParams {
        finish_early: true,
        timeout: Duration::from_secs(60),
        ..QueryParams::default()
    };
    let start = sim.now();
    let qid = sim
        .with_node(0, |s, now| s.query(now, "all", b"", params).unwrap())
        .unwrap();
    let mut answered = HashSet::new();
    let mut done_at = None;
    for _ in 0..400 {
        sim.run_for(Duration::from_millis(50));
        answer_queries(&mut sim, &mut answered);
        if sim.nodes[0]
            .events
            .iter()
            .any(|(_, e)| matches!(e, Event::QueryDone { query } if *query == qid))
        {
            done_at = Some(sim.now());
            break;
        }
    }
    let done_at = done_at.expect("query finished");
    assert!(
        done_at - start < Duration::from_secs(60),
        "waited out the whole timeout; seed {seed}"
    );
    let responses = sim.nodes[0]
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::QueryResponse { query, .. } if *query == qid))
        .count();
    assert_eq!(responses, n, "seed {seed}");
}

#[test]
fn graceful_leave_is_left_and_crash_is_failed() {
    let seed = seed(15);
    let n = 6;
    let role = |i: usize| BTreeMap::from([("role".to_owned(), format!("web-{i}"))]);
    let mut sim = cluster(seed, n, role);
    sim.with_node(2, |s, now| s.leave(now).unwrap());
    let ok = sim.run_until_pred(Duration::from_millis(50), Duration::from_secs(20), |s| {
        s.nodes[2]
            .events
            .iter()
            .any(|(_, e)| *e == Event::LeaveComplete)
    });
    assert!(ok, "leave did not complete; seed {seed}");
    sim.crash(2);
    sim.crash(3);
    sim.run_for(Duration::from_secs(60));
    for i in [0, 1, 4, 5] {
        let members = sim.nodes[i].swim.as_ref().unwrap().members();
        let status = |who: usize| {
            members
                .iter()
                .find(|m| m.name == name(who))
                .map(|m| m.status)
        };
        assert_eq!(status(2), Some(MemberStatus::Left), "node {i}; seed {seed}");
        assert_eq!(
            status(3),
            Some(MemberStatus::Failed),
            "node {i}; seed {seed}"
        );
        // Past gossip_to_the_dead_time memberlist has forgotten both; Serf still reports
        // their address and tags (the membership core keeps them while Serf holds the name).
        let serf = sim.nodes[i].swim.as_ref().unwrap();
        for who in [2, 3] {
            assert!(
                serf.memberlist().member(&name(who)).is_none(),
                "node {i} still has {who} in memberlist; seed {seed}"
            );
            let m = members.iter().find(|m| m.name == name(who)).unwrap();
            assert_eq!((m.addr, &m.tags), (sim.nodes[who].addr, &role(who)));
        }
    }
}

#[test]
fn coordinates_from_ping_acks_estimate_the_simulated_latency() {
    let seed = seed(16);
    let n = 20;
    let mut sim: Sim<Serf> = Sim::new(seed);
    // Nodes on a line 0..=95 ms apart (one way 1 ms + 5 ms per index step), no jitter.
    let one_way = |a: usize, b: usize| Duration::from_micros(500 + 2500 * a.abs_diff(b) as u64);
    sim.latency_fn = Some(Box::new(one_way));
    sim.jitter = Duration::ZERO;
    for i in 0..n {
        add(&mut sim, i, BTreeMap::new());
        if i > 0 {
            let addr = sim.nodes[0].addr;
            sim.with_node(i, |s, now| s.join(now, &[addr], true).unwrap());
        }
    }
    sim.run_for(Duration::from_secs(300));
    let mut errors = Vec::new();
    for i in 0..n {
        for j in 0..n {
            if i == j {
                continue;
            }
            let (a, b) = (
                sim.nodes[i].swim.as_ref().unwrap(),
                sim.nodes[j].swim.as_ref().unwrap(),
            );
            let est = a.coordinate().unwrap().distance_to(b.coordinate().unwrap());
            let truth = one_way(i, j) * 2;
            errors.push((est.as_secs_f64() - truth.as_secs_f64()).abs() / truth.as_secs_f64());
        }
    }
    errors.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let median = errors[errors.len() / 2];
    let p90 = errors[errors.len() * 9 / 10];
    eprintln!(
        "Vivaldi over ping acks, {n} nodes, 300 s: median relative error {median:.3}, p90 {p90:.3}"
    );
    assert!(median < 0.15, "median relative error {median}; seed {seed}");
    // Every node's estimate of another member is available the way `serf rtt` reads it.
    let s0 = sim.nodes[0].swim.as_ref().unwrap();
    assert!(
        s0.estimated_rtt(&name(0), &name(5)).is_some(),
        "seed {seed}"
    );
}

#[test]
fn coalescing_merges_member_events_and_keeps_the_newest_user_event() {
    let seed = seed(17);
    let mut sim: Sim<Serf> = Sim::new(seed);
    let coalescing = |i: usize, sim: &mut Sim<Serf>| {
        sim.add_core(|addr, seed, now| {
            let mut cfg = SerfConfig::new(Config::lan(name(i), addr));
            cfg.coalesce_period = Duration::from_secs(3);
            cfg.quiescent_period = Duration::from_secs(1);
            cfg.user_coalesce_period = Duration::from_secs(3);
            cfg.user_quiescent_period = Duration::from_secs(1);
            Serf::new(cfg, None, seed, now).unwrap()
        })
    };
    let observer = coalescing(0, &mut sim);
    for i in 1..6 {
        add(&mut sim, i, BTreeMap::new());
        let addr = sim.nodes[observer].addr;
        sim.with_node(i, |s, now| s.join(now, &[addr], true).unwrap());
    }
    sim.run_for(Duration::from_secs(20));
    let joins: Vec<usize> = sim.nodes[observer]
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Member(m) if m.kind == hearsay_serf::event::MemberEventKind::Join => {
                Some(m.members.len())
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        joins.iter().sum::<usize>(),
        6,
        "every member joined once: {joins:?}; seed {seed}"
    );
    assert!(
        joins.iter().any(|&n| n > 1),
        "joins were not merged: {joins:?}; seed {seed}"
    );
    // Three coalescible events of one name in quick succession: only the newest is delivered.
    for v in ["a", "b", "c"] {
        sim.with_node(1, |s, now| {
            s.user_event(now, "cfg", v.as_bytes(), true).unwrap()
        });
    }
    sim.with_node(1, |s, now| s.user_event(now, "plain", b"x", false).unwrap());
    sim.run_for(Duration::from_secs(10));
    assert_eq!(
        user_events(&sim, observer, "cfg"),
        vec![b"c".to_vec()],
        "seed {seed}"
    );
    assert_eq!(
        user_events(&sim, observer, "plain"),
        vec![b"x".to_vec()],
        "seed {seed}"
    );
    // A node without coalescing saw all three.
    assert_eq!(user_events(&sim, 2, "cfg").len(), 3, "seed {seed}");
}

#[test]
fn partitioned_halves_reconnect_by_themselves_and_crashed_members_are_reaped() {
    let seed = seed(18);
    let n = 6;
    let mut sim: Sim<Serf> = Sim::new(seed);
    for i in 0..n {
        sim.add_core(|addr, seed, now| {
            let mut cfg = SerfConfig::new(Config::lan(name(i), addr));
            cfg.reconnect_timeout = Duration::from_secs(120);
            Serf::new(cfg, None, seed, now).unwrap()
        });
        if i > 0 {
            let addr = sim.nodes[0].addr;
            sim.with_node(i, |s, now| s.join(now, &[addr], true).unwrap());
        }
    }
    sim.run_for(Duration::from_secs(10));
    assert!((0..n).all(|i| alive(&sim, i) == n), "seed {seed}");
    for i in n / 2..n {
        sim.set_group(i, 1);
    }
    let status = |sim: &Sim<Serf>, i: usize, j: usize| {
        sim.nodes[i].swim.as_ref().and_then(|s| {
            s.members()
                .into_iter()
                .find(|m| m.name == name(j))
                .map(|m| m.status)
        })
    };
    let ok = sim.run_until_pred(Duration::from_millis(500), Duration::from_secs(120), |s| {
        (0..n / 2).all(|i| (n / 2..n).all(|j| status(s, i, j) == Some(MemberStatus::Failed)))
    });
    assert!(ok, "halves never saw each other fail; seed {seed}");
    sim.heal();
    // No join from the test: Serf's reconnect loop finds the failed members again.
    let ok = sim.run_until_pred(Duration::from_millis(500), Duration::from_secs(180), |s| {
        (0..n).all(|i| alive(s, i) == n)
    });
    assert!(ok, "halves did not reconnect by themselves; seed {seed}");

    // A crash is reaped once the reconnect timeout (120 s here) has passed.
    sim.crash(5);
    let ok = sim.run_until_pred(Duration::from_secs(1), Duration::from_secs(300), |s| {
        (0..5).all(|i| status(s, i, 5).is_none())
    });
    assert!(ok, "crashed member was never reaped; seed {seed}");
    for i in 0..5 {
        let reaped = sim.nodes[i].events.iter().any(|(_, e)| {
            matches!(e, Event::Member(m) if m.kind == hearsay_serf::event::MemberEventKind::Reap
                && m.members.iter().any(|mm| mm.name == name(5)))
        });
        assert!(reaped, "node {i} emitted no reap event; seed {seed}");
    }
}

#[test]
fn name_conflict_is_resolved_by_a_vote_the_newcomer_loses() {
    let seed = seed(19);
    let n = 5;
    let mut sim = cluster(seed, n, |_| BTreeMap::new());
    // A second node claims node-2's name from another address.
    let impostor = sim.add_core(|addr, seed, now| {
        Serf::new(SerfConfig::new(Config::lan(name(2), addr)), None, seed, now).unwrap()
    });
    let addr = sim.nodes[0].addr;
    sim.with_node(impostor, |s, now| s.join(now, &[addr], true).unwrap());
    sim.run_for(Duration::from_secs(30));
    let verdict = |i: usize| {
        sim.nodes[i].events.iter().find_map(|(_, e)| match e {
            Event::NameConflict {
                won,
                matching,
                responses,
            } => Some((*won, *matching, *responses)),
            _ => None,
        })
    };
    let (won, matching, responses) = verdict(impostor).expect("the impostor held a vote");
    assert!(!won, "impostor won {matching}/{responses}; seed {seed}");
    if let Some((won, matching, responses)) = verdict(2) {
        assert!(won, "the original lost {matching}/{responses}; seed {seed}");
    }
}

/// A response that travels outside the UDP path (hearsay's QUIC) counts as the node's one
/// answer on both sides, and a finish-early query waits for it to end.
#[test]
fn out_of_band_response_is_the_nodes_one_answer_and_holds_finish_early() {
    let seed = seed(16);
    let n = 4;
    let mut sim = cluster(seed, n, |_| BTreeMap::new());
    let params = QueryParams {
        finish_early: true,
        timeout: Duration::from_secs(60),
        ..QueryParams::default()
    };
    let qid = sim
        .with_node(0, |s, now| s.query(now, "big", b"", params).unwrap())
        .unwrap();
    let last = n - 1;
    let delivered = sim.run_until_pred(Duration::from_millis(50), Duration::from_secs(10), |s| {
        s.nodes[last]
            .events
            .iter()
            .any(|(_, e)| matches!(e, Event::Query(q) if q.ltime == qid.ltime))
    });
    assert!(delivered, "query not delivered; seed {seed}");
    // The last node answers out of band: its claim uses up its one answer.
    sim.with_node(last, |s, now| {
        s.claim_response(now, qid.ltime, qid.id).unwrap();
        assert!(matches!(
            s.respond(now, qid.ltime, qid.id, b"udp too"),
            Err(hearsay_serf::Error::AlreadyResponded)
        ));
    });
    let me = name(last);
    sim.with_node(0, |s, _| {
        assert_eq!(
            s.handle_external_response(qid.ltime, qid.id, &me).unwrap(),
            qid
        );
        assert!(matches!(
            s.handle_external_response(qid.ltime, qid.id, &me),
            Err(hearsay_serf::Error::AlreadyResponded)
        ));
        assert!(matches!(
            s.handle_external_response(qid.ltime + 1, qid.id, &me),
            Err(hearsay_serf::Error::PastDeadline)
        ));
    });
    // Everyone else answers over UDP; the query still waits for the out-of-band one.
    let mut answered = HashSet::from([(last, qid.ltime, qid.id)]);
    let done = |sim: &Sim<Serf>| {
        sim.nodes[0]
            .events
            .iter()
            .any(|(_, e)| matches!(e, Event::QueryDone { query } if *query == qid))
    };
    for _ in 0..100 {
        sim.run_for(Duration::from_millis(50));
        answer_queries(&mut sim, &mut answered);
    }
    let udp_answers = sim.nodes[0]
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::QueryResponse { query, .. } if *query == qid))
        .count();
    assert_eq!(udp_answers, n - 1, "seed {seed}");
    assert!(
        !done(&sim),
        "finished before the out-of-band response ended; seed {seed}"
    );
    sim.with_node(0, |s, now| s.handle_external_response_done(now, qid, &me));
    assert!(
        done(&sim),
        "did not finish once every answer was in; seed {seed}"
    );
}

/// Serf's `RemoveFailedNode` returns once its leave broadcast went out: `force_leave` hands
/// back the broadcast's id, which is pending until gossip has sent it, then
/// `Event::ForceLeaveSent` says so; the other members list the node as left. A lone node has
/// nobody to tell and gets no id.
#[test]
fn force_leave_reports_when_its_broadcast_went_out() {
    let seed = seed(21);
    let n = 4;
    let mut sim = cluster(seed, n, |_| BTreeMap::new());
    sim.crash(3);
    let failed = |s: &Sim<Serf>, i: usize| {
        s.nodes[i]
            .swim
            .as_ref()
            .unwrap()
            .members()
            .iter()
            .any(|m| m.name == name(3) && m.status == MemberStatus::Failed)
    };
    let ok = sim.run_until_pred(Duration::from_millis(100), Duration::from_secs(60), |s| {
        (0..3).all(|i| failed(s, i))
    });
    assert!(ok, "node 3 was not marked failed; seed {seed}");
    let id = sim
        .with_node(0, |s, now| s.force_leave(now, &name(3), false).unwrap())
        .flatten()
        .expect("there are members to tell");
    let pending = |s: &Sim<Serf>| s.nodes[0].swim.as_ref().unwrap().force_leave_pending(id);
    let sent = |s: &Sim<Serf>| {
        s.nodes[0]
            .events
            .iter()
            .any(|(_, e)| *e == Event::ForceLeaveSent { id })
    };
    assert!(
        pending(&sim) && !sent(&sim),
        "done before any gossip; seed {seed}"
    );
    let ok = sim.run_until_pred(Duration::from_millis(50), Duration::from_secs(30), sent);
    assert!(ok, "no ForceLeaveSent; seed {seed}");
    assert!(!pending(&sim), "seed {seed}");
    sim.run_for(Duration::from_secs(1));
    for i in 0..3 {
        let members = sim.nodes[i].swim.as_ref().unwrap().members();
        let m = members.iter().find(|m| m.name == name(3)).unwrap();
        assert_eq!(m.status, MemberStatus::Left, "node {i}; seed {seed}");
    }

    let mut lone: Sim<Serf> = Sim::new(seed);
    add(&mut lone, 0, BTreeMap::new());
    let id = lone.with_node(0, |s, now| s.force_leave(now, "nobody", false).unwrap());
    assert_eq!(id, Some(None));
}
