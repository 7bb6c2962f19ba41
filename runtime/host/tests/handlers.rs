//! hearsay-host with real components: the ready-made handlers, hostile guests (deadline, memory,
//! stack, panic, ungranted files and sockets), grants, replies, queues, reload and load errors (the
//! disk cache has its own tests, in cache.rs). Every wait is bounded; nothing asserts speed.

mod support;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use hearsay_host::{
    DirGrant, Dispatch, Event, Handler, HandlerSpec, Host, HostConfig, HostError, Limits,
    ModuleSource, Outcome, TrapKind, UserEvent,
};
use support::{guests, member, query, run, scratch_dir, spec, trap_kind, TestEmbedder, WAIT};

/// A host with two workers. The tests share one compile cache, so each component is compiled
/// once per run (which also exercises cache hits under concurrent loads).
fn host() -> Host {
    static CACHE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    // A subdirectory the host creates itself (mode 0700), whatever the umask.
    let cache = CACHE.get_or_init(|| scratch_dir("shared-cache").join("cache"));
    Host::new(HostConfig {
        workers: 2,
        cache_dir: Some(cache.clone()),
        ..HostConfig::default()
    })
    .unwrap()
}

#[test]
fn echo_replies_with_the_payload_and_takes_user_events() {
    let host = host();
    let echo = host.load(spec("echo", &guests().echo)).unwrap();
    let emb = TestEmbedder::new();
    assert_eq!(
        run(&host, &echo, query("ping", b"hello there"), emb.clone()),
        Outcome::Ok
    );
    assert_eq!(emb.reply_text(), "hello there");

    let user = Event::User(UserEvent {
        name: "deploy".into(),
        payload: b"v2".to_vec(),
        ltime: 3,
        coalesce: true,
    });
    let emb2 = TestEmbedder::new();
    assert_eq!(run(&host, &echo, user, emb2.clone()), Outcome::Ok);
    assert!(
        emb2.replies.lock().unwrap().is_empty(),
        "a user event gets no reply"
    );
    assert_eq!(
        run(
            &host,
            &echo,
            Event::MemberJoin(vec![member("n1", "10.0.0.1", &[])]),
            emb2
        ),
        Outcome::Ok
    );
    let stats = echo.stats();
    assert_eq!(
        (stats.invocations, stats.ok, stats.errors, stats.traps),
        (3, 3, 0, 0)
    );
    assert!(stats.p50.is_some() && stats.p99.is_some());
}

#[test]
fn blob_streams_exactly_n_patterned_bytes() {
    let host = host();
    let blob = host.load(spec("blob", &guests().blob)).unwrap();
    for n in [0usize, 1, 100_000] {
        let emb = TestEmbedder::new();
        assert_eq!(
            run(
                &host,
                &blob,
                query("blob", n.to_string().as_bytes()),
                emb.clone()
            ),
            Outcome::Ok
        );
        let r = emb.reply();
        assert!(r.finished);
        assert_eq!(r.bytes.len(), n);
        assert!(
            r.bytes
                .iter()
                .enumerate()
                .all(|(i, b)| usize::from(*b) == i % 251),
            "pattern for n={n}"
        );
        if n == 100_000 {
            assert!(
                r.chunks >= 2,
                "a 100000-byte reply arrives in several chunks, got {}",
                r.chunks
            );
        }
    }
    let emb = TestEmbedder::new();
    match run(&host, &blob, query("blob", b"lots"), emb) {
        Outcome::GuestError(msg) => assert!(msg.contains("not a byte count"), "{msg}"),
        other => panic!("expected a guest error, got {other:?}"),
    }
}

