//! Tenants on a live agent beside the real serf: queries sent with serf's own CLI reach only the
//! handlers of the tenant whose namespace they are in (never the operator's `query` handler),
//! names outside every namespace stay the operator's, a tenant's handler cannot emit outside its
//! namespace, and an agent whose tenant handler reaches outside its namespace does not start.

mod agent_support;

use std::path::Path;

use agent_support::{
    agent_error, free_port, require_serf, responses, scratch, serf, start_agent, wait_answers, Serf,
};
use hearsay_testkit::wasm::guests;

/// An agent joined to `join` with two tenants and three handlers, all the probe guest: `pay`
/// (tenant payments), `find` (tenant search) and `op` (the operator's, every query); each is
/// told apart by the `WHO` variable it is granted.
fn config(dir: &Path, gossip: u16, rpc: &str, join: std::net::SocketAddr) -> String {
    let probe = guests(Path::new(env!("CARGO_TARGET_TMPDIR"))).probe.clone();
    format!(
        "node_name = \"h1\"\nbind = \"127.0.0.1:{gossip}\"\nrpc_addr = \"{rpc}\"\n\
         profile = \"local\"\nstart_join = [\"{join}\"]\nhandler_cache_dir = \"{cache}\"\n\n\
         [[tenant]]\nname = \"payments\"\ngrants = {{ env = [\"WHO\"], emit = true }}\n\n\
         [[tenant]]\nname = \"search\"\ngrants = {{ env = [\"WHO\"] }}\n\n\
         [[handler]]\nname = \"pay\"\ntenant = \"payments\"\nmodule = \"{probe}\"\n\
         events = \"query:payments/env,query:payments/emit\"\n\
         grants = {{ env = {{ WHO = \"pay\" }}, emit = true }}\n\n\
         [[handler]]\nname = \"find\"\ntenant = \"search\"\nmodule = \"{probe}\"\n\
         events = \"query:search/env\"\ngrants = {{ env = {{ WHO = \"search\" }} }}\n\n\
         [[handler]]\nname = \"op\"\nmodule = \"{probe}\"\nevents = \"query\"\n\
         grants = {{ env = {{ WHO = \"op\" }}, emit = true }}\n",
        cache = dir.join("cache").display(),
        probe = probe.display(),
    )
}

#[test]
fn each_tenants_queries_reach_only_its_handlers() {
    require_serf();
    let dir = scratch("tenants");
    let s = Serf::start("tenants", &["-profile=local"]);
    let (gossip, rpc) = (free_port(), format!("127.0.0.1:{}", free_port()));
    let path = dir.join("h1.toml");
    std::fs::write(&path, config(&dir, gossip, &rpc, s.addr())).unwrap();
    let mut agent = start_agent(&[format!("-config-file={}", path.display())]);
    agent.expect_line("==> Log data will now stream in");

    // Sent through the serf agent's RPC, answered by h1's handlers over gossip. A query goes to
    // every handler its filter admits and the first reply answers for the node: were the
    // operator's `query` handler admitted too, `op` would answer some of these.
    let serf_rpc = format!("127.0.0.1:{}", s.rpc);
    let who = |name: &str| -> String {
        let got = wait_answers(serf, &serf_rpc, name, "", &["h1"]);
        let answer = &got[0].1;
        answer
            .lines()
            .find_map(|l| l.strip_prefix("WHO="))
            .unwrap_or_else(|| panic!("{name}: {answer}"))
            .to_owned()
    };
    for _ in 0..3 {
        assert_eq!(who("payments/env"), "pay");
        assert_eq!(who("search/env"), "search");
        // Outside every namespace: the operator's.
        assert_eq!(who("env"), "op");
        assert_eq!(who("billing/env"), "op");
    }

    // A name in a tenant's namespace that none of its handlers takes reaches no handler at all:
    // the operator's `query` handler would answer it (with the clock) if it were admitted.
    let out = serf(&[
        "query",
        &format!("-rpc-addr={serf_rpc}"),
        "-timeout=3s",
        "payments/clock",
        "",
    ]);
    assert!(responses(&out).is_empty(), "{out}");

    // The tenant's handler may emit, but only names in its namespace: the probe's
    // `probe-emitted` is refused with the reason; the operator's handler sends it.
    let got = wait_answers(serf, &serf_rpc, "payments/emit", "x", &["h1"]);
    assert!(
        got[0].1.starts_with("refused:EmitError::Rejected") && got[0].1.contains("payments/"),
        "{got:?}"
    );
    let got = wait_answers(serf, &serf_rpc, "emit", "x", &["h1"]);
    assert_eq!(got[0].1, "ok");
}

#[test]
fn a_tenant_handler_outside_its_namespace_stops_the_agent_with_the_reason() {
    let dir = scratch("tenant-bad");
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        "[[tenant]]\nname = \"payments\"\n\n[[handler]]\nname = \"greedy\"\ntenant = \"payments\"\n\
         module = \"/nonexistent/x.wasm\"\nevents = \"query\"\n",
    )
    .unwrap();
    let e = agent_error(&[&format!("-config-file={}", path.display())]);
    assert!(
        e.contains("\"greedy\"") && e.contains("namespace") && e.contains("query:payments/"),
        "{e}"
    );
    std::fs::write(
        &path,
        "[[handler]]\nname = \"lost\"\ntenant = \"nobody\"\nmodule = \"/x.wasm\"\nevents = \"query:nobody/x\"\n",
    )
    .unwrap();
    let e = agent_error(&[&format!("-config-file={}", path.display())]);
    assert!(e.contains("tenant \"nobody\" is not configured"), "{e}");
}
