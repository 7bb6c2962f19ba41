//! End to end, real processes on loopback: three `hearsay agent`s with WebAssembly handlers
//! (`-handler query:echo=echo.wasm` flags, and `sysinfo` from a TOML `[[handler]]` block that
//! grants `/proc`). `hearsay query` and the real `serf query` get a reply from every node; a
//! user event reaches a handler on every node (its log line, and `hearsay handlers` counts); a
//! looping handler on one agent does not stop it answering echo; SIGHUP picks up a changed
//! handler set and keeps the old one when the new one is bad; bad handlers at start are one
//! error line. Every wait is bounded; nothing asserts speed.

mod agent_support;

use agent_support::{agent_error, free_port, require_serf, run_to_end, scratch, start_agent};
use agent_support::{hearsay, responses, serf, wait_answers};
use agent_support::{wait_join_seen, wait_output, NodeProcess};
use hearsay_testkit::wasm::{guests, Guests};
use std::path::Path;
use std::time::{Duration, Instant};

/// The flag-given handlers are named after their module file (`hearsay_handler_echo.wasm`),
/// the second one with the same name gets `-2`.
const ECHO: &str = "hearsay_handler_echo";
const DEPLOY: &str = "hearsay_handler_echo-2";

fn wasm() -> &'static Guests {
    guests(Path::new(env!("CARGO_TARGET_TMPDIR")))
}

/// One row of `hearsay handlers`: the columns after the name, by header.
fn handler_row(rpc: &str, name: &str) -> Option<std::collections::BTreeMap<String, String>> {
    let out = hearsay(&["handlers", &format!("-rpc-addr={rpc}")]);
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next()?.split_whitespace().collect();
    lines
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cols| cols.first() == Some(&name))
        .map(|cols| {
            header
                .iter()
                .zip(cols)
                .map(|(h, c)| (h.to_string(), c.to_string()))
                .collect()
        })
}