#[test]
fn a_reply_over_the_askers_limit_is_a_guest_visible_error() {
    let host = host();
    let blob = host.load(spec("blob", &guests().blob)).unwrap();
    let emb = Arc::new(TestEmbedder {
        me: Some(member("self", "127.0.0.1", &[])),
        reply_limit: Some(1024),
        ..TestEmbedder::default()
    });
    match run(&host, &blob, query("blob", b"100000"), emb.clone()) {
        Outcome::GuestError(msg) => assert!(msg.contains("TooLarge(1024)"), "{msg}"),
        other => panic!("expected the guest to report the refused reply, got {other:?}"),
    }
    assert!(!emb.reply().finished);
}

#[test]
fn sysinfo_reads_the_granted_proc_and_explains_without_it() {
    let host = host();
    let mut granted = spec("sysinfo", &guests().sysinfo);
    granted.grants.dirs.push(DirGrant {
        host: "/proc".into(),
        guest: "/proc".into(),
    });
    let sysinfo = host.load(granted).unwrap();
    let emb = TestEmbedder::new();
    assert_eq!(
        run(&host, &sysinfo, query("sysinfo", b""), emb.clone()),
        Outcome::Ok
    );
    let text = emb.reply_text();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert!(
        text.contains(&format!("hostname={}\n", hostname.trim())),
        "{text}"
    );
    for key in ["uptime_seconds=", "load1=", "load5=", "load15="] {
        assert!(text.contains(key), "{key} missing in {text}");
    }

    let ungranted = host
        .load(spec("sysinfo-nogrant", &guests().sysinfo))
        .unwrap();
    let emb = TestEmbedder::new();
    match run(&host, &ungranted, query("sysinfo", b""), emb.clone()) {
        Outcome::GuestError(msg) => {
            assert!(
                msg.contains("cannot read /proc") && msg.contains("granted read-only"),
                "{msg}"
            )
        }
        other => panic!("expected a clear error without the grant, got {other:?}"),
    }
    assert!(emb.replies.lock().unwrap().is_empty());
}

#[test]
fn resolve_answers_with_the_members_offering_the_service() {
    let host = host();
    let resolve = host.load(spec("resolve", &guests().resolve)).unwrap();
    let mut failed = member("web3", "10.0.0.3", &[("service:web", "80")]);
    failed.status = hearsay_host::MemberStatus::Failed;
    let emb = TestEmbedder::with_members(vec![
        member("web1", "10.0.0.1", &[("service:web", "8080")]),
        member(
            "web2",
            "fd00::2",
            &[("service:web", "8080"), ("role", "edge")],
        ),
        failed,
        member("db1", "10.0.0.4", &[("service:db", "5432")]),
        member("proxy", "10.0.0.5", &[("service:web", "192.168.1.9:443")]),
        member("odd", "10.0.0.6", &[("service:web", "not-a-port")]),
    ]);
    assert_eq!(
        run(&host, &resolve, query("resolve", b"web"), emb.clone()),
        Outcome::Ok
    );
    assert_eq!(
        emb.reply_text(),
        "10.0.0.1:8080\n192.168.1.9:443\n[fd00::2]:8080\n"
    );

    let emb2 =
        TestEmbedder::with_members(vec![member("db1", "10.0.0.4", &[("service:db", "5432")])]);
    assert_eq!(
        run(&host, &resolve, query("resolve", b"cache"), emb2.clone()),
        Outcome::Ok
    );
    assert_eq!(emb2.reply_text(), "");
}

