//! The ready-made handlers that act on the machine through grants: `upstreams` (a writable
//! directory, the `reload` command), `health` (one URL, one tag) and `run-on-event` (a granted
//! command with the payload on stdin), with real components, real commands (`/bin/sh`) and a
//! real HTTP server on 127.0.0.1. Every wait is bounded.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hearsay_host::{DirGrant, Event, HandlerSpec, Host, HostConfig, Outcome, Tick, UserEvent};
use support::{guests, member, run, scratch_dir, spec, TestEmbedder};

/// A host with two workers; the tests share one compile cache.
fn host() -> Host {
    static CACHE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(|| scratch_dir("service-handlers-cache").join("cache"));
    Host::new(HostConfig {
        workers: 2,
        cache_dir: Some(cache.clone()),
        ..HostConfig::default()
    })
    .unwrap()
}

/// A ready-made handler's component, built beside echo by the shared builder.
fn handler(name: &str) -> PathBuf {
    guests()
        .echo
        .with_file_name(format!("hearsay_handler_{name}.wasm"))
}

/// `sh -c SCRIPT` as a granted command's argv.
fn sh(script: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), script.into()]
}

fn upstreams(out: &Path, format: &str, reload: Option<Vec<String>>) -> HandlerSpec {
    let mut s = spec("upstreams", &handler("upstreams"));
    s.grants.write_dirs.push(DirGrant {
        host: out.to_path_buf(),
        guest: "/out".into(),
    });
    s.grants.env = vec![
        ("SERVICE".into(), "web".into()),
        ("FORMAT".into(), format.into()),
        ("FILE".into(), "/out/upstreams.conf".into()),
    ];
    if let Some(argv) = reload {
        s.grants.commands.insert("reload".into(), argv);
    }
    s
}

fn join() -> Event {
    Event::MemberJoin(vec![member("web-1", "10.0.0.1", &[])])
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn upstreams_writes_the_block_and_reloads_only_when_it_changes() {
    let host = host();
    let dir = scratch_dir("upstreams");
    let out = dir.join("out");
    std::fs::create_dir(&out).unwrap();
    let reloads = dir.join("reloads");
    let reload = sh(&format!("echo reloaded >> {}", reloads.display()));
    let h = host.load(upstreams(&out, "nginx", Some(reload))).unwrap();
    let file = out.join("upstreams.conf");

    let two = TestEmbedder::with_members(vec![
        member("web-2", "10.0.0.2", &[("service:web", "8080")]),
        member("web-1", "10.0.0.1", &[("service:web", "8080")]),
        member("db", "10.0.0.9", &[("service:db", "5432")]),
    ]);
    assert_eq!(run(&host, &h, join(), two.clone()), Outcome::Ok);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.ends_with(
            "upstream web {\n    server 10.0.0.1:8080;  # web-1\n    server 10.0.0.2:8080;  # web-2\n}\n"
        ),
        "{text}"
    );
    assert_eq!(lines(&reloads), ["reloaded"]);
    // The same members: nothing written, nothing reloaded.
    assert_eq!(run(&host, &h, join(), two), Outcome::Ok);
    assert_eq!(lines(&reloads), ["reloaded"]);
    // No temporary file or reload marker is left beside it.
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["upstreams.conf"]);

    // Nobody offers web: nginx's placeholder, and a reload.
    assert_eq!(run(&host, &h, join(), TestEmbedder::new()), Outcome::Ok);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("    server 127.0.0.1:1 down;\n}\n"), "{text}");
    assert_eq!(lines(&reloads), ["reloaded", "reloaded"]);
}

#[test]
fn upstreams_retries_a_failed_reload_on_the_next_event() {
    let host = host();
    let dir = scratch_dir("upstreams-retry");
    let out = dir.join("out");
    std::fs::create_dir(&out).unwrap();
    // Fails while the file `broken` exists.
    let broken = dir.join("broken");
    std::fs::write(&broken, "").unwrap();
    let reload = sh(&format!(
        "if [ -e {0} ]; then echo 'nginx: [emerg] broken' >&2; exit 1; fi; echo ok >> {0}.ok",
        broken.display()
    ));
    let h = host.load(upstreams(&out, "lines", Some(reload))).unwrap();
    let one =
        TestEmbedder::with_members(vec![member("web-1", "10.0.0.1", &[("service:web", "80")])]);
    match run(&host, &h, join(), one.clone()) {
        Outcome::GuestError(msg) => assert!(
            msg.contains("exit status 1") && msg.contains("[emerg] broken"),
            "{msg}"
        ),
        other => panic!("expected the failed reload as an error, got {other:?}"),
    }
    assert_eq!(lines(&out.join("upstreams.conf")), ["10.0.0.1:80"]);
    assert!(out.join(".upstreams.conf.reload").exists());
    // Unchanged file, but the reload is still owed.
    std::fs::remove_file(&broken).unwrap();
    assert_eq!(run(&host, &h, join(), one.clone()), Outcome::Ok);
    assert_eq!(lines(&dir.join("broken.ok")), ["ok"]);
    assert!(!out.join(".upstreams.conf.reload").exists());
    assert_eq!(run(&host, &h, join(), one), Outcome::Ok);
    assert_eq!(lines(&dir.join("broken.ok")), ["ok"]);
}

