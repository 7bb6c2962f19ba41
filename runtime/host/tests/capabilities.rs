//! The capabilities a handler can be granted (writable directories, commands, a key-value store,
//! its node's tags, timers), each used with its grant and attacked without it, and a component
//! built against contract 0.1.0 running beside them.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use hearsay_host::{
    Contract, DirGrant, Event, Host, HostConfig, HostError, KvGrant, Outcome, Tick, TrapKind,
};
use support::*;

fn host() -> Host {
    Host::new(HostConfig::default()).unwrap()
}

fn dir(host: &Path, guest: &str) -> DirGrant {
    DirGrant {
        host: host.to_path_buf(),
        guest: guest.into(),
    }
}

/// Runs probe mode `mode` with `payload` and returns its text reply.
fn ask(host: &Host, handler: &hearsay_host::Handler, mode: &str, payload: &str) -> String {
    let embedder = TestEmbedder::new();
    let outcome = run(
        host,
        handler,
        query(mode, payload.as_bytes()),
        embedder.clone(),
    );
    assert_eq!(outcome, Outcome::Ok, "{mode} {payload:?}");
    embedder.reply_text()
}

#[test]
fn writable_dirs_hold_and_nothing_outside_is_reachable() {
    let root = scratch_dir("write");
    let (out, ro, outside) = (root.join("out"), root.join("ro"), root.join("outside"));
    for d in [&out, &ro, &outside] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(ro.join("r"), "read only").unwrap();
    // A symlink inside the writable grant pointing out of it.
    std::os::unix::fs::symlink(&outside, out.join("link")).unwrap();
    let host = host();
    let mut s = spec("probe", &guests().probe);
    s.grants.write_dirs.push(dir(&out, "/out"));
    s.grants.dirs.push(dir(&ro, "/ro"));
    let h = host.load(s).unwrap();

    assert_eq!(ask(&host, &h, "write", "/out/a.txt\nhello"), "wrote");
    assert_eq!(std::fs::read_to_string(out.join("a.txt")).unwrap(), "hello");
    assert_eq!(ask(&host, &h, "file", "/out/a.txt"), "read:hello");
    // Escapes: `..` out of the grant, a symlink out of it, the read-only grant, a path
    // never granted.
    for target in [
        "/out/../outside/dotdot",
        "/out/link/through-link",
        "/ro/r",
        "/ro/new",
        "/outside/direct",
    ] {
        let r = ask(&host, &h, "write", &format!("{target}\nx"));
        assert!(r.starts_with("refused:"), "{target}: {r}");
    }
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    assert_eq!(std::fs::read_to_string(ro.join("r")).unwrap(), "read only");
    assert!(!ro.join("new").exists());

    // Without the grant nothing is writable.
    let bare = host.load(spec("bare", &guests().probe)).unwrap();
    assert!(ask(&host, &bare, "write", "/out/b\nx").starts_with("refused:"));
    assert!(!out.join("b").exists());
}

#[test]
fn granted_commands_run_with_their_fixed_argv_and_nothing_else_runs() {
    let host = host();
    let mut s = spec("probe", &guests().probe);
    s.grants.commands.insert(
        "greet".into(),
        vec![
            "/bin/sh".into(),
            "-c".into(),
            "printf 'got:'; cat; echo oops >&2; exit 3".into(),
        ],
    );
    s.grants.commands.insert(
        "hang".into(),
        vec!["/bin/sh".into(), "-c".into(), "sleep 600".into()],
    );
    s.limits.timeout = Duration::from_secs(2);
    let h = host.load(s).unwrap();
    assert_eq!(
        ask(&host, &h, "command", "greet\nstdin text"),
        "status=Some(3) signal=None cut=false out=got:stdin text err=oops\n"
    );
    // A name not granted (and a path, or a shell line, as a name) runs nothing.
    for name in ["reboot", "/bin/sh", "greet; id"] {
        assert_eq!(
            ask(&host, &h, "command", name),
            "refused:CommandError::NotGranted"
        );
    }
    // A command still running at the deadline ends the event as a timeout; the handler goes on.
    let outcome = run(&host, &h, query("command", b"hang"), TestEmbedder::new());
    assert_eq!(trap_kind(&outcome), TrapKind::Deadline, "{outcome:?}");
    assert!(ask(&host, &h, "command", "greet").starts_with("status=Some(3)"));

    let bare = host.load(spec("bare", &guests().probe)).unwrap();
    assert_eq!(
        ask(&host, &bare, "command", "greet"),
        "refused:CommandError::NotGranted"
    );
}