#[test]
fn a_looping_guest_is_stopped_at_its_deadline_and_does_not_hold_up_others() {
    let host = host();
    let mut looper = spec("looper", &guests().probe);
    looper.limits.timeout = Duration::from_secs(10);
    let looper = host.load(looper).unwrap();
    let echo = host.load(spec("echo", &guests().echo)).unwrap();

    let Dispatch::Queued(looping) = host.dispatch(&looper, query("loop", b""), TestEmbedder::new())
    else {
        panic!("dropped")
    };
    // Bounded wait until a worker has taken the looping event.
    for _ in 0..1000 {
        if looper.queued() == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let emb = TestEmbedder::new();
    assert_eq!(
        run(&host, &echo, query("ping", b"still here"), emb.clone()),
        Outcome::Ok
    );
    assert_eq!(emb.reply_text(), "still here");
    assert!(
        looping.wait(Duration::ZERO).is_none(),
        "the looper is still running while echo completed"
    );

    let outcome = looping.wait(WAIT).expect("the deadline stops the looper");
    assert_eq!(trap_kind(&outcome), TrapKind::Deadline, "{outcome:?}");
    let stats = looper.stats();
    assert_eq!((stats.traps, stats.timeouts), (1, 1));
}

#[test]
fn hostile_guests_trap_with_their_cause_and_the_host_keeps_serving() {
    let host = host();
    let mut probe = spec("probe", &guests().probe);
    probe.limits.memory_bytes = 16 << 20;
    probe.limits.timeout = Duration::from_secs(30);
    let probe = host.load(probe).unwrap();
    let echo = host.load(spec("echo", &guests().echo)).unwrap();

    // Unbounded recursion in a Rust guest runs its shadow stack (in linear memory) off the bottom.
    let cases: [(&str, &[TrapKind], &str); 3] = [
        (
            "hog",
            &[TrapKind::Memory],
            "memory limit of 16777216 bytes exceeded",
        ),
        (
            "recurse",
            &[TrapKind::StackOverflow, TrapKind::MemoryFault],
            "wasm trap",
        ),
        ("panic", &[TrapKind::Abort], "probe panicked on purpose"),
    ];
    for (mode, kinds, needle) in cases {
        let emb = TestEmbedder::new();
        let outcome = run(&host, &probe, query(mode, b""), emb.clone());
        assert!(kinds.contains(&trap_kind(&outcome)), "{mode}: {outcome:?}");
        let Outcome::Trap { message, .. } = &outcome else {
            unreachable!()
        };
        assert!(message.contains(needle), "{mode}: {message}");
        assert!(emb.replies.lock().unwrap().is_empty(), "{mode} replied");

        let emb = TestEmbedder::new();
        assert_eq!(
            run(&host, &echo, query("ping", mode.as_bytes()), emb.clone()),
            Outcome::Ok,
            "after {mode}"
        );
        assert_eq!(emb.reply_text(), mode);
    }
    match run(&host, &probe, query("fail", b""), TestEmbedder::new()) {
        Outcome::GuestError(msg) => assert_eq!(msg, "probe failed on purpose"),
        other => panic!("{other:?}"),
    }
    let stats = probe.stats();
    assert_eq!(
        (stats.invocations, stats.traps, stats.errors, stats.ok),
        (4, 3, 1, 0)
    );
}

#[test]
fn ungranted_files_and_sockets_are_refused() {
    let host = host();
    let probe = host.load(spec("probe", &guests().probe)).unwrap();
    let dir = scratch_dir("secret");
    let secret = dir.join("secret.txt");
    std::fs::write(&secret, "TOP-SECRET-4711").unwrap();

    let emb = TestEmbedder::new();
    assert_eq!(
        run(
            &host,
            &probe,
            query("file", secret.to_str().unwrap().as_bytes()),
            emb.clone()
        ),
        Outcome::Ok
    );
    let text = emb.reply_text();
    assert!(
        text.starts_with("refused:") && !text.contains("TOP-SECRET"),
        "{text}"
    );

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let emb = TestEmbedder::new();
    assert_eq!(
        run(&host, &probe, query("socket", addr.as_bytes()), emb.clone()),
        Outcome::Ok
    );
    let text = emb.reply_text();
    assert!(text.starts_with("refused:"), "{text}");
    assert!(
        listener.accept().is_err(),
        "no connection reached the listener"
    );

    // A granted directory is readable, and only it.
    let mut granted = spec("probe-dir", &guests().probe);
    granted.grants.dirs.push(DirGrant {
        host: dir.clone(),
        guest: "/data".into(),
    });
    let granted = host.load(granted).unwrap();
    let emb = TestEmbedder::new();
    assert_eq!(
        run(
            &host,
            &granted,
            query("file", b"/data/secret.txt"),
            emb.clone()
        ),
        Outcome::Ok
    );
    assert_eq!(emb.reply_text(), "read:TOP-SECRET-4711");
    let emb = TestEmbedder::new();
    assert_eq!(
        run(
            &host,
            &granted,
            query("file", b"/data/../../etc/hostname"),
            emb.clone()
        ),
        Outcome::Ok
    );
    assert!(emb.reply_text().starts_with("refused:"));
}

#[test]
fn env_clocks_and_emit_need_grants() {
    let host = host();
    let bare = host.load(spec("bare", &guests().probe)).unwrap();
    let mut full = spec("granted", &guests().probe);
    full.grants.env.push(("REGION".into(), "eu-1".into()));
    full.grants.clocks = true;
    full.grants.emit = true;
    let full = host.load(full).unwrap();

    let ask = |h: &Handler, mode: &str, emb: Arc<TestEmbedder>| {
        assert_eq!(
            run(&host, h, query(mode, b"payload"), emb.clone()),
            Outcome::Ok,
            "{mode}"
        );
        emb.reply_text()
    };
    assert_eq!(ask(&bare, "env", TestEmbedder::new()), "");
    assert_eq!(ask(&full, "env", TestEmbedder::new()), "REGION=eu-1\n");
    assert_eq!(ask(&bare, "clock", TestEmbedder::new()), "0");
    assert!(
        ask(&full, "clock", TestEmbedder::new())
            .parse::<u64>()
            .unwrap()
            > 1_600_000_000
    );

    let emb = TestEmbedder::new();
    assert_eq!(
        ask(&bare, "emit", emb.clone()),
        "refused:EmitError::NotGranted"
    );
    assert!(emb.emitted.lock().unwrap().is_empty());
    let emb = TestEmbedder::new();
    assert_eq!(ask(&full, "emit", emb.clone()), "ok");
    assert_eq!(
        *emb.emitted.lock().unwrap(),
        vec![("probe-emitted".to_string(), b"payload".to_vec(), false)]
    );

    // A tenant's handler emits only inside its namespace: the probe's "probe-emitted" is
    // refused with the reason under "payments/", and goes out under "probe-".
    for (prefix, emitted) in [("payments/", false), ("probe-", true)] {
        let mut s = spec(&format!("emit-{prefix}"), &guests().probe);
        s.grants.emit = true;
        s.grants.emit_prefix = Some(prefix.into());
        let h = host.load(s).unwrap();
        let emb = TestEmbedder::new();
        let answer = ask(&h, "emit", emb.clone());
        if emitted {
            assert_eq!(answer, "ok");
        } else {
            assert!(
                answer.starts_with("refused:EmitError::Rejected") && answer.contains("payments/"),
                "{answer}"
            );
        }
        assert_eq!(
            emb.emitted.lock().unwrap().len(),
            usize::from(emitted),
            "{prefix}"
        );
    }
}

#[test]
fn one_reply_per_query_members_and_abandoned_streams() {
    let host = host();
    let probe = host.load(spec("probe", &guests().probe)).unwrap();

    let emb = TestEmbedder::new();
    assert_eq!(
        run(&host, &probe, query("twice", b""), emb.clone()),
        Outcome::Ok
    );
    assert_eq!(
        emb.reply_text(),
        "second reply: Err(ReplyError::AlreadyReplied)"
    );

    let emb = TestEmbedder::new();
    assert_eq!(
        run(&host, &probe, query("abandon", b""), emb.clone()),
        Outcome::Ok
    );
    let r = emb.reply();
    assert_eq!((r.bytes.as_slice(), r.finished), (&b"partial"[..], false));

    let emb = TestEmbedder::with_members(vec![member("peer", "10.1.2.3", &[])]);
    assert_eq!(
        run(&host, &probe, query("members", b""), emb.clone()),
        Outcome::Ok
    );
    assert_eq!(
        emb.reply_text(),
        "self 127.0.0.1:7946 MemberStatus::Alive\nself 127.0.0.1:7946 MemberStatus::Alive\npeer 10.1.2.3:7946 MemberStatus::Alive\n"
    );
}

#[test]
fn a_guest_exit_status_maps_to_the_outcome() {
    let host = host();
    let probe = host.load(spec("probe", &guests().probe)).unwrap();
    assert_eq!(
        run(&host, &probe, query("exit", b"0"), TestEmbedder::new()),
        Outcome::Ok
    );
    // WASI p2's exit carries only success or failure: every non-zero status arrives as 1.
    assert_eq!(
        run(&host, &probe, query("exit", b"3"), TestEmbedder::new()),
        Outcome::GuestError("exited with status 1".into())
    );
}

#[test]
fn a_full_queue_drops_and_counts_without_blocking() {
    let host = host();
    let mut looper = spec("looper", &guests().probe);
    looper.limits.queue = 1;
    looper.limits.timeout = Duration::from_secs(2);
    let looper = host.load(looper).unwrap();
    let Dispatch::Queued(first) = host.dispatch(&looper, query("loop", b""), TestEmbedder::new())
    else {
        panic!("dropped")
    };
    for _ in 0..1000 {
        if looper.queued() == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let Dispatch::Queued(second) = host.dispatch(&looper, query("loop", b""), TestEmbedder::new())
    else {
        panic!("the queue holds one event")
    };
    assert!(matches!(
        host.dispatch(&looper, query("loop", b""), TestEmbedder::new()),
        Dispatch::Dropped
    ));
    assert_eq!(looper.stats().drops, 1);
    assert_eq!(trap_kind(&first.wait(WAIT).unwrap()), TrapKind::Deadline);
    assert_eq!(trap_kind(&second.wait(WAIT).unwrap()), TrapKind::Deadline);
    assert_eq!(looper.stats().invocations, 2);
}

#[test]
fn reload_swaps_the_module_and_keeps_stats() {
    let host = host();
    let h = host.load(spec("swap", &guests().echo)).unwrap();
    let emb = TestEmbedder::new();
    assert_eq!(
        run(&host, &h, query("fail", b"x"), emb.clone()),
        Outcome::Ok
    );
    let echo_sha = h.info().sha256;
    host.reload(&h, spec("ignored", &guests().probe)).unwrap();
    assert_eq!(h.name(), "swap");
    assert_ne!(h.info().sha256, echo_sha);
    assert!(matches!(
        run(&host, &h, query("fail", b"x"), TestEmbedder::new()),
        Outcome::GuestError(_)
    ));
    // A bad reload leaves the working module in place.
    assert!(host
        .reload(
            &h,
            HandlerSpec::new("x", ModuleSource::Bytes(b"junk".to_vec()))
        )
        .is_err());
    assert!(matches!(
        run(&host, &h, query("fail", b"x"), TestEmbedder::new()),
        Outcome::GuestError(_)
    ));
    assert_eq!(h.stats().invocations, 3);
}

#[test]
fn bad_modules_give_clear_load_errors() {
    let host = host();
    let load = |bytes: Vec<u8>| {
        host.load(HandlerSpec::new("bad", ModuleSource::Bytes(bytes)))
            .err()
            .expect("load fails")
    };
    let e = load(b"this is not wasm at all".to_vec());
    assert!(matches!(e, HostError::NotWasm { .. }), "{e}");
    assert!(e.to_string().contains("not a WebAssembly component"), "{e}");
    let e = load(b"\0asm\x01\0\0\0".to_vec());
    assert!(matches!(e, HostError::CoreModule { .. }), "{e}");
    let mut truncated = std::fs::read(&guests().echo).unwrap();
    truncated.truncate(truncated.len() / 2);
    let e = load(truncated);
    assert!(matches!(e, HostError::Compile { .. }), "{e}");
    let e = host
        .load(spec(
            "missing",
            std::path::Path::new("/nonexistent/handler.wasm"),
        ))
        .err()
        .unwrap();
    assert!(matches!(e, HostError::ReadModule { .. }), "{e}");
    let mut nodir = spec("nodir", &guests().sysinfo);
    nodir.grants.dirs.push(DirGrant {
        host: "/nonexistent-dir".into(),
        guest: "/x".into(),
    });
    assert!(matches!(
        host.load(nodir).err().unwrap(),
        HostError::Grant { .. }
    ));
    let mut fuel = spec("fuel", &guests().echo);
    fuel.limits = Limits {
        fuel: Some(1000),
        ..Limits::default()
    };
    assert!(matches!(
        host.load(fuel).err().unwrap(),
        HostError::Limits { .. }
    ));
    // The host still loads and runs good handlers.
    let echo = host.load(spec("echo", &guests().echo)).unwrap();
    assert_eq!(
        run(&host, &echo, query("q", b"ok"), TestEmbedder::new()),
        Outcome::Ok
    );
}

#[test]
fn fuel_limits_stop_a_busy_guest() {
    let host = Host::new(HostConfig {
        workers: 1,
        fuel: true,
        ..HostConfig::default()
    })
    .unwrap();
    let mut looper = spec("fuel", &guests().probe);
    looper.limits.fuel = Some(50_000_000);
    looper.limits.timeout = Duration::from_secs(600);
    let looper = host.load(looper).unwrap();
    assert_eq!(
        trap_kind(&run(
            &host,
            &looper,
            query("loop", b""),
            TestEmbedder::new()
        )),
        TrapKind::OutOfFuel
    );
}

#[test]
fn the_sdk_template_builds_and_answers() {
    let host = host();
    let h = host.load(spec("template", &guests().template)).unwrap();
    let emb = TestEmbedder::with_members(vec![member("peer", "10.1.2.3", &[])]);
    assert_eq!(
        run(&host, &h, query("hello", b"hi there"), emb.clone()),
        Outcome::Ok
    );
    assert_eq!(emb.reply_text(), "hi there");
}

/// Each event runs in an instance no event ran in before, although the host makes the next
/// instance ahead of time: one by one, in a burst, after a trap and after a reload, a probe finds
/// its statics as the module initialised them.
#[test]
fn every_event_gets_a_fresh_instance() {
    let host = host();
    let a = host.load(spec("a", &guests().probe)).unwrap();
    let b = host.load(spec("b", &guests().probe)).unwrap();
    let fresh = "calls=1 word=7";
    let state = |h: &Handler| {
        let emb = TestEmbedder::new();
        assert_eq!(run(&host, h, query("state", b""), emb.clone()), Outcome::Ok);
        emb.reply_text()
    };
    for _ in 0..4 {
        assert_eq!(state(&a), fresh);
        assert_eq!(state(&b), fresh);
    }
    let burst: Vec<_> = (0..20)
        .map(|_| {
            let emb = TestEmbedder::new();
            match host.dispatch(&a, query("state", b""), emb.clone()) {
                Dispatch::Queued(t) => (t, emb),
                Dispatch::Dropped => panic!("event dropped"),
            }
        })
        .collect();
    for (ticket, emb) in burst {
        assert_eq!(ticket.wait(WAIT), Some(Outcome::Ok));
        assert_eq!(emb.reply_text(), fresh);
    }
    assert_eq!(
        trap_kind(&run(&host, &a, query("panic", b""), TestEmbedder::new())),
        TrapKind::Abort
    );
    assert_eq!(state(&a), fresh);
    host.reload(&a, spec("a", &guests().probe)).unwrap();
    assert_eq!(state(&a), fresh);
    assert_eq!(a.stats().invocations, 4 + 20 + 3);
}
