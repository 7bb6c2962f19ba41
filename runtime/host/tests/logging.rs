//! Guest log lines, guest errors and traps reach the embedder's tracing subscriber, tagged with
//! the handler's name and the event. Its own test binary: it installs a global subscriber.

mod support;

use std::time::Duration;

use hearsay_host::{Dispatch, Event, Host, HostConfig, Query, UserEvent};
use support::{capture, guests, spec, TestEmbedder};

/// Runs `probe`'s `log` mode with `payload` (`N TEXT`) and waits for its outcome.
fn probe_logs(host: &Host, probe: &hearsay_host::Handler, payload: &str) {
    let event = Event::Query(Query {
        id: 2,
        name: "log".into(),
        payload: payload.as_bytes().to_vec(),
        ltime: 11,
        source_node: "asker".into(),
    });
    match host.dispatch(probe, event, TestEmbedder::new()) {
        Dispatch::Queued(t) => assert_eq!(
            t.wait(Duration::from_secs(120)),
            Some(hearsay_host::Outcome::Ok)
        ),
        Dispatch::Dropped => panic!("dropped"),
    }
}

fn probe_host(per_second: u32, per_event: u32) -> (Host, hearsay_host::Handler) {
    let host = Host::new(HostConfig {
        workers: 1,
        log_lines_per_second: per_second,
        log_lines_per_event: per_event,
        ..HostConfig::default()
    })
    .unwrap();
    let probe = host.load(spec("probe", &guests().probe)).unwrap();
    (host, probe)
}

#[test]
fn a_guest_cannot_forge_agent_log_lines() {
    let buffer = capture();
    let (host, probe) = probe_host(50, 200);
    let forged = "1 inject-marker\n2026-12-07T00:00:00Z  INFO agent: member-leave: node-a\r\u{1b}[2K\u{202e}";
    probe_logs(&host, &probe, forged);
    let log = buffer.text();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("inject-marker"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    let line = lines[0];
    assert!(
        line.contains("inject-marker\\n2026-12-07T00:00:00Z  INFO agent: member-leave"),
        "{line}"
    );
    assert!(line.contains("\\r\\u{1b}[2K\\u{202e}"), "{line}");
    assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
    assert!(
        !log.lines().any(|l| l.starts_with("2026-12-07T00:00:00Z")),
        "a forged line stands alone:\n{log}"
    );
}

#[test]
fn a_log_flood_is_cut_to_the_budget_with_one_summary() {
    let buffer = capture();
    let (host, probe) = probe_host(1000, 20);
    probe_logs(&host, &probe, "100000 flood-marker");
    let log = buffer.text();
    let written = log.lines().filter(|l| l.contains("flood-marker")).count();
    assert_eq!(written, 20, "the per-event budget");
    let summary: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("suppressed 99980 guest log lines"))
        .collect();
    assert_eq!(summary.len(), 1, "{log}");
    assert!(summary[0].contains("query:log"), "{}", summary[0]);
    assert_eq!(probe.stats().log_suppressed, 99_980);

    // The handler's budget per second holds whatever the per-event budget allows.
    let (host, probe) = probe_host(5, 1000);
    probe_logs(&host, &probe, "50 second-marker");
    let log = buffer.text();
    let written = log.lines().filter(|l| l.contains("second-marker")).count();
    // Five at once, and one more per 200 ms the event took (a loaded machine may be slow).
    assert!((5..50).contains(&written), "{written} lines");
    assert_eq!(probe.stats().log_suppressed, 50 - written as u64);
}

#[test]
fn guest_logs_errors_and_traps_are_logged_with_handler_and_event() {
    let buffer = capture();

    let host = Host::new(HostConfig {
        workers: 1,
        ..HostConfig::default()
    })
    .unwrap();
    let echo = host.load(spec("echo", &guests().echo)).unwrap();
    let probe = host.load(spec("probe", &guests().probe)).unwrap();
    let user = Event::User(UserEvent {
        name: "deploy".into(),
        payload: b"v2".to_vec(),
        ltime: 3,
        coalesce: false,
    });
    let query = |name: &str| {
        Event::Query(Query {
            id: 1,
            name: name.into(),
            payload: Vec::new(),
            ltime: 9,
            source_node: "asker".into(),
        })
    };
    for (handler, event) in [
        (&echo, user),
        (&probe, query("fail")),
        (&probe, query("panic")),
    ] {
        match host.dispatch(handler, event, TestEmbedder::new()) {
            Dispatch::Queued(t) => assert!(t.wait(Duration::from_secs(120)).is_some()),
            Dispatch::Dropped => panic!("dropped"),
        }
    }
    let log = buffer.text();
    let line = |needle: &str| {
        log.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{log}"))
            .to_string()
    };
    let guest_line = line("user event deploy at ltime 3: v2");
    assert!(
        guest_line.contains("handler=\"echo\"") || guest_line.contains("handler=echo"),
        "{guest_line}"
    );
    assert!(guest_line.contains("user:deploy"), "{guest_line}");
    let error_line = line("handler returned an error");
    assert!(
        error_line.contains("probe failed on purpose") && error_line.contains("query:fail"),
        "{error_line}"
    );
    let trap_line = line("handler trapped");
    assert!(
        trap_line.contains("probe panicked on purpose") && trap_line.contains("query:panic"),
        "{trap_line}"
    );
}
