//! Tenants' RPC identity, end to end on loopback: one `hearsay agent` with `rpc_auth` and two
//! `[[tenant]]`s (`payments`, `search`), each with an echo handler, driven by the real `serf`
//! CLI and by `hearsay handlers`. A tenant's token reads the members and sends events and
//! queries in its namespace only; everything else is refused with the permission error and the
//! connection goes on; its stream carries only its namespace's events; it lists only its own
//! handlers. The operator's key does everything; a wrong token fails auth. Every command is
//! bounded by a deadline.

mod agent_support;

use agent_support::{free_port, require_serf, run_bounded, run_to_end, scratch, start_agent};
use hearsay_rpc::codec::Fields;
use hearsay_rpc::{token_digest, RpcClient};
use hearsay_testkit::wasm::guests;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const OPERATOR: &str = "operator-secret";
const PAY: &str = "pay-token";
const SEARCH: &str = "search-token";

/// `sha256:HEX` of `token`, as `rpc_tokens` takes it.
fn token_hash(token: &str) -> String {
    let hex: String = token_digest(token)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// How a bounded `serf` run ended: success, and its stdout and stderr together.
fn serf_run(args: &[&str]) -> (bool, String) {
    let mut cmd = Command::new("serf");
    cmd.args(args).env_remove("SERF_RPC_AUTH");
    let f = run_bounded(cmd, Duration::from_secs(30));
    (f.success, f.stdout + &f.stderr)
}

/// `serf <verb> -rpc-addr=RPC -rpc-auth=TOKEN <rest>`.
fn serf_as(rpc: &str, token: &str, verb: &str, rest: &[&str]) -> (bool, String) {
    let addr = format!("-rpc-addr={rpc}");
    let auth = format!("-rpc-auth={token}");
    let mut args = vec![verb, &addr, &auth];
    args.extend(rest);
    serf_run(&args)
}

/// Asserts `serf ...` succeeded; its output.
fn ok(r: (bool, String), what: &str) -> String {
    assert!(r.0, "{what} failed: {}", r.1);
    r.1
}

/// Asserts `serf ...` failed with `error` in its output.
fn refused(r: (bool, String), what: &str, error: &str) {
    assert!(!r.0, "{what} should fail: {}", r.1);
    assert!(r.1.contains(error), "{what}: expected {error:?} in {}", r.1);
}

/// The rows of `hearsay handlers` as `token`: (name, tenant).
fn handler_rows(rpc: &str, token: &str) -> Vec<(String, String)> {
    let f = run_to_end(&[
        "handlers".into(),
        format!("-rpc-addr={rpc}"),
        format!("-rpc-auth={token}"),
    ]);
    assert!(
        f.success,
        "hearsay handlers as {token}: {}{}",
        f.stdout, f.stderr
    );
    let mut lines = f.stdout.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header[..2], ["NAME", "TENANT"], "{}", f.stdout);
    // The handlers' table ends at a blank line (the per-tenant totals follow).
    let mut rows: Vec<(String, String)> = lines
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .map(|c| (c[0].to_owned(), c[1].to_owned()))
        .collect();
    rows.sort();
    rows
}

fn config(gossip: u16, rpc: &str) -> String {
    let echo = guests(Path::new(env!("CARGO_TARGET_TMPDIR"))).echo.clone();
    let mut t = format!(
        "node_name = \"n0\"\nbind = \"127.0.0.1:{gossip}\"\nrpc_addr = \"{rpc}\"\n\
         rpc_auth = \"{OPERATOR}\"\nprofile = \"local\"\n"
    );
    for (tenant, token) in [("payments", PAY), ("search", SEARCH)] {
        t.push_str(&format!(
            "\n[[tenant]]\nname = \"{tenant}\"\nrpc_tokens = [\"{}\"]\n\
             \n[[handler]]\nname = \"{tenant}-echo\"\ntenant = \"{tenant}\"\nmodule = \"{}\"\n\
             events = \"query:{tenant}/q\"\n",
            token_hash(token),
            echo.display()
        ));
    }
    t.push_str(&format!(
        "\n[[handler]]\nname = \"ops-echo\"\nmodule = \"{}\"\nevents = \"query:echo\"\n",
        echo.display()
    ));
    t
}

