//! Hostile handlers against the host around the sandbox: guests that sleep in host calls,
//! askers that stop reading, handlers that hog every instance they may have, memory bombs and
//! a host dropped while guests are stuck. Every wait is bounded; the bounds are generous (a
//! loaded 2-core machine, debug build) and far below what the attack would take unchecked.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use hearsay_host::{Handler, Host, HostConfig, SharedQuota, Ticket, TrapKind};
use support::{
    assert_reply, guests, query, queue, run, scratch_dir, spec, trap, until, TestEmbedder, WAIT,
};

/// What the sleeping guests ask for: an hour.
const HOUR: &[u8] = b"3600";

fn host(workers: usize) -> Host {
    static CACHE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(|| scratch_dir("isolation-cache"));
    Host::new(HostConfig {
        workers,
        cache_dir: Some(cache.clone()),
        ..HostConfig::default()
    })
    .unwrap()
}

fn probe(host: &Host, name: &str, timeout: Duration) -> Handler {
    let mut probe = spec(name, &guests().probe);
    probe.limits.timeout = timeout;
    host.load(probe).unwrap()
}

#[test]
fn a_guest_sleeping_in_a_host_call_ends_at_its_deadline_and_its_next_event_runs() {
    let host = host(2);
    let sleeper = probe(&host, "sleeper", Duration::from_secs(1));
    let started = Instant::now();
    let outcome = run(&host, &sleeper, query("sleep", HOUR), TestEmbedder::new());
    let took = started.elapsed();
    let (kind, message) = trap(&outcome);
    assert_eq!(kind, TrapKind::Deadline, "{message}");
    assert!(message.contains("outside wasm"), "{message}");
    // Not a speed check: an unbounded sleep would take an hour, not a minute.
    assert!(took < Duration::from_secs(60), "took {took:?}");
    let stats = sleeper.stats();
    assert_eq!((stats.timeouts, stats.running), (1, 0), "{stats:?}");

    assert_reply(&host, &sleeper, "state", b"", "calls=1 word=7");
}

#[test]
fn four_sleeping_handlers_do_not_keep_echo_from_answering() {
    // Two runtime threads, four handlers asleep in host calls for an hour each.
    let host = host(2);
    let sleepers: Vec<Handler> = (0..4)
        .map(|i| probe(&host, &format!("sleeper-{i}"), Duration::from_secs(300)))
        .collect();
    let tickets: Vec<Ticket> = sleepers
        .iter()
        .map(|s| queue(&host, s, query("sleep", HOUR), TestEmbedder::new()))
        .collect();
    until("every sleeper is running", || {
        sleepers.iter().all(|s| s.stats().running == 1)
    });

    let echo = host.load(spec("echo", &guests().echo)).unwrap();
    for i in 0..3 {
        let payload = format!("answer {i}");
        assert_reply(&host, &echo, "ping", payload.as_bytes(), &payload);
    }
    // Still asleep, and visible as running (not idle) with the age of the oldest event.
    for (s, t) in sleepers.iter().zip(&tickets) {
        assert!(t.wait(Duration::ZERO).is_none());
        let stats = s.stats();
        assert_eq!((stats.running, stats.invocations), (1, 0), "{stats:?}");
        assert!(stats.oldest_running.is_some(), "{stats:?}");
    }
}

#[test]
fn a_stalled_asker_does_not_hold_a_handler_past_its_deadline() {
    let host = host(2);
    let mut echo = spec("echo", &guests().echo);
    echo.limits.timeout = Duration::from_secs(1);
    let echo = host.load(echo).unwrap();
    let stalled = Arc::new(TestEmbedder {
        stall_writes: true,
        ..Arc::try_unwrap(TestEmbedder::new()).ok().unwrap()
    });
    let outcome = run(&host, &echo, query("ping", b"never read"), stalled.clone());
    assert_eq!(trap(&outcome).0, TrapKind::Deadline, "{outcome:?}");
    assert!(
        !stalled.reply().finished,
        "the stalled reply never finished"
    );

    assert_reply(&host, &echo, "ping", b"next", "next");
    assert_eq!(echo.stats().running, 0);
}