#[test]
fn upstreams_without_reload_or_settings() {
    let host = host();
    let out = scratch_dir("upstreams-plain");
    let h = host.load(upstreams(&out, "haproxy", None)).unwrap();
    let one =
        TestEmbedder::with_members(vec![member("web 1", "10.0.0.1", &[("service:web", "80")])]);
    assert_eq!(run(&host, &h, join(), one), Outcome::Ok);
    let text = std::fs::read_to_string(out.join("upstreams.conf")).unwrap();
    assert!(
        text.ends_with("backend web\n    server web_1 10.0.0.1:80 check\n"),
        "{text}"
    );

    let mut bad = upstreams(&out, "apache", None);
    bad.name = "upstreams-bad".into();
    let h = host.load(bad).unwrap();
    match run(&host, &h, join(), TestEmbedder::new()) {
        Outcome::GuestError(msg) => assert!(msg.contains("FORMAT=\"apache\""), "{msg}"),
        other => panic!("expected a bad FORMAT to be an error, got {other:?}"),
    }
    let mut unset = spec("upstreams-unset", &handler("upstreams"));
    unset.grants.env = vec![("SERVICE".into(), "web".into())];
    let h = host.load(unset).unwrap();
    match run(&host, &h, join(), TestEmbedder::new()) {
        Outcome::GuestError(msg) => assert!(msg.contains("FILE is not set"), "{msg}"),
        other => panic!("expected a missing FILE to be an error, got {other:?}"),
    }
    // No writable grant: the error says which file and hints at the grant.
    let mut ungranted = spec("upstreams-ungranted", &handler("upstreams"));
    ungranted.grants.env = vec![
        ("SERVICE".into(), "web".into()),
        ("FILE".into(), "/out/upstreams.conf".into()),
    ];
    let h = host.load(ungranted).unwrap();
    match run(&host, &h, join(), TestEmbedder::new()) {
        Outcome::GuestError(msg) => {
            assert!(msg.contains("/out/") && msg.contains("write_dirs"), "{msg}")
        }
        other => panic!("expected an error without the grant, got {other:?}"),
    }
}

fn user(name: &str, payload: &[u8]) -> Event {
    Event::User(UserEvent {
        name: name.into(),
        payload: payload.to_vec(),
        ltime: 1,
        coalesce: false,
    })
}

#[test]
fn run_on_event_runs_the_granted_command_with_the_payload() {
    let host = host();
    let dir = scratch_dir("run-on-event");
    let got = dir.join("got");
    let mut s = spec("run-on-event", &handler("run_on_event"));
    s.grants
        .commands
        .insert("run".into(), sh(&format!("cat > {}", got.display())));
    let h = host.load(s).unwrap();
    assert_eq!(
        run(&host, &h, user("deploy", b"v2\n"), TestEmbedder::new()),
        Outcome::Ok
    );
    assert_eq!(std::fs::read_to_string(&got).unwrap(), "v2\n");
    // Not a user event: nothing runs.
    std::fs::remove_file(&got).unwrap();
    assert_eq!(run(&host, &h, join(), TestEmbedder::new()), Outcome::Ok);
    assert!(!got.exists());

    // $COMMAND names another command; its failure is the event's error.
    let mut s = spec("run-on-event-fails", &handler("run_on_event"));
    s.grants.env = vec![("COMMAND".into(), "deploy".into())];
    s.grants.commands.insert(
        "deploy".into(),
        sh("echo 'step 1 failed' >&2; echo more >&2; exit 3"),
    );
    let h = host.load(s).unwrap();
    match run(&host, &h, user("deploy", b""), TestEmbedder::new()) {
        Outcome::GuestError(msg) => assert!(
            msg.contains("user event deploy") && msg.contains("exit status 3"),
            "{msg}"
        ),
        other => panic!("expected the failure as an error, got {other:?}"),
    }

    // Nothing granted: the error says what to grant.
    let h = host
        .load(spec("run-on-event-ungranted", &handler("run_on_event")))
        .unwrap();
    match run(&host, &h, user("deploy", b""), TestEmbedder::new()) {
        Outcome::GuestError(msg) => assert!(msg.contains("no command \"run\" is granted"), "{msg}"),
        other => panic!("expected an error without the grant, got {other:?}"),
    }
}