#[test]
fn tenants_act_only_in_their_namespace_and_the_operator_everywhere() {
    require_serf();
    let dir = scratch("tenant-rpc");
    let rpc = format!("127.0.0.1:{}", free_port());
    let path = dir.join("agent.toml");
    std::fs::write(&path, config(free_port(), &rpc)).unwrap();
    let mut agent = start_agent(&[format!("-config-file={}", path.display())]);
    agent.expect_line("==> Log data will now stream in");

    // As payments: members, its own events and queries.
    let out = ok(serf_as(&rpc, PAY, "members", &[]), "members as payments");
    assert!(out.contains("n0"), "{out}");
    ok(
        serf_as(&rpc, PAY, "event", &["payments/refund", "x"]),
        "event payments/refund",
    );
    let out = ok(
        serf_as(&rpc, PAY, "query", &["-timeout=5s", "payments/q", "hi"]),
        "query payments/q",
    );
    assert!(out.contains("Response from 'n0': hi"), "{out}");

    // Outside its namespace, or operator-only: refused, naming the tenant.
    for (name, payload) in [("search/x", "y"), ("deploy", "z"), ("payments", "z")] {
        refused(
            serf_as(&rpc, PAY, "event", &[name, payload]),
            &format!("event {name} as payments"),
            &format!(
                "permission denied: tenant \"payments\" may send events only in its namespace \
                 payments/ (not \"{name}\")"
            ),
        );
    }
    refused(
        serf_as(&rpc, PAY, "query", &["-timeout=2s", "search/q", "x"]),
        "query search/q as payments",
        "permission denied: tenant \"payments\" may send queries only in its namespace payments/ \
         (not \"search/q\")",
    );
    for (verb, rest) in [
        ("force-leave", &["x"][..]),
        ("join", &["127.0.0.1:1"][..]),
        ("tags", &["-set", "a=b"][..]),
        ("keys", &["-list"][..]),
        ("info", &[][..]),
        ("leave", &[][..]),
    ] {
        refused(
            serf_as(&rpc, PAY, verb, rest),
            &format!("{verb} as payments"),
            "permission denied: tenant \"payments\" may not use",
        );
    }

    // Its handlers only; the operator sees every row with its tenant.
    assert_eq!(
        handler_rows(&rpc, PAY),
        [("payments-echo".to_owned(), "payments".to_owned())]
    );
    assert_eq!(
        handler_rows(&rpc, SEARCH),
        [("search-echo".to_owned(), "search".to_owned())]
    );
    let all = handler_rows(&rpc, OPERATOR);
    let expected = [
        ("ops-echo", "-"),
        ("payments-echo", "payments"),
        ("search-echo", "search"),
    ];
    assert_eq!(
        all,
        expected.map(|(n, t)| (n.to_owned(), t.to_owned())),
        "operator's listing"
    );

    // The operator: everything, anywhere.
    ok(
        serf_as(&rpc, OPERATOR, "members", &[]),
        "members as operator",
    );
    ok(
        serf_as(&rpc, OPERATOR, "event", &["deploy", "z"]),
        "event as operator",
    );
    ok(
        serf_as(&rpc, OPERATOR, "event", &["search/x", "y"]),
        "event search/x as operator",
    );
    ok(serf_as(&rpc, OPERATOR, "info", &[]), "info as operator");
    ok(
        serf_as(&rpc, OPERATOR, "tags", &["-set", "role=test"]),
        "tags as operator",
    );

    // A wrong token, or none, fails auth as before.
    for token in ["wrong", "pay-token2", ""] {
        let r = serf_as(&rpc, token, "members", &[]);
        assert!(!r.0, "members with {token:?} should fail: {}", r.1);
    }
    refused(
        serf_as(&rpc, "wrong", "members", &[]),
        "members with a wrong token",
        "Invalid authentication token",
    );

    // One connection as search: a refusal leaves it usable, and its stream carries member
    // events and its own namespace's events only.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let bound = Duration::from_secs(20);
        let client = tokio::time::timeout(bound, RpcClient::connect(&rpc, Some(SEARCH)))
            .await
            .expect("connect in time")
            .expect("connect as search");
        let e = client
            .user_event("payments/x", b"", false)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("tenant \"search\" may send events only"), "{e}");
        let members = tokio::time::timeout(bound, client.members()).await.unwrap();
        assert_eq!(members.unwrap().len(), 1);

        let mut stream = client.stream("user").await.expect("stream as search");
        let operator = RpcClient::connect(&rpc, Some(OPERATOR)).await.unwrap();
        for name in ["payments/hidden", "deploy", "search/seen"] {
            operator.user_event(name, b"p", false).await.unwrap();
        }
        let rec = tokio::time::timeout(bound, stream.next())
            .await
            .expect("a stream record in time")
            .expect("the stream stays open");
        let name = Fields::of(&rec, "event").unwrap().str("Name").unwrap();
        assert_eq!(name, "search/seen", "the first record search's stream gets");
        // Nothing else followed it.
        let more = tokio::time::timeout(Duration::from_millis(500), stream.next()).await;
        assert!(more.is_err(), "unexpected record {more:?}");
    });
}

#[test]
fn without_rpc_auth_tenants_tokens_protect_nothing_and_the_agent_says_so() {
    require_serf();
    let dir = scratch("tenant-rpc-open");
    let rpc = format!("127.0.0.1:{}", free_port());
    let path = dir.join("agent.toml");
    let toml = config(free_port(), &rpc).replace(&format!("rpc_auth = \"{OPERATOR}\"\n"), "");
    assert!(!toml.contains("rpc_auth"), "{toml}");
    std::fs::write(&path, toml).unwrap();
    let mut agent = start_agent(&[format!("-config-file={}", path.display())]);
    agent_support::wait_output(&mut agent, 0, "the warning about rpc_auth", |l| {
        l.contains(
            "tenants' RPC tokens protect nothing while rpc_auth is unset: unauthenticated \
             clients have full rights; set rpc_auth",
        )
    });
    // No auth: the operator, as in Serf.
    ok(
        serf_run(&["info", &format!("-rpc-addr={rpc}")]),
        "info without auth",
    );
    // A tenant's token still makes the client that tenant.
    refused(
        serf_as(&rpc, PAY, "info", &[]),
        "info as payments",
        "permission denied: tenant \"payments\" may not use \"stats\"",
    );
}
