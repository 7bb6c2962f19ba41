//! Handlers in every language, end to end on loopback: `hearsay new NAME -lang L` and then the
//! project's one build command (`./build.sh`) give a working component for Rust, C, Python and
//! JavaScript; one `hearsay agent` runs those four, the shipped echo in each language and the C
//! census; a real serf agent joins it, and the real `serf query` gets every one of their answers
//! (the other real handlers are checked in the host, `runtime/host/tests/languages.rs`: each
//! Python or JavaScript component here costs a compile of 12-18 MB). SIGTERM while the agent
//! compiles such a component at start stops it then. Every wait is bounded; nothing asserts
//! speed.

mod agent_support;

use agent_support::{free_port, hearsay, require_serf, scratch, serf, start_agent, wait_answers};
use agent_support::{NodeProcess, Serf};
use hearsay_testkit::wasm::{guests, language_handlers};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const LANGS: [&str; 4] = ["rust", "c", "python", "js"];
/// The hearsay agent's node name.
const NODE: &str = "polyglot";

fn target_tmp() -> &'static Path {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
}

/// `hearsay new app-LANG -lang LANG` in `dir`, then `./build.sh` there: the component.
fn new_project(dir: &Path, lang: &str) -> PathBuf {
    let name = format!("app-{lang}");
    let project = dir.join(&name);
    hearsay(&[
        "new",
        &name,
        "-lang",
        lang,
        &format!("-dir={}", project.display()),
    ]);
    let out = Command::new("./build.sh")
        .current_dir(&project)
        // The test build's flags are not meant for the project's own build.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("running the project's build.sh");
    assert!(
        out.status.success(),
        "{name}: ./build.sh failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let component = project.join(format!("{name}.wasm"));
    assert!(
        component.is_file(),
        "{name}: ./build.sh wrote no {name}.wasm"
    );
    component
}

/// `serf query -format=json NAME PAYLOAD` through serf's RPC until `NODE` answers (the query is
/// repeated while gossip settles, at most 90 s): its response.
fn serf_json_answer(
    agent: &Serf,
    name: &str,
    payload: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let out = serf(&[
            "query",
            &agent.rpc_arg(),
            "-format=json",
            "-timeout=3s",
            name,
            payload,
        ]);
        let v: serde_json::Value = serde_json::from_str(&out).expect("serf query's JSON");
        if let Some(text) = v["Responses"][NODE].as_str() {
            if done(text) {
                return text.to_owned();
            }
        }
        assert!(Instant::now() < deadline, "query {name} {payload:?}: {out}");
    }
}

#[test]
fn every_language_answers_the_real_serf_query() {
    require_serf();
    let dir = scratch("languages");
    let mut handlers: Vec<(String, PathBuf)> = LANGS
        .iter()
        .map(|lang| (format!("app-{lang}"), new_project(&dir, lang)))
        .collect();
    let shipped = language_handlers(target_tmp());
    handlers.push(("echo-rust".into(), guests(target_tmp()).echo.clone()));
    for lang in ["c", "python", "js"] {
        handlers.push((
            format!("echo-{lang}"),
            shipped.join(format!("echo-{lang}.wasm")),
        ));
    }
    handlers.push(("census".into(), shipped.join("census-c.wasm")));

    let serf_agent = Serf::start("languages", &["-tag", "role=db"]);
    let rpc = format!("127.0.0.1:{}", free_port());
    let mut args = vec![
        format!("-node={NODE}"),
        format!("-bind=127.0.0.1:{}", free_port()),
        format!("-rpc-addr={rpc}"),
        format!("-join={}", serf_agent.addr()),
        "-tag".into(),
        "role=web".into(),
        format!(
            "-handler-cache-dir={}",
            target_tmp().join("languages-agent-cache").display()
        ),
    ];
    for (query, component) in &handlers {
        args.push("-handler".into());
        args.push(format!("query:{query}={}", component.display()));
    }
    let mut agent: NodeProcess = start_agent(&args);
    // Five of its handlers are compiled at start (two of 12-18 MB each for Python and for
    // JavaScript): minutes in a debug build on a loaded machine.
    agent.wait_line_within("==> hearsay agent running", Duration::from_secs(900));

    // Each language's starter project and echo answer with the payload.
    let serf_rpc = format!("127.0.0.1:{}", serf_agent.rpc);
    for (query, _) in handlers
        .iter()
        .filter(|(q, _)| q.starts_with("app-") || q.starts_with("echo-"))
    {
        let payload = format!("hello {query}");
        let got = wait_answers(serf, &serf_rpc, query, &payload, &[NODE]);
        assert_eq!(got, [(NODE.to_owned(), payload)], "{query}");
    }

    // census (C): both members alive, one of them with role=web.
    let all = serf_json_answer(&serf_agent, "census", "", |t| t.contains("alive=2"));
    assert_eq!(
        all.trim_end(),
        "alive=2\nleaving=0\nleft=0\nfailed=0\nnone=0\ntotal=2"
    );
    let web = serf_json_answer(&serf_agent, "census", "role=web", |_| true);
    assert_eq!(
        web.trim_end(),
        "alive=1\nleaving=0\nleft=0\nfailed=0\nnone=0\ntotal=1"
    );
}

/// A 12 MB component compiles for seconds when an agent starts; SIGTERM meanwhile stops the
/// agent then, not once the compile is done.
#[test]
fn sigterm_while_a_large_handler_compiles_stops_the_start() {
    let js = language_handlers(target_tmp()).join("echo-js.wasm");
    let dir = scratch("sigterm-compile");
    let mut agent = start_agent(&[
        "-node=slow-start".into(),
        format!("-bind=127.0.0.1:{}", free_port()),
        format!("-rpc-addr=127.0.0.1:{}", free_port()),
        // An empty cache: the component is compiled.
        format!("-handler-cache-dir={}", dir.join("cache").display()),
        "-handler".into(),
        format!("query:echo={}", js.display()),
    ]);
    agent.expect_line("==> Starting hearsay agent");
    agent.signal("TERM");
    // Stopped without leaving: Serf's status 1.
    assert!(!agent.wait_exit(), "the agent exited with status 0");
    agent.read_for(Duration::from_millis(500));
    let out = agent.seen().join("\n");
    assert!(
        out.contains("Caught signal: terminated while starting"),
        "{out}"
    );
    assert!(
        !out.contains("handlers loaded"),
        "the compile finished first: {out}"
    );
}