#[test]
fn concurrency_is_per_handler_and_a_full_handler_queues_only_its_own_events() {
    let host = host(2);
    let mut sleeper = spec("sleeper", &guests().probe);
    sleeper.limits.timeout = Duration::from_secs(300);
    sleeper.limits.concurrency = 2;
    let sleeper = host.load(sleeper).unwrap();
    let _tickets: Vec<Ticket> = (0..3)
        .map(|_| queue(&host, &sleeper, query("sleep", HOUR), TestEmbedder::new()))
        .collect();
    until("two events run at once", || sleeper.stats().running == 2);
    assert_eq!(
        sleeper.queued(),
        1,
        "the third waits for the handler's own slot"
    );

    let echo = host.load(spec("echo", &guests().echo)).unwrap();
    assert_reply(&host, &echo, "ping", b"mine", "mine");
}

#[test]
fn a_shared_quota_holds_its_handlers_together_and_no_one_else() {
    let host = host(4);
    // Tenant "payments": one event at a time across its two handlers, 24 MiB between them.
    let quota = Arc::new(SharedQuota::new("payments", Some(1), Some(24 << 20)));
    let tenant = |name: &str| {
        let mut s = spec(name, &guests().probe);
        s.limits.timeout = Duration::from_secs(300);
        s.limits.concurrency = 2;
        s.quota = Some(quota.clone());
        host.load(s).unwrap()
    };
    let (a, b) = (tenant("pay-a"), tenant("pay-b"));
    let _tickets: Vec<Ticket> = [&a, &b]
        .iter()
        .map(|h| queue(&host, h, query("sleep", HOUR), TestEmbedder::new()))
        .collect();
    until("one of them sleeps, the other waits for the quota", || {
        quota.usage().running == 1 && quota.usage().waited == 1
    });
    assert_eq!(a.stats().running + b.stats().running, 1);
    // Another tenant's (or the operator's) handler is not held by it.
    let echo = host.load(spec("echo", &guests().echo)).unwrap();
    assert_reply(&host, &echo, "ping", b"free", "free");

    // The memory quota: a bomb of the tenant stops at 24 MiB with the reason, well under its
    // own 64 MiB limit; the same bomb outside the tenant is stopped by its own limit only.
    let memory = Arc::new(SharedQuota::new("search", None, Some(24 << 20)));
    let mut bomb = spec("search-bomb", &guests().probe);
    bomb.quota = Some(memory.clone());
    let bomb = host.load(bomb).unwrap();
    let outcome = run(&host, &bomb, query("hog", b""), TestEmbedder::new());
    let (kind, message) = trap(&outcome);
    assert_eq!(kind, TrapKind::Memory, "{message}");
    assert!(
        message.contains("memory quota") && message.contains("\"search\""),
        "{message}"
    );
    assert_eq!(memory.usage().memory_refusals, 1);
    let lone = probe(&host, "lone-bomb", Duration::from_secs(60));
    let outcome = run(&host, &lone, query("hog", b""), TestEmbedder::new());
    let (_, message) = trap(&outcome);
    assert!(message.contains("memory limit of"), "{message}");
    // What the tenant's bomb held is given back (the next event's spare instance, made ahead,
    // holds a little).
    until("the quota's memory is given back", || {
        memory.usage().memory < 8 << 20
    });
}

