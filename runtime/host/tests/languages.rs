//! Handlers written in C, Python and JavaScript (`handlers/NAME-LANG`, built by
//! `scripts/build-handlers.sh` with each language's SDK) run in the host as the Rust ones do:
//! echo answers with exactly the payload's bytes (all 256 byte values), turns a refused reply into
//! its error, logs user and member events through the `log` import and takes ticks; each
//! language's real handler answers from the member list; and each SDK reaches the capabilities of
//! contract 0.2.0 (commands, the key-value store, tags, tick events) and outbound HTTP through
//! `tests/guests/sdk-probe`. Its own test binary: it installs a global subscriber to read the
//! guests' log lines.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hearsay_host::{
    Event, Host, HostConfig, HttpAllow, KvGrant, MemberStatus, Outcome, Tick, UserEvent,
};
use support::server::Server;
use support::{capture, member, query, run, scratch_dir, spec, TestEmbedder};

const LANGS: [&str; 3] = ["c", "python", "js"];

/// The test binary's log as text (the global subscriber is installed on first use).
fn log_text() -> String {
    capture().text()
}

/// The component of handler `name` (e.g. `echo-python`).
fn component(name: &str) -> PathBuf {
    let dir = hearsay_testkit::wasm::language_handlers(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let path = dir.join(format!("{name}.wasm"));
    assert!(path.is_file(), "{} was not built", path.display());
    path
}

/// A host whose compile cache the tests share (a 12-18 MB Python or JavaScript component is
/// compiled once per run).
fn host() -> Host {
    static CACHE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let cache = CACHE.get_or_init(|| scratch_dir("languages-cache").join("cache"));
    log_text();
    Host::new(HostConfig {
        workers: 2,
        cache_dir: Some(cache.clone()),
        ..HostConfig::default()
    })
    .unwrap()
}

/// Four members besides "self" (alive, no tags): two alive with a role, one failed, one left.
fn cluster() -> Arc<TestEmbedder> {
    let mut failed = member("old-1", "10.0.0.3", &[("role", "web")]);
    failed.status = MemberStatus::Failed;
    let mut left = member("gone-1", "10.0.0.4", &[]);
    left.status = MemberStatus::Left;
    TestEmbedder::with_members(vec![
        member("web-1", "10.0.0.1", &[("role", "web"), ("zone", "a")]),
        member("db-1", "10.0.0.2", &[("role", "db")]),
        failed,
        left,
    ])
}

#[test]
fn echo_in_every_language_answers_refuses_and_logs() {
    let host = host();
    let every_byte: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    for lang in LANGS {
        let name = format!("echo-{lang}");
        let echo = host.load(spec(&name, &component(&name))).unwrap();

        let emb = TestEmbedder::new();
        assert_eq!(
            run(&host, &echo, query("ping", &every_byte), emb.clone()),
            Outcome::Ok,
            "{name}"
        );
        let reply = emb.reply();
        assert!(reply.finished, "{name}: reply not finished");
        assert!(
            reply.bytes == every_byte,
            "{name}: the reply is not the payload's bytes"
        );

        // An asker that takes 16 bytes at most: the refusal comes back as the handler's error.
        let small = Arc::new(TestEmbedder {
            me: Some(member("self", "127.0.0.1", &[])),
            reply_limit: Some(16),
            ..TestEmbedder::default()
        });
        match run(&host, &echo, query("ping", &[b'x'; 100]), small) {
            Outcome::GuestError(e) => assert!(e.contains("16"), "{name}: {e}"),
            other => panic!("{name}: a too-large reply gave {other:?}"),
        }

        let user = Event::User(UserEvent {
            name: "deploy".into(),
            payload: format!("v2-{lang}").into_bytes(),
            ltime: 3,
            coalesce: true,
        });
        let emb = TestEmbedder::new();
        assert_eq!(run(&host, &echo, user, emb.clone()), Outcome::Ok, "{name}");
        assert!(
            emb.replies.lock().unwrap().is_empty(),
            "{name}: a user event gets no reply"
        );
        let join = Event::MemberJoin(vec![member(&format!("joiner-{lang}"), "10.0.0.9", &[])]);
        assert_eq!(
            run(&host, &echo, join, TestEmbedder::new()),
            Outcome::Ok,
            "{name}"
        );
        // A timer's tick (contract 0.2.0) is taken too.
        let tick = Event::Tick(Tick {
            period: Duration::from_secs(10),
            count: 1,
        });
        assert_eq!(
            run(&host, &echo, tick, TestEmbedder::new()),
            Outcome::Ok,
            "{name}"
        );

        let log = log_text();
        let line = |needle: &str| {
            log.lines()
                .find(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("{name}: no log line with {needle:?} in:\n{log}"))
                .to_owned()
        };
        let user_line = line(&format!("user event deploy at ltime 3: v2-{lang}"));
        assert!(user_line.contains(&name), "{user_line}");
        let join_line = line(&format!("joiner-{lang}"));
        assert!(join_line.contains("member-join"), "{join_line}");

        let stats = echo.stats();
        assert_eq!(
            (stats.invocations, stats.ok, stats.errors, stats.traps),
            (5, 4, 1, 0),
            "{name}"
        );
    }
}

/// The reply `handler` gives to `query(name, payload)` over [`cluster`], or its error.
fn answer(
    host: &Host,
    handler: &hearsay_host::Handler,
    name: &str,
    payload: &str,
) -> Result<String, String> {
    let emb = cluster();
    match run(host, handler, query(name, payload.as_bytes()), emb.clone()) {
        Outcome::Ok => Ok(emb.reply_text()),
        Outcome::GuestError(e) => Err(e),
        other => panic!("{name} {payload:?}: {other:?}"),
    }
}

#[test]
fn census_in_c_counts_members_by_status() {
    let host = host();
    let census = host.load(spec("census-c", &component("census-c"))).unwrap();
    assert_eq!(
        answer(&host, &census, "census", "").unwrap(),
        "alive=3\nleaving=0\nleft=1\nfailed=1\nnone=0\ntotal=5\n"
    );
    assert_eq!(
        answer(&host, &census, "census", "role=web").unwrap(),
        "alive=1\nleaving=0\nleft=0\nfailed=1\nnone=0\ntotal=2\n"
    );
    assert_eq!(
        answer(&host, &census, "census", "web").unwrap_err(),
        "census: payload must be KEY=VALUE, got web"
    );
}

#[test]
fn facts_in_python_describes_this_node_and_the_cluster() {
    let host = host();
    let facts = host
        .load(spec("facts-python", &component("facts-python")))
        .unwrap();
    let text = answer(&host, &facts, "facts", "role").unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["node"], "self", "{text}");
    assert_eq!(v["addr"], "127.0.0.1:7946", "{text}");
    assert_eq!(v["tags"], serde_json::json!({}), "{text}");
    assert_eq!(
        v["members"],
        serde_json::json!({"alive": 3, "failed": 1, "left": 1, "leaving": 0, "none": 0}),
        "{text}"
    );
    assert_eq!(v["total"], 5, "{text}");
    // Over alive members only: the failed web member is not counted.
    assert_eq!(
        v["tag_values"],
        serde_json::json!({"web": 1, "db": 1}),
        "{text}"
    );
    assert!(
        v["python"].as_str().is_some_and(|p| p.starts_with('3')),
        "{text}"
    );
    let plain: serde_json::Value =
        serde_json::from_str(&answer(&host, &facts, "facts", "").unwrap()).unwrap();
    assert!(plain.get("tag_values").is_none(), "{plain}");
    let bad = answer(&host, &facts, "facts", "\u{0}\u{ff}").err();
    assert!(
        bad.is_none() || bad.as_deref().is_some_and(|e| e.starts_with("facts:")),
        "{bad:?}"
    );
}

