//! The runnable examples (`examples/*/run.sh`) end to end, as a user runs them: each script
//! runs to its end with the `hearsay` this test was built with (`HEARSAY_BIN`), the handler
//! components the other tests build (`HEARSAY_WASM_DIR`) and a block of free loopback ports
//! (`EXAMPLE_PORT_BASE`), so nothing is built twice. It must exit 0 within a bounded time and
//! print what its README promises; an example that breaks fails here. Nothing asserts speed.

use hearsay_testkit::serf::require_serf;
use hearsay_testkit::wasm::guests;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long one example may take: agents start, compile their handlers once (a debug build
/// compiles slowly on a busy machine), gossip, and each query waits out its timeout.
const DEADLINE: Duration = Duration::from_secs(300);

/// Ports an example may use from its base.
const BLOCK: u16 = 20;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository's root")
}

/// A base port whose next `BLOCK` ports are free for TCP and UDP on 127.0.0.1-4 (the examples
/// bind there), never one this process handed out before.
fn free_block() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
        ^ std::process::id();
    // Below Linux's ephemeral range (32768 up), where the OS hands out ports by itself.
    let bases: Vec<u16> = (0..300u32)
        .map(|i| 20_000 + ((seed.wrapping_add(i * 7919) % 600) as u16) * BLOCK)
        .collect();
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let free = |base: u16| {
        (base..base + BLOCK).all(|port| {
            (1..=4u8).all(|host| {
                let ip = Ipv4Addr::new(127, 0, 0, host);
                TcpListener::bind((ip, port)).is_ok() && UdpSocket::bind((ip, port)).is_ok()
            })
        })
    };
    let base = bases
        .into_iter()
        .find(|b| !given.contains(b) && free(*b))
        .expect("no free block of loopback ports");
    given.push(base);
    base
}

/// Runs `examples/<name>/run.sh` to its end and returns its stdout and stderr together.
fn run_example(name: &str) -> String {
    let wasm = guests(Path::new(env!("CARGO_TARGET_TMPDIR")));
    let wasm_dir = wasm.echo.parent().expect("the guests' directory");
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("example-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let out_path = scratch.join("output");
    let out = std::fs::File::create(&out_path).unwrap();
    let script = repo().join("examples").join(name).join("run.sh");
    let mut child = Command::new("bash")
        .arg(&script)
        .env("HEARSAY_BIN", env!("CARGO_BIN_EXE_hearsay"))
        .env("HEARSAY_WASM_DIR", wasm_dir)
        .env("EXAMPLE_PORT_BASE", free_block().to_string())
        // The agents' compiled-module cache, kept between runs of this test.
        .env(
            "XDG_CACHE_HOME",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("examples-cache"),
        )
        .env_remove("EXAMPLE_KEEP")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        // Its own process group, so a hung run is stopped with every agent it started.
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            stop_group(child.id());
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&scratch);
    match status {
        Some(s) if s.success() => output,
        Some(s) => panic!(
            "{} exited with {s}; its output:\n{output}",
            script.display()
        ),
        None => panic!(
            "{} did not finish within {DEADLINE:?}; its output:\n{output}",
            script.display()
        ),
    }
}

/// SIGTERM to the script's process group (its EXIT trap then stops the agents), SIGKILL to
/// what is left after a grace period.
fn stop_group(pgid: u32) {
    let group = format!("-{pgid}");
    let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
    std::thread::sleep(Duration::from_secs(5));
    let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
}

/// Fails unless `output` has a line containing `text`.
fn expect_line(output: &str, text: &str) {
    assert!(
        output.lines().any(|l| l.contains(text)),
        "no line with {text:?} in the example's output:\n{output}"
    );
}

/// Fails unless the lines `first` and `second` follow each other in `output`.
fn expect_lines(output: &str, first: &str, second: &str) {
    let lines: Vec<&str> = output.lines().collect();
    assert!(
        lines.windows(2).any(|w| w[0] == first && w[1] == second),
        "no line {first:?} followed by {second:?} in the example's output:\n{output}"
    );
}

