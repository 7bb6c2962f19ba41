//! The dissemination schedule: first-contact syncs, rumor pushes, the anti-entropy timer.

use super::*;

fn config(seed: u64) -> SyncConfig {
    SyncConfig {
        fanout: 3,
        interval: Duration::from_secs(10),
        seed,
    }
}

fn drain(s: &mut Sync<u32>) -> Vec<Action<u32>> {
    std::iter::from_fn(|| s.poll_action()).collect()
}

#[test]
fn the_first_peer_list_triggers_one_sync() {
    let t0 = Instant::now();
    let mut s = Sync::new(config(1), t0);
    assert_eq!(s.poll_timeout(), None, "no peers, no timer");
    s.handle_peers(t0, 1..=100);
    let actions = drain(&mut s);
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert!(matches!(actions[0], Action::Sync { peer } if (1..=100).contains(&peer)));
    assert!(s.poll_timeout().unwrap() <= t0 + Duration::from_secs(10));
}

#[test]
fn new_peers_are_synced_by_about_fanout_nodes() {
    let t0 = Instant::now();
    let mut syncs_to_joiner = 0;
    for seed in 0..1000 {
        let mut s = Sync::new(config(seed), t0);
        s.handle_peers(t0, 1..=999);
        drain(&mut s);
        s.handle_peers(t0, 1..=1000);
        for a in drain(&mut s) {
            assert_eq!(a, Action::Sync { peer: 1000 });
            syncs_to_joiner += 1;
        }
    }
    // Expected 3 (fanout) across 1000 nodes; allow for chance.
    assert!((1..=10).contains(&syncs_to_joiner), "{syncs_to_joiner}");
}

#[test]
fn in_a_small_cluster_every_node_syncs_a_new_peer() {
    let t0 = Instant::now();
    let mut s = Sync::new(config(7), t0);
    s.handle_peers(t0, [1, 2]);
    drain(&mut s);
    s.handle_peers(t0, [1, 2, 3]);
    assert_eq!(drain(&mut s), vec![Action::Sync { peer: 3 }]);
    // A peer that leaves and comes back is new again (it may have restarted with old state).
    s.handle_peers(t0, [1, 2]);
    assert!(drain(&mut s).is_empty());
    s.handle_peers(t0, [1, 2, 3]);
    assert_eq!(drain(&mut s), vec![Action::Sync { peer: 3 }]);
}

#[test]
fn a_learned_record_is_pushed_to_fanout_distinct_peers() {
    let t0 = Instant::now();
    let mut s = Sync::new(config(3), t0);
    s.handle_peers(t0, 1..=50);
    drain(&mut s);
    s.handle_learned(t0, "greet");
    s.handle_learned(t0, "other");
    let actions = drain(&mut s);
    let mut peers: Vec<u32> = Vec::new();
    let mut names = 0;
    for a in &actions {
        match a {
            Action::Push { peer, records } => {
                peers.push(*peer);
                names += records.len();
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(names, 6, "two records to three peers each: {actions:?}");
    let mut distinct = peers.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        peers.len(),
        "one push per peer: {actions:?}"
    );
}

#[test]
fn fewer_peers_than_fanout_get_one_push_each() {
    let t0 = Instant::now();
    let mut s = Sync::new(config(4), t0);
    s.handle_peers(t0, [9]);
    drain(&mut s);
    s.handle_learned(t0, "greet");
    assert_eq!(
        drain(&mut s),
        vec![Action::Push {
            peer: 9,
            records: vec!["greet".into()]
        }]
    );
    let mut alone: Sync<u32> = Sync::new(config(4), t0);
    alone.handle_learned(t0, "greet");
    assert!(drain(&mut alone).is_empty());
}

#[test]
fn the_timer_syncs_one_random_peer_per_jittered_interval() {
    let t0 = Instant::now();
    let mut s = Sync::new(config(5), t0);
    s.handle_peers(t0, 1..=20);
    drain(&mut s);
    let mut now = t0;
    let mut gaps = Vec::new();
    for _ in 0..50 {
        let due = s.poll_timeout().unwrap();
        s.handle_timeout(due - Duration::from_millis(1));
        assert!(drain(&mut s).is_empty(), "nothing before it is due");
        s.handle_timeout(due);
        let actions = drain(&mut s);
        assert_eq!(actions.len(), 1);
        assert!(matches!(actions[0], Action::Sync { .. }));
        gaps.push(due - now);
        now = due;
    }
    let later = &gaps[1..];
    assert!(later
        .iter()
        .all(|g| *g >= Duration::from_secs(5) && *g < Duration::from_secs(15)));
    assert!(later.iter().any(|g| *g != later[0]), "jittered");
}

#[test]
fn the_same_seed_makes_the_same_choices() {
    let t0 = Instant::now();
    let run = |seed| {
        let mut s = Sync::new(config(seed), t0);
        s.handle_peers(t0, 1..=100);
        s.handle_learned(t0, "greet");
        let due = s.poll_timeout().unwrap();
        s.handle_timeout(due);
        drain(&mut s)
    };
    assert_eq!(run(11), run(11));
    assert_ne!(run(11), run(12));
}