#[test]
fn select_in_javascript_filters_and_projects_members_as_json() {
    let host = host();
    let select = host
        .load(spec("select-js", &component("select-js")))
        .unwrap();
    let q = r#"{"where": {"status": "alive", "tags": {"role": "web"}}, "fields": ["name", "addr", "tags.role"]}"#;
    let v: serde_json::Value =
        serde_json::from_str(&answer(&host, &select, "select", q).unwrap()).unwrap();
    assert_eq!(
        v,
        serde_json::json!([{"name": "web-1", "addr": "10.0.0.1", "tags.role": "web"}])
    );

    // Every member, sorted by name, with the default fields.
    let all: serde_json::Value =
        serde_json::from_str(&answer(&host, &select, "select", "").unwrap()).unwrap();
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["db-1", "gone-1", "old-1", "self", "web-1"]);
    assert_eq!(all[0]["status"], "alive");
    assert_eq!(all[1]["status"], "left");
    assert_eq!(
        all[4]["tags"],
        serde_json::json!({"role": "web", "zone": "a"})
    );

    let err = answer(&host, &select, "select", "{not json").unwrap_err();
    assert!(err.starts_with("select: payload is not JSON"), "{err}");
}

/// The newest modification time of the files under `paths` (`__pycache__` left out).
fn newest(paths: &[PathBuf]) -> SystemTime {
    let mut latest = SystemTime::UNIX_EPOCH;
    for path in paths {
        if path.is_dir() {
            let entries: Vec<PathBuf> = std::fs::read_dir(path)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| !p.ends_with("__pycache__"))
                .collect();
            latest = latest.max(newest(&entries));
        } else {
            latest = latest.max(std::fs::metadata(path).unwrap().modified().unwrap());
        }
    }
    latest
}

