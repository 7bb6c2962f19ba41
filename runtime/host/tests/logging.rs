//! Guest log lines, guest errors and traps reach the embedder's tracing subscriber, tagged with
//! the handler's name and the event. Its own test binary: it installs a global subscriber.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hearsay_host::{
    Dispatch, Event, HandlerSpec, Host, HostConfig, ModuleSource, Query, UserEvent,
};
use support::{guests, TestEmbedder};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn guest_logs_errors_and_traps_are_logged_with_handler_and_event() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .init();

    let host = Host::new(HostConfig {
        workers: 1,
        ..HostConfig::default()
    })
    .unwrap();
    let echo = host
        .load(HandlerSpec::new(
            "echo",
            ModuleSource::Path(guests().echo.clone()),
        ))
        .unwrap();
    let probe = host
        .load(HandlerSpec::new(
            "probe",
            ModuleSource::Path(guests().probe.clone()),
        ))
        .unwrap();
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
    let log = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
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
