//! Capabilities on a live agent beside the real serf: a handler on an `every:` timer sets a tag
//! of its node through its tags grant, and serf's own CLI lists the tag (gossip carried it; the
//! tags file was rewritten too); a handler's key-value store answers a serf query and keeps its
//! values across an agent restart.

mod agent_support;

use std::path::Path;
use std::time::{Duration, Instant};

use agent_support::{free_port, require_serf, scratch, serf, start_agent, wait_answers, Serf};
use hearsay_testkit::wasm::guests;

fn config(dir: &Path, gossip: u16, rpc: &str, join: std::net::SocketAddr) -> String {
    let probe = guests(Path::new(env!("CARGO_TARGET_TMPDIR"))).probe.clone();
    format!(
        "node_name = \"h1\"\nbind = \"127.0.0.1:{gossip}\"\nrpc_addr = \"{rpc}\"\n\
         profile = \"local\"\nstart_join = [\"{join}\"]\ndata_dir = \"{data}\"\n\
         tags_file = \"{tags}\"\nhandler_cache_dir = \"{cache}\"\n\n\
         [[handler]]\nname = \"probe\"\nmodule = \"{probe}\"\nevents = \"every:300ms,query:kv\"\n\
         grants = {{ tags = [\"tick:*\"], env = {{ PROBE_TICK_TAG = \"tick:count\" }}, kv = \"64KiB\" }}\n",
        data = dir.join("data").display(),
        tags = dir.join("tags.json").display(),
        cache = dir.join("cache").display(),
        probe = probe.display(),
    )
}

/// Waits (bounded) until the real serf lists `node` with a `tick:count` tag.
fn wait_serf_sees_tick_tag(s: &Serf, node: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let out = serf(&["members", &s.rpc_arg(), "-format=json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let tag = v["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == node)
            .and_then(|m| m["tags"]["tick:count"].as_str().map(str::to_owned));
        if let Some(t) = tag {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "serf never listed {node}'s tick tag: {out}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn a_timer_handler_sets_a_tag_serf_sees_and_its_store_survives_a_restart() {
    require_serf();
    let dir = scratch("caps");
    let s = Serf::start("caps", &["-profile=local"]);
    let (gossip, rpc) = (free_port(), format!("127.0.0.1:{}", free_port()));
    let path = dir.join("h1.toml");
    std::fs::write(&path, config(&dir, gossip, &rpc, s.addr())).unwrap();
    let args = [format!("-config-file={}", path.display())];
    let mut agent = start_agent(&args);
    agent.expect_line("==> Log data will now stream in");

    let count: u64 = wait_serf_sees_tick_tag(&s, "h1").parse().unwrap();
    assert!(count >= 1);
    let file = std::fs::read_to_string(dir.join("tags.json")).unwrap();
    assert!(file.contains("\"tick:count\""), "{file}");

    // The store, through serf's query CLI.
    let got = wait_answers(
        serf,
        &format!("127.0.0.1:{}", s.rpc),
        "kv",
        "set greeting hello",
        &["h1"],
    );
    assert_eq!(got[0].1, "ok");
    drop(agent);

    // Restarted on the same data_dir: the value is there.
    let mut agent = start_agent(&args);
    agent.expect_line("==> Log data will now stream in");
    let got = wait_answers(
        serf,
        &format!("127.0.0.1:{}", s.rpc),
        "kv",
        "get greeting",
        &["h1"],
    );
    assert_eq!(got[0].1, "hello");
}