#[test]
fn a_noisy_tenant_does_not_take_its_neighbours_capacity() {
    // Tenant A may run 2 events at once in 32 MiB. Its handlers spin in wasm, sleep in host
    // calls, bomb memory and flood the log, each with more events queued than the quota runs.
    let host = host(2);
    let a = Arc::new(SharedQuota::new("a", Some(2), Some(32 << 20)));
    let noisy = |name: &str, mode: &str, payload: &[u8]| {
        let mut s = spec(name, &guests().probe);
        s.limits.timeout = Duration::from_secs(300);
        s.limits.concurrency = 2;
        s.quota = Some(a.clone());
        let h = host.load(s).unwrap();
        let tickets: Vec<Ticket> = (0..2)
            .map(|_| queue(&host, &h, query(mode, payload), TestEmbedder::new()))
            .collect();
        (h, tickets)
    };
    let attack = [
        noisy("a-spin", "loop", b""),
        noisy("a-sleep", "sleep", HOUR),
        noisy("a-bomb", "hog", b""),
        noisy("a-flood", "log", b"1000000 flood"),
    ];
    until("tenant A runs at its quota, the rest of it waiting", || {
        a.usage().running == 2 && a.usage().waited >= 1
    });

    // Tenant B, with a quota of its own, answers every query throughout.
    let mut b = spec("b-echo", &guests().echo);
    b.quota = Some(Arc::new(SharedQuota::new("b", Some(2), Some(32 << 20))));
    let b = host.load(b).unwrap();
    for i in 0..20 {
        let payload = format!("b {i}");
        assert_reply(&host, &b, "ping", payload.as_bytes(), &payload);
    }
    // Its four handlers, each allowed 2 at once, run 2 events between them.
    let running: u64 = attack.iter().map(|(h, _)| h.stats().running).sum();
    assert!(running <= 2, "tenant A runs {running} events");
    assert!(a.usage().memory <= 32 << 20);
    let stats = b.stats();
    assert_eq!(
        (stats.invocations, stats.timeouts, stats.drops, stats.traps),
        (20, 0, 0, 0),
        "{stats:?}"
    );
    drop(attack);
}

#[test]
fn the_agent_wide_memory_cap_stops_a_bomb_with_its_reason_and_is_given_back() {
    let cap = 48 << 20;
    let host = Host::new(HostConfig {
        workers: 2,
        memory_total: cap,
        ..HostConfig::default()
    })
    .unwrap();
    // Each handler alone may grow to 64 MiB; together they may not pass 48 MiB.
    let bombs: Vec<Handler> = (0..2)
        .map(|i| probe(&host, &format!("bomb-{i}"), Duration::from_secs(60)))
        .collect();
    let tickets: Vec<Ticket> = bombs
        .iter()
        .map(|b| queue(&host, b, query("hog", b""), TestEmbedder::new()))
        .collect();
    let mut capped = 0;
    for t in &tickets {
        let outcome = t.wait(WAIT).expect("the bomb ends");
        let (kind, message) = trap(&outcome);
        assert_eq!(kind, TrapKind::Memory, "{message}");
        assert!(host.memory_in_use() <= cap);
        if message.contains("handler_memory_total") {
            capped += 1;
        }
    }
    assert!(capped >= 1, "no bomb was stopped by the agent-wide cap");
    // What the bombs held is given back: a fresh event of another handler runs.
    let echo = host.load(spec("echo", &guests().echo)).unwrap();
    assert_reply(&host, &echo, "ping", b"room", "room");
    assert!(host.memory_in_use() < cap / 2, "{}", host.memory_in_use());
}

#[test]
fn dropping_the_host_abandons_stuck_guests_at_once() {
    let host = host(2);
    let sleepers: Vec<Handler> = (0..3)
        .map(|i| probe(&host, &format!("stuck-{i}"), Duration::from_secs(3600)))
        .collect();
    let looper = probe(&host, "looper", Duration::from_secs(3600));
    let mut tickets: Vec<Ticket> = sleepers
        .iter()
        .map(|s| queue(&host, s, query("sleep", HOUR), TestEmbedder::new()))
        .collect();
    tickets.push(queue(
        &host,
        &looper,
        query("loop", b""),
        TestEmbedder::new(),
    ));
    until("every guest is running", || {
        sleepers
            .iter()
            .chain([&looper])
            .all(|s| s.stats().running == 1)
    });
    let started = Instant::now();
    drop(host);
    let took = started.elapsed();
    // Not a speed check: waiting for the guests would take an hour.
    assert!(took < Duration::from_secs(30), "drop took {took:?}");
    for t in &tickets {
        assert!(t.wait(Duration::ZERO).is_none(), "abandoned, not finished");
    }
}