/// The sdk-probe of `lang` (`tests/guests/sdk-probe/LANG`, see its README), built with the
/// language's SDK (`sdk/LANG/build.sh`) from a copy in the test's tmp dir; built again only when
/// the probe, the SDK or the WIT changed.
fn probe(lang: &str) -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = here.join("../..");
    let src = here.join("tests/guests/sdk-probe").join(lang);
    let sdk = root.join("sdk").join(lang);
    // Keyed by the checkout, so that worktrees sharing a target directory build their own.
    let checkout = std::hash::BuildHasher::hash_one(
        &std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default(),
        here,
    );
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("sdk-probe-{checkout:016x}"));
    let out = tmp.join(format!("sdk-probe-{lang}.wasm"));
    let mut inputs = vec![src.clone(), root.join("wit"), sdk.join("build.sh")];
    inputs.extend(match lang {
        "c" => vec![sdk.join("hearsay.h"), sdk.join("hearsay.c")],
        "python" => vec![sdk.join("hearsay")],
        _ => vec![sdk.join("hearsay.js"), sdk.join("build.mjs")],
    });
    let built = std::fs::metadata(&out).and_then(|m| m.modified()).ok();
    if built.is_some_and(|t| t > newest(&inputs)) {
        return out;
    }
    let project = tmp.join(lang);
    let _ = std::fs::remove_dir_all(&project);
    std::fs::create_dir_all(&project).unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, project.join(path.file_name().unwrap())).unwrap();
    }
    let partial = out.with_extension("wasm.tmp");
    let status = Command::new(sdk.join("build.sh"))
        .arg(&project)
        .arg(&partial)
        // The host build's flags are not meant for the tools the script runs.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .expect("running the SDK's build.sh");
    assert!(status.success(), "building the {lang} sdk-probe failed");
    std::fs::rename(&partial, &out).unwrap();
    out
}

/// The text of the last reply `handler` gave to `query(mode, payload)` (it must succeed).
fn ask_text(
    host: &Host,
    handler: &hearsay_host::Handler,
    mode: &str,
    payload: &str,
    emb: &Arc<TestEmbedder>,
) -> String {
    let outcome = run(host, handler, query(mode, payload.as_bytes()), emb.clone());
    assert_eq!(outcome, Outcome::Ok, "{mode} {payload:?}");
    let replies = emb.replies.lock().unwrap();
    let last = replies.last().unwrap().lock().unwrap();
    assert!(last.finished, "{mode} {payload:?}: reply not finished");
    String::from_utf8(last.bytes.clone()).unwrap()
}