#[test]
fn the_store_keeps_values_across_events_and_hosts_within_its_quota() {
    let root = scratch_dir("kv");
    let grant = KvGrant {
        path: root.join("kv/probe.redb"),
        quota: 64,
    };
    {
        let host = host();
        let mut s = spec("probe", &guests().probe);
        s.grants.kv = Some(grant.clone());
        let h = host.load(s).unwrap();
        assert_eq!(ask(&host, &h, "kv", "get a"), "none");
        assert_eq!(ask(&host, &h, "kv", "set a 1"), "ok");
        assert_eq!(ask(&host, &h, "kv", "set b/x 2"), "ok");
        assert_eq!(ask(&host, &h, "kv", "get a"), "1");
        assert_eq!(ask(&host, &h, "kv", "keys b/"), "b/x");
        // Over the quota: refused, and what was there stays.
        let big = format!("set c {}", "v".repeat(80));
        assert_eq!(
            ask(&host, &h, "kv", &big),
            "refused:KvError::QuotaExceeded(64)"
        );
        assert_eq!(ask(&host, &h, "kv", "get c"), "none");
        assert_eq!(ask(&host, &h, "kv", "set  x"), "refused:KvError::BadKey(0)");
        // A reload keeps the store open and its values.
        let mut again = spec("probe", &guests().probe);
        again.grants.kv = Some(grant.clone());
        host.reload(&h, again).unwrap();
        assert_eq!(ask(&host, &h, "kv", "get b/x"), "2");
    }
    // A new host (the agent restarted) finds the values.
    let host = host();
    let mut s = spec("probe", &guests().probe);
    s.grants.kv = Some(grant);
    let h = host.load(s).unwrap();
    assert_eq!(ask(&host, &h, "kv", "get a"), "1");
    assert_eq!(ask(&host, &h, "kv", "del a"), "true");
    assert_eq!(ask(&host, &h, "kv", "get a"), "none");

    let bare = host.load(spec("bare", &guests().probe)).unwrap();
    assert_eq!(
        ask(&host, &bare, "kv", "get a"),
        "refused:KvError::NotGranted"
    );
}

#[test]
fn only_tags_matching_a_granted_pattern_change() {
    let host = host();
    let mut s = spec("probe", &guests().probe);
    s.grants.tags = vec!["service:*".into()];
    let h = host.load(s).unwrap();
    let embedder = TestEmbedder::new();
    for (payload, want) in [
        ("set service:web 8080", "ok"),
        ("del service:web", "ok"),
        ("set role admin", "refused:TagError::NotGranted"),
        ("set services:web 1", "refused:TagError::NotGranted"),
    ] {
        let outcome = run(
            &host,
            &h,
            query("tag", payload.as_bytes()),
            embedder.clone(),
        );
        assert_eq!(outcome, Outcome::Ok);
        let replies = embedder.replies.lock().unwrap();
        let last = replies.last().unwrap().lock().unwrap().bytes.clone();
        assert_eq!(String::from_utf8(last).unwrap(), want, "{payload}");
    }
    assert_eq!(
        *embedder.tags.lock().unwrap(),
        vec![
            ("service:web".to_owned(), Some("8080".to_owned())),
            ("service:web".to_owned(), None)
        ]
    );
    let bare = host.load(spec("bare", &guests().probe)).unwrap();
    assert_eq!(
        ask(&host, &bare, "tag", "set service:x 1"),
        "refused:TagError::NotGranted"
    );
}

#[test]
fn a_component_built_against_contract_0_1_still_runs() {
    let host = host();
    let old = host.load(spec("old", &guests().contract_v0_1)).unwrap();
    assert_eq!(old.info().contract, Contract::V0_1);
    assert_reply(&host, &old, "q", b"hi", "v0.1 hi");
    let tick = Event::Tick(Tick {
        period: Duration::from_secs(1),
        count: 1,
    });
    match run(&host, &old, tick.clone(), TestEmbedder::new()) {
        Outcome::GuestError(m) => assert!(m.contains("contract 0.1.0"), "{m}"),
        other => panic!("a tick reached a 0.1.0 handler: {other:?}"),
    }
    // Capabilities 0.1.0 has no interface for are refused at load, with the reason.
    let mut s = spec("old-cmd", &guests().contract_v0_1);
    s.grants.commands = BTreeMap::from([("x".to_owned(), vec!["/bin/true".to_owned()])]);
    match host.load(s) {
        Err(HostError::Capability { reason, .. }) => assert!(reason.contains("0.2.0"), "{reason}"),
        other => panic!("loaded: {:?}", other.map(|h| h.info())),
    }
    // The current contract takes ticks.
    let probe = host.load(spec("probe", &guests().probe)).unwrap();
    assert_eq!(probe.info().contract, Contract::V0_2);
    assert_eq!(run(&host, &probe, tick, TestEmbedder::new()), Outcome::Ok);
}