/// Waits until `hearsay handlers` at `rpc` shows handler `name` with `pred` true of its row.
fn wait_handler(
    rpc: &str,
    name: &str,
    what: &str,
    pred: impl Fn(&std::collections::BTreeMap<String, String>) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let row = handler_row(rpc, name);
        if row.as_ref().is_some_and(&pred) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {name} at {rpc} is {row:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn count(row: &std::collections::BTreeMap<String, String>, col: &str) -> u64 {
    row[col].parse().unwrap()
}

/// Waits until `query NAME PAYLOAD` through `rpc` gets a response from each of `nodes`.
fn wait_query_answers(
    rpc: &str,
    name: &str,
    payload: &str,
    nodes: &[&str],
) -> Vec<(String, String)> {
    wait_answers(hearsay, rpc, name, payload, nodes)
}

struct Cluster {
    agents: Vec<NodeProcess>,
    rpc: Vec<String>,
    toml: Vec<std::path::PathBuf>,
}

fn toml_for(i: usize, gossip: u16, rpc: &str, join: Option<u16>, extra: &str) -> String {
    let g = wasm();
    let mut t = format!(
        "node_name = \"n{i}\"\nbind = \"127.0.0.1:{gossip}\"\nrpc_addr = \"{rpc}\"\n\
         profile = \"local\"\n"
    );
    if let Some(p) = join {
        t.push_str(&format!("start_join = [\"127.0.0.1:{p}\"]\n"));
    }
    t.push_str(&format!(
        "\n[[handler]]\nname = \"sysinfo\"\nmodule = \"{}\"\nevents = \"query:sysinfo\"\n\
         grants = {{ dirs = [\"/proc\"] }}\n",
        g.sysinfo.display()
    ));
    t.push_str(extra);
    t
}

fn start_cluster(dir: &Path) -> Cluster {
    let g = wasm();
    let gossip: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let rpc: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let cache = dir.join("cache");
    let mut agents = Vec::new();
    let mut tomls = Vec::new();
    for i in 0..3 {
        // n2 also runs the hostile probe: `loop` queries spin until its 1 s deadline.
        let extra = if i == 2 {
            format!(
                "\n[[handler]]\nname = \"probe\"\nmodule = \"{}\"\nevents = \"query:loop\"\n\
                 limits = {{ timeout = \"1s\" }}\n",
                g.probe.display()
            )
        } else {
            String::new()
        };
        let path = dir.join(format!("n{i}.toml"));
        let join = (i > 0).then_some(gossip[0]);
        std::fs::write(&path, toml_for(i, gossip[i], &rpc[i], join, &extra)).unwrap();
        let mut a = start_agent(&[
            format!("-config-file={}", path.display()),
            format!("-handler=query:echo={}", g.echo.display()),
            format!("-handler=user:deploy={}", g.echo.display()),
            format!("-handler-cache-dir={}", cache.display()),
        ]);
        a.expect_line("==> Log data will now stream in");
        agents.push(a);
        tomls.push(path);
    }
    wait_join_seen(&mut agents[0], "n1", 0);
    wait_join_seen(&mut agents[0], "n2", 0);
    wait_join_seen(&mut agents[2], "n1", 0);
    Cluster {
        agents,
        rpc,
        toml: tomls,
    }
}

#[test]
fn three_agents_answer_queries_from_handlers_take_events_and_reload() {
    require_serf();
    let g = wasm();
    let dir = scratch("handlers-e2e");
    let mut c = start_cluster(&dir);
    let all = ["n0", "n1", "n2"];

    // hearsay query: every node answers echo with the payload.
    let got = wait_query_answers(&c.rpc[0], "echo", "hello", &all);
    assert!(got.iter().all(|(_, t)| t == "hello"), "{got:?}");

    // The real serf CLI against a hearsay agent's RPC: the same.
    let got = wait_answers(serf, &c.rpc[1], "echo", "hello", &all);
    assert!(got.iter().all(|(_, t)| t == "hello"), "{got:?}");

    // sysinfo, with /proc granted in the TOML file, from every node.
    let got = wait_query_answers(&c.rpc[2], "sysinfo", "", &all);
    // Only the first line of each reply is on the `Response from` line.
    assert!(
        got.iter().all(|(_, t)| t.starts_with("hostname=")),
        "{got:?}"
    );

    // A user event reaches the user:deploy handler on every node: its log line, its count.
    hearsay(&["event", &format!("-rpc-addr={}", c.rpc[0]), "deploy", "v1"]);
    for (i, a) in c.agents.iter_mut().enumerate() {
        wait_output(a, 0, "the handler's log line for deploy", |l| {
            l.contains("user event deploy at ltime") && l.contains("v1")
        });
        wait_handler(&c.rpc[i], DEPLOY, "deploy counted", |r| {
            count(r, "INVOCATIONS") == 1 && r["FILTER"] == "user:deploy"
        });
        // As in Serf, the agent logs the event before its handlers run.
        let seen = a.seen();
        let at = |pred: &dyn Fn(&str) -> bool| seen.iter().position(|l| pred(l));
        let received = at(&|l| l.contains("agent: Received event: user-event: deploy"));
        let handled = at(&|l| l.contains("user event deploy at ltime"));
        assert!(
            matches!((received, handled), (Some(r), Some(h)) if r < h),
            "node {i}: the Received line must come first: {seen:?}"
        );
    }

    // A looping handler on n2: its `loop` query hits the 1 s deadline, and meanwhile n2 still
    // answers echo queries.
    let rpc0 = c.rpc[0].clone();
    let looping = std::thread::spawn(move || {
        hearsay(&[
            "query",
            &format!("-rpc-addr={rpc0}"),
            "-timeout=3s",
            "loop",
            "",
        ])
    });
    let got = wait_query_answers(&c.rpc[2], "echo", "still", &all);
    assert!(got.iter().all(|(_, t)| t == "still"), "{got:?}");
    let loop_out = looping.join().unwrap();
    assert!(responses(&loop_out).is_empty(), "{loop_out}");
    wait_handler(&c.rpc[2], "probe", "the loop to hit its deadline", |r| {
        count(r, "TRAPS") >= 1
    });
    // `hearsay handlers` shows counts and latencies.
    let row = handler_row(&c.rpc[2], ECHO).unwrap();
    assert!(count(&row, "INVOCATIONS") >= 2, "{row:?}");
    assert_ne!(row["P50"], "-", "{row:?}");
    assert!(
        row["MODULE"].ends_with("hearsay_handler_echo.wasm"),
        "{row:?}"
    );
    let json = hearsay(&[
        "handlers",
        &format!("-rpc-addr={}", c.rpc[2]),
        "-format=json",
    ]);
    for want in [
        format!("\"name\": \"{ECHO}\""),
        "\"filter\": \"query:loop\"".to_owned(),
        "\"p99_us\": ".to_owned(),
        "\"timeouts\": 1".to_owned(),
    ] {
        assert!(json.contains(&want), "{want} in {json}");
    }

    // SIGHUP with a changed handler set: n1 gains blob on query:blob.
    let mut text = std::fs::read_to_string(&c.toml[1]).unwrap();
    text.push_str(&format!(
        "\n[[handler]]\nname = \"blob\"\nmodule = \"{}\"\nevents = \"query:blob\"\n",
        g.blob.display()
    ));
    std::fs::write(&c.toml[1], &text).unwrap();
    let from = c.agents[1].seen().len();
    c.agents[1].signal("HUP");
    wait_output(&mut c.agents[1], from, "the handlers reload", |l| {
        l.contains("agent: handlers reloaded")
    });
    let out = hearsay(&[
        "query",
        &format!("-rpc-addr={}", c.rpc[0]),
        "-timeout=3s",
        "blob",
        "16",
    ]);
    let got = responses(&out);
    assert_eq!(got.len(), 1, "only n1 has blob: {out}");
    assert_eq!(got[0].0, "n1");
    // A reply over Serf's UDP limit streams over QUIC to a hearsay originator.
    let out_dir = dir.join("large");
    let out = hearsay(&[
        "query",
        &format!("-rpc-addr={}", c.rpc[0]),
        "-timeout=10s",
        "-format=json",
        &format!("-output-dir={}", out_dir.display()),
        "blob",
        "100000",
    ]);
    assert!(out.contains("\"Bytes\": 100000"), "{out}");
    let files: Vec<_> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let body = std::fs::read(&files[0]).unwrap();
    assert_eq!(body.len(), 100_000);
    assert!(body.iter().enumerate().all(|(i, b)| *b as usize == i % 251));
    // The unchanged echo handler kept its counters through the reload.
    wait_handler(&c.rpc[1], ECHO, "echo kept", |r| {
        count(r, "INVOCATIONS") >= 2
    });

    // A bad new set (a module that does not exist) is refused; the old set keeps running.
    text.push_str("\n[[handler]]\nname = \"ghost\"\nmodule = \"/nonexistent/ghost.wasm\"\n");
    std::fs::write(&c.toml[1], &text).unwrap();
    let from = c.agents[1].seen().len();
    c.agents[1].signal("HUP");
    wait_output(&mut c.agents[1], from, "the refused reload", |l| {
        l.contains("failed to reload handlers") && l.contains("/nonexistent/ghost.wasm")
    });
    assert!(handler_row(&c.rpc[1], "ghost").is_none());
    assert!(handler_row(&c.rpc[1], "blob").is_some());
    wait_query_answers(&c.rpc[1], "echo", "after", &all);
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_handlers_at_start_are_one_error_line() {
    let g = wasm();
    let dir = scratch("handlers-bad");
    let port = |_: ()| format!("-bind=127.0.0.1:{}", free_port());
    let rpc = |_: ()| format!("-rpc-addr=127.0.0.1:{}", free_port());

    let e = agent_error(&[&port(()), &rpc(()), "-handler=query:x=/nonexistent/x.wasm"]);
    assert!(
        e.contains("/nonexistent/x.wasm") && e.contains("handler x"),
        "{e}"
    );

    let text = dir.join("script.wasm");
    std::fs::write(&text, "#!/bin/sh\necho hi\n").unwrap();
    let e = agent_error(&[
        &port(()),
        &rpc(()),
        &format!("-handler=user={}", text.display()),
    ]);
    assert!(e.contains("not a WebAssembly component"), "{e}");

    let e = agent_error(&[
        &port(()),
        &rpc(()),
        &format!("-handler=member-joined={}", g.echo.display()),
    ]);
    assert!(e.contains("member-joined") && e.contains("-handler"), "{e}");

    let toml = dir.join("bad.toml");
    std::fs::write(
        &toml,
        "[[handler]]\nmodule = \"x.wasm\"\ngrants = { net = true }\n",
    )
    .unwrap();
    let e = agent_error(&[
        &port(()),
        &rpc(()),
        &format!("-config-file={}", toml.display()),
    ]);
    assert!(e.contains("handler[0].grants.net"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn handlers_verb_against_a_serf_agent_says_it_is_a_hearsay_extension() {
    require_serf();
    let serf = agent_support::Serf::start("handlers-verb", &["-profile=local"]);
    let f = run_to_end(&["handlers".to_owned(), serf.rpc_arg()]);
    assert!(!f.success, "{}", f.stdout);
    assert!(
        f.stderr.contains("does not support the handlers command")
            && f.stderr.contains("hearsay extension"),
        "{}",
        f.stderr
    );
}

/// Four handlers asleep in host calls for an hour beside echo, on one agent with the default
/// two handler threads: echo answers every query, `hearsay handlers` shows the sleepers as
/// running (not idle), and SIGTERM stops the agent without waiting for them.
#[test]
fn stuck_handlers_do_not_starve_echo_and_sigterm_exits_at_once() {
    let g = wasm();
    let dir = scratch("handlers-stuck");
    let rpc = format!("127.0.0.1:{}", free_port());
    let mut toml = format!(
        "node_name = \"stuck\"\nbind = \"127.0.0.1:{}\"\nrpc_addr = \"{rpc}\"\nprofile = \"local\"\n",
        free_port()
    );
    for i in 0..4 {
        toml.push_str(&format!(
            "\n[[handler]]\nname = \"sleeper-{i}\"\nmodule = \"{}\"\nevents = \"query:sleep\"\n\
             limits = {{ timeout = \"1h\" }}\n",
            g.probe.display()
        ));
    }
    let path = dir.join("stuck.toml");
    std::fs::write(&path, toml).unwrap();
    let mut agent = start_agent(&[
        format!("-config-file={}", path.display()),
        format!("-handler=query:echo={}", g.echo.display()),
        format!("-handler-cache-dir={}", dir.join("cache").display()),
    ]);
    agent.expect_line("==> Log data will now stream in");

    // Nobody answers within the query's timeout: every sleeper is asleep for an hour.
    let out = hearsay(&[
        "query",
        &format!("-rpc-addr={rpc}"),
        "-timeout=2s",
        "sleep",
        "3600",
    ]);
    assert!(responses(&out).is_empty(), "{out}");
    for i in 0..4 {
        wait_handler(&rpc, &format!("sleeper-{i}"), "asleep", |r| {
            count(r, "RUNNING") == 1 && r["OLDEST"] != "-" && count(r, "INVOCATIONS") == 0
        });
    }
    for i in 0..3 {
        let payload = format!("awake-{i}");
        let got = wait_query_answers(&rpc, "echo", &payload, &["stuck"]);
        assert_eq!(got, [("stuck".to_owned(), payload)]);
    }
    let json = hearsay(&["handlers", &format!("-rpc-addr={rpc}"), "-format=json"]);
    assert!(json.contains("\"running\": 1"), "{json}");
    assert!(json.contains("\"oldest_running_us\": "), "{json}");

    // An event name cannot forge an agent log line: it is logged escaped, on one line.
    let forged = "forge-marker\n2026-12-07T00:00:00Z  INFO agent: member-leave: stuck";
    hearsay(&["event", &format!("-rpc-addr={rpc}"), forged, "x"]);
    wait_output(&mut agent, 0, "the escaped event name", |l| {
        l.contains("user-event: forge-marker\\n2026-12-07T00:00:00Z  INFO agent: member-leave")
    });
    assert!(
        !agent
            .seen()
            .iter()
            .any(|l| l.starts_with("2026-12-07T00:00:00Z")),
        "{:?}",
        agent.seen()
    );

    agent.signal("TERM");
    let started = Instant::now();
    agent.wait_exit();
    // Not a speed check: waiting for the sleepers would take an hour.
    let took = started.elapsed();
    assert!(took < Duration::from_secs(30), "SIGTERM took {took:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