#[test]
fn every_sdk_runs_commands_keeps_a_store_sets_tags_and_gets_ticks() {
    let host = host();
    for lang in LANGS {
        let path = probe(lang);
        let dir = scratch_dir(&format!("sdk-probe-{lang}"));
        let mut s = spec(&format!("probe-{lang}"), &path);
        s.grants.kv = Some(KvGrant {
            path: dir.join("kv/probe.redb"),
            quota: 64,
        });
        s.grants.commands.insert(
            "greet".into(),
            vec![
                "/bin/sh".into(),
                "-c".into(),
                "printf 'got:'; cat; echo oops >&2; exit 3".into(),
            ],
        );
        s.grants.commands.insert(
            "absent".into(),
            vec!["/nonexistent/hearsay-sdk-probe".into()],
        );
        s.grants.tags = vec!["service:*".into()];
        let h = host.load(s).unwrap();
        let emb = TestEmbedder::new();
        let ask = |mode: &str, payload: &str| ask_text(&host, &h, mode, payload, &emb);

        // The store: values kept across events, listed by prefix, the quota and bad keys refused.
        assert_eq!(ask("kv", "get a"), "none", "{lang}");
        assert_eq!(ask("kv", "set a 1"), "ok", "{lang}");
        assert_eq!(ask("kv", "set b/x 2"), "ok", "{lang}");
        assert_eq!(ask("kv", "get a"), "1", "{lang}");
        assert_eq!(ask("kv", "keys b/"), "b/x", "{lang}");
        assert_eq!(ask("kv", "keys "), "a,b/x", "{lang}");
        assert_eq!(
            ask("kv", &format!("set c {}", "v".repeat(80))),
            "refused:quota-exceeded(64)",
            "{lang}"
        );
        assert_eq!(ask("kv", "set  x"), "refused:bad-key(0)", "{lang}");
        assert_eq!(ask("kv", "del a"), "true", "{lang}");
        assert_eq!(ask("kv", "del a"), "false", "{lang}");
        assert_eq!(ask("kv", "get a"), "none", "{lang}");

        // Commands: the granted argv with the guest's stdin; names not granted run nothing.
        assert_eq!(
            ask("command", "greet\nstdin text"),
            "status=3 signal=none cut=false out=got:stdin text err=oops\n",
            "{lang}"
        );
        assert_eq!(
            ask("command", "greet"),
            "status=3 signal=none cut=false out=got: err=oops\n",
            "{lang}"
        );
        assert_eq!(ask("command", "reboot"), "refused:not-granted", "{lang}");
        assert_eq!(ask("command", "absent"), "refused:failed", "{lang}");

        // Tags: only names matching a granted pattern change, through the embedder.
        assert_eq!(ask("tag", "set service:web 8080"), "ok", "{lang}");
        assert_eq!(
            ask("tag", "set role admin"),
            "refused:not-granted",
            "{lang}"
        );
        assert_eq!(ask("tag", "del service:web"), "ok", "{lang}");
        assert_eq!(
            *emb.tags.lock().unwrap(),
            vec![
                ("service:web".to_owned(), Some("8080".to_owned())),
                ("service:web".to_owned(), None)
            ],
            "{lang}"
        );

        // A tick: the probe stores its period and count.
        let tick = Event::Tick(Tick {
            period: Duration::from_millis(1500),
            count: 2,
        });
        assert_eq!(
            run(&host, &h, tick.clone(), TestEmbedder::new()),
            Outcome::Ok,
            "{lang}"
        );
        assert_eq!(ask("kv", "get tick"), "1500/2", "{lang}");

        // Without grants every capability is refused, and the refusal reaches the guest.
        let bare = host.load(spec(&format!("bare-{lang}"), &path)).unwrap();
        let emb = TestEmbedder::new();
        for (mode, payload) in [
            ("kv", "get a"),
            ("command", "greet"),
            ("tag", "set service:web 1"),
        ] {
            assert_eq!(
                ask_text(&host, &bare, mode, payload, &emb),
                "refused:not-granted",
                "{lang}: {mode}"
            );
        }
        assert!(emb.tags.lock().unwrap().is_empty(), "{lang}");
        match run(&host, &bare, tick, TestEmbedder::new()) {
            Outcome::GuestError(e) => assert!(!e.is_empty(), "{lang}"),
            other => panic!("{lang}: a tick without the store gave {other:?}"),
        }
    }
}

/// What the sdk-probe in `lang` answers for a request refused as `kind`. JavaScript's `fetch`
/// rejects with a `TypeError` that does not say why, as in a browser (the agent's log does).
fn http_refused(lang: &str, kind: &str) -> String {
    if lang == "js" {
        "refused:network".into()
    } else {
        format!("refused:{kind}")
    }
}