#[test]
fn mixed_cluster_serf_cli_reaches_hearsay_handlers() {
    require_serf();
    let out = run_example("mixed-cluster");
    for node in ["serf-1", "hearsay-1", "hearsay-2"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(&format!("{node} ")) && l.contains("alive")),
            "serf members does not list {node} alive:\n{out}"
        );
    }
    expect_line(&out, "guest: user event deploy at ltime");
    expect_line(&out, "Ack from 'serf-1'");
    expect_line(&out, "Response from 'hearsay-1': hello");
    expect_line(&out, "Response from 'hearsay-2': hello");
    expect_line(&out, "Response from 'hearsay-2': hostname=");
    expect_line(&out, "uptime_seconds=");
    expect_line(&out, "== mixed-cluster: OK");
}

#[test]
fn naming_service_resolves_names() {
    let out = run_example("naming-service");
    expect_lines(
        &out,
        "Response from 'ns-1': 127.0.0.2:8081",
        "127.0.0.3:8081",
    );
    expect_line(&out, "Response from 'ns-2': 127.0.0.1:5432");
    for n in 1..=3 {
        expect_line(&out, &format!("Response from 'ns-{n}': 127.0.0.1:8080"));
    }
    // `nosuch`: an empty answer.
    assert!(
        out.lines().any(|l| l == "Response from 'ns-3': "),
        "no empty answer from ns-3 for nosuch:\n{out}"
    );
    expect_lines(
        &out,
        "Response from 'ns-3': 127.0.0.1:8081",
        "127.0.0.2:8081",
    );
    expect_lines(
        &out,
        "Response from 'ns-1': 127.0.0.1:8081",
        "127.0.0.3:8081",
    );
    expect_line(&out, "== naming-service: OK");
}

/// The backends of each upstream block the load-balancer example shows (`$ cat
/// .../upstreams.conf`), in order: the last byte of each `server 127.0.0.N:PORT;` address.
fn upstream_blocks(out: &str) -> Vec<Vec<String>> {
    out.split("\n$ cat ")
        .skip(1)
        .map(|block| {
            block
                .lines()
                .skip(1)
                .take_while(|l| !l.starts_with("-- "))
                .filter_map(|l| l.trim().strip_prefix("server 127.0.0."))
                .filter_map(|rest| rest.split(':').next())
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

/// The backends that answered each round of requests through nginx the example shows
/// (`$ for i in ...; do curl -s ...; done`), in order, each once, sorted.
fn answer_rounds(out: &str) -> Vec<Vec<String>> {
    out.split("; do curl -s ")
        .skip(1)
        .map(|round| {
            let mut names: Vec<String> = round
                .lines()
                .skip(1)
                .take_while(|l| !["== ", "$ ", "-- "].iter().any(|p| l.starts_with(p)))
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect();
            names.sort();
            names.dedup();
            names
        })
        .collect()
}

#[test]
fn load_balancer_follows_backend_health() {
    // The script installs nginx and curl from Debian's packages when they are missing.
    let out = run_example("load-balancer");
    let all = ["2", "3", "4"];
    let without_3 = ["2", "4"];
    assert_eq!(
        upstream_blocks(&out),
        [&all[..], &without_3, &without_3, &all],
        "the upstream blocks shown:\n{out}"
    );
    let names = |ns: &[&str]| ns.iter().map(|n| format!("web-{n}")).collect::<Vec<_>>();
    assert_eq!(
        answer_rounds(&out),
        [
            names(&all),
            names(&without_3),
            names(&without_3),
            names(&all)
        ],
        "the answers through nginx:\n{out}"
    );
    expect_line(&out, "deleted tag service:web");
    expect_line(&out, "== load-balancer: OK");
}