/// A server on 127.0.0.1 answering every request with `status_line` (e.g. `200 OK`); its port.
fn http_server(status_line: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for socket in listener.incoming() {
            let Ok(mut socket) = socket else { return };
            let mut reader = BufReader::new(socket.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                line.clear();
            }
            let _ = write!(
                socket,
                "HTTP/1.1 {status_line}\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
            );
        }
    });
    port
}

/// The health handler checking `http://127.0.0.1:PORT/health`, offering `service:web=8080`.
fn health(host: &Host, name: &str, port: u16, tags: bool) -> hearsay_host::Handler {
    let url = format!("http://127.0.0.1:{port}/health");
    let mut s = spec(name, &handler("health"));
    s.grants.http = vec![url.parse().unwrap()];
    if tags {
        s.grants.tags = vec!["service:web".into()];
    }
    s.grants.env = vec![
        ("SERVICE".into(), "web".into()),
        ("URL".into(), url),
        ("PORT".into(), "8080".into()),
    ];
    host.load(s).unwrap()
}

fn tick() -> Event {
    Event::Tick(Tick {
        period: std::time::Duration::from_secs(2),
        count: 1,
    })
}

/// This node, with tag service:web set to `value` (or not at all).
fn node(value: Option<&str>) -> Arc<TestEmbedder> {
    let tags: Vec<(&str, &str)> = value.map(|v| ("service:web", v)).into_iter().collect();
    Arc::new(TestEmbedder {
        me: Some(member("self", "127.0.0.1", &tags)),
        ..TestEmbedder::default()
    })
}

fn tag_changes(emb: &TestEmbedder) -> Vec<(String, Option<String>)> {
    emb.tags.lock().unwrap().clone()
}

#[test]
fn health_sets_the_tag_while_healthy_and_deletes_it_otherwise() {
    let host = host();
    let up = health(&host, "health-up", http_server("200 OK"), true);
    let set = [("service:web".to_string(), Some("8080".to_string()))];
    let emb = node(None);
    assert_eq!(run(&host, &up, tick(), emb.clone()), Outcome::Ok);
    assert_eq!(tag_changes(&emb), set);
    // Already set to that value: no change.
    let emb = node(Some("8080"));
    assert_eq!(run(&host, &up, tick(), emb.clone()), Outcome::Ok);
    assert_eq!(tag_changes(&emb), []);
    // Set to another value: corrected.
    let emb = node(Some("9090"));
    assert_eq!(run(&host, &up, tick(), emb.clone()), Outcome::Ok);
    assert_eq!(tag_changes(&emb), set);
    // Only ticks start a check.
    let emb = node(None);
    assert_eq!(run(&host, &up, join(), emb.clone()), Outcome::Ok);
    assert_eq!(tag_changes(&emb), []);

    let deleted = [("service:web".to_string(), None)];
    let failing = health(
        &host,
        "health-503",
        http_server("503 Service Unavailable"),
        true,
    );
    let emb = node(Some("8080"));
    assert_eq!(run(&host, &failing, tick(), emb.clone()), Outcome::Ok);
    assert_eq!(tag_changes(&emb), deleted);
    let emb = node(None);
    assert_eq!(run(&host, &failing, tick(), emb.clone()), Outcome::Ok);
    assert_eq!(tag_changes(&emb), []);

    // Nobody listening: unhealthy too.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = health(&host, "health-down", closed, true);
    let emb = node(Some("8080"));
    assert_eq!(run(&host, &down, tick(), emb.clone()), Outcome::Ok);
    assert_eq!(tag_changes(&emb), deleted);

    // Without the tags grant, the refusal is the event's error.
    let ungranted = health(&host, "health-ungranted", http_server("200 OK"), false);
    match run(&host, &ungranted, tick(), node(None)) {
        Outcome::GuestError(msg) => assert!(msg.contains("cannot set tag service:web"), "{msg}"),
        other => panic!("expected an error without the tags grant, got {other:?}"),
    }
}