#[test]
fn every_sdk_sends_http_through_the_allow_list() {
    // The agent's cap on a response body (`HTTP_BODY_CAP` in src/http.rs).
    const CAP: usize = 1 << 20;
    let host = host();
    let server = Server::answering("200 OK", b"hello from the server");
    let other = Server::answering("200 OK", b"never");
    let big = Server::answering("200 OK", &vec![b'x'; CAP + 1]);
    let garbled = Server::start(Some(b"this is not HTTP\r\n\r\n".to_vec()));
    // A port nothing listens on (taken, then released).
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let closed_url = format!("http://127.0.0.1:{closed}/ok/");
    for lang in LANGS {
        let path = probe(lang);
        let mut s = spec(&format!("http-{lang}"), &path);
        s.grants.http = [
            server.url("/ok/"),
            big.url("/big"),
            garbled.url("/"),
            closed_url.clone(),
        ]
        .iter()
        .map(|a| a.parse::<HttpAllow>().unwrap())
        .collect();
        let h = host.load(s).unwrap();
        let emb = TestEmbedder::new();
        let ask = |payload: &str| ask_text(&host, &h, "http", payload, &emb);

        // Granted: answered, the body sent with its length.
        assert_eq!(
            ask(&format!("GET {}", server.url("/ok/x"))),
            "status=200 body=hello from the server",
            "{lang}"
        );
        let body = format!("ping from {lang}\nsecond line");
        assert_eq!(
            ask(&format!("POST {}\n{body}", server.url("/ok/post"))),
            "status=200 body=hello from the server",
            "{lang}"
        );
        let seen = server.seen.lock().unwrap().clone();
        let (get, post) = (&seen[seen.len() - 2], &seen[seen.len() - 1]);
        assert!(
            get.head.starts_with("GET /ok/x HTTP/1.1\r\n"),
            "{lang}: {get:?}"
        );
        assert!(
            post.head.starts_with("POST /ok/post HTTP/1.1\r\n"),
            "{lang}: {post:?}"
        );
        let length = format!("content-length: {}\r\n", body.len());
        assert!(
            post.head.to_ascii_lowercase().contains(&length),
            "{lang}: {post:?}"
        );
        assert_eq!(post.body, body.as_bytes(), "{lang}");

        // Off the list (another path of the same origin, another port): denied before any
        // connection.
        let accepted = server.accepted();
        assert_eq!(
            ask(&format!("GET {}", server.url("/secret"))),
            http_refused(lang, "denied"),
            "{lang}"
        );
        assert_eq!(
            ask(&format!("GET {}", other.url("/ok/x"))),
            http_refused(lang, "denied"),
            "{lang}"
        );
        assert_eq!(
            (server.accepted(), other.accepted()),
            (accepted, 0),
            "{lang}"
        );

        // A body over the cap, a URL that is not http(s), a port nothing listens on, a server
        // that does not speak HTTP.
        assert_eq!(
            ask(&format!("GET {}", big.url("/big"))),
            http_refused(lang, "too-large"),
            "{lang}"
        );
        if lang == "js" {
            // fetch sends only http: and https: URLs; its error for others is not a TypeError.
            let outcome = run(&host, &h, query("http", b"GET ftp://x/ok/"), emb.clone());
            assert!(
                matches!(outcome, Outcome::GuestError(_)),
                "{lang}: {outcome:?}"
            );
        } else {
            assert_eq!(ask("GET ftp://x/ok/"), "refused:invalid-request", "{lang}");
        }
        assert_eq!(
            ask(&format!("GET {closed_url}")),
            http_refused(lang, "connection"),
            "{lang}"
        );
        assert_eq!(
            ask(&format!("GET {}", garbled.url("/"))),
            http_refused(lang, "response"),
            "{lang}"
        );

        // Without http grants nothing is sent.
        let bare = host
            .load(spec(&format!("http-bare-{lang}"), &path))
            .unwrap();
        assert_eq!(
            ask_text(
                &host,
                &bare,
                "http",
                &format!("GET {}", server.url("/ok/x")),
                &emb
            ),
            http_refused(lang, "denied"),
            "{lang}"
        );
        assert_eq!(server.accepted(), accepted, "{lang}");
    }
}
