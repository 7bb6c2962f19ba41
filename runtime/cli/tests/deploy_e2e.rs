//! Deploying handlers cluster-wide, end to end with real processes on loopback: five
//! `hearsay agent`s (each its own `-data-dir`, trusting one deploy key) and a real serf agent
//! whose event handler logs every event it sees.
//!
//! - A deploy through one agent reaches every hearsay agent, and `serf query` is answered by
//!   all five; an agent that was down during the deploy runs it after its restart, a late
//!   joiner runs it, and the serf agent's handler saw no event or query caused by it.
//! - A second deploy converges after its origin is killed as soon as one other node has the
//!   module (the rest fetch it from that node, not the origin); an agent restarted alone
//!   runs it from its data dir before it joins anyone.
//! - An agent trusting no key is listed as `disabled` and does not count.
//! - Attacks, refused on every node with the reason: a deploy signed by an untrusted key, a
//!   record whose module bytes are not the signed ones, a replayed older version; a module
//!   file changed on disk is not run (the node fetches the signed bytes again).
//! - Rollback and undeploy converge; a `-tag` selector runs a deployment only where the tag
//!   matches, and follows `hearsay tags` changes.
//!
//! Every wait is bounded; nothing asserts speed.

mod agent_support;

use agent_support::{free_port, require_serf, run_to_end, scratch, start_agent, NodeProcess};
use agent_support::{wait_join_seen, Serf};
use hearsay_deploy::{Deployment, Digest, ModuleRef, SigningKey, Spec};
use hearsay_testkit::wasm::{guests, Guests};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn wasm() -> &'static Guests {
    guests(Path::new(env!("CARGO_TARGET_TMPDIR")))
}

/// `hearsay <args>` to its end: (success, stdout + stderr).
fn hearsay(args: &[String]) -> (bool, String) {
    let f = run_to_end(args);
    (f.success, format!("{}{}", f.stdout, f.stderr))
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// One hearsay agent's fixed addresses and directory, so it can be restarted as itself.
struct Slot {
    name: String,
    gossip: u16,
    rpc: String,
    data: PathBuf,
}

impl Slot {
    fn rpc_arg(&self) -> String {
        format!("-rpc-addr={}", self.rpc)
    }

    /// Starts the agent trusting `trust` (with its data dir), or no key at all when empty.
    fn start(&self, trust: &str, join: Option<u16>) -> NodeProcess {
        let mut a = vec![
            format!("-node={}", self.name),
            format!("-bind=127.0.0.1:{}", self.gossip),
            self.rpc_arg(),
            "-profile=local".to_owned(),
        ];
        if !trust.is_empty() {
            a.push(format!("-data-dir={}", self.data.display()));
            a.push(format!("-deploy-key={trust}"));
        }
        if let Some(p) = join {
            a.push(format!("-join=127.0.0.1:{p}"));
        }
        let mut n = start_agent(&a);
        n.expect_line("==> Log data will now stream in");
        n
    }
}

/// A deployment's nodes as `hearsay deployments -format=json` at `slot` lists them:
/// (node, state, version).
fn states(slot: &Slot, name: &str) -> Vec<(String, String, u64)> {
    let (ok, out) = hearsay(&args(&["deployments", &slot.rpc_arg(), "-format=json"]));
    assert!(ok, "deployments: {out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let Some(d) = v["deployments"]
        .as_array()
        .and_then(|a| a.iter().find(|d| d["name"] == name))
    else {
        return Vec::new();
    };
    d["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["node"].as_str().unwrap().to_owned(),
                n["state"].as_str().unwrap().to_owned(),
                n["version"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Waits (at most 60 s) until `slot` lists every one of `nodes` in `state` at `version` of
/// `name`.
fn wait_states(slot: &Slot, name: &str, version: u64, state: &str, nodes: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = states(slot, name);
        let done = nodes.iter().all(|n| {
            now.iter()
                .any(|(node, s, v)| node == n && s == state && *v == version)
        });
        if done {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} v{version}: expected {nodes:?} {state} at {}; have {now:?}",
            slot.name
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `hearsay deploy` through `slot`.
fn deploy(slot: &Slot, key: &Path, module: &Path, wait: &str) -> (bool, String) {
    hearsay(&args(&[
        "deploy",
        &slot.rpc_arg(),
        &format!("-key={}", key.display()),
        "-name=greet",
        "-events=query:greet",
        &format!("-wait={wait}"),
        &module.display().to_string(),
    ]))
}

/// Runs `f` with an RPC client of `slot`.
fn with_client<T>(slot: &Slot, f: impl AsyncFnOnce(&hearsay_rpc::RpcClient) -> T) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = hearsay_rpc::RpcClient::connect(&slot.rpc, None)
            .await
            .unwrap();
        f(&c).await
    })
}

/// A greet record of `version` for `module`, signed with `key`.
fn record(key: &SigningKey, version: u64, module: &[u8]) -> Vec<u8> {
    let spec = Spec {
        name: "greet".into(),
        version,
        module: Some(ModuleRef {
            sha256: Digest::of(module),
            size: module.len() as u64,
        }),
        events: "query:greet".into(),
        selector: Default::default(),
        limits: Default::default(),
        grants: Default::default(),
        signed_at: 0,
    };
    Deployment::sign(spec, key).unwrap().encode()
}

#[test]
fn deploys_converge_on_every_hearsay_agent_and_attacks_are_refused() {
    require_serf();
    let g = wasm();
    let dir = scratch("deploy-e2e");
    // The operator's key, and a stranger's.
    let ops = dir.join("ops.key");
    let (ok, public) = hearsay(&args(&[
        "keygen",
        "-deploy",
        &format!("-out={}", ops.display()),
    ]));
    assert!(ok && public.trim().starts_with("ed25519:"), "{public}");
    let public = public.trim().to_owned();
    let stranger = dir.join("stranger.key");
    assert!(
        hearsay(&args(&[
            "keygen",
            "-deploy",
            &format!("-out={}", stranger.display())
        ]))
        .0
    );
    let ops_key = SigningKey::from_file_text(&std::fs::read_to_string(&ops).unwrap()).unwrap();

    let slots: Vec<Slot> = (0..5)
        .map(|i| Slot {
            name: format!("n{i}"),
            gossip: free_port(),
            rpc: format!("127.0.0.1:{}", free_port()),
            data: dir.join(format!("n{i}")),
        })
        .collect();
    let seed = slots[0].gossip;
    let mut agents: Vec<Option<NodeProcess>> = Vec::new();
    for (i, s) in slots.iter().enumerate().take(4) {
        agents.push(Some(s.start(&public, (i > 0).then_some(seed))));
    }
    // The serf agent logs every event and query its handler is given.
    let serf_events = dir.join("serf-events.log");
    let handler = format!(
        "echo \"$SERF_EVENT $SERF_USER_EVENT$SERF_QUERY_NAME\" >> {}",
        serf_events.display()
    );
    let serf = Serf::start_named("s1", "deploy-e2e", &["-event-handler", &handler]);
    serf.join(&format!("127.0.0.1:{seed}"));
    for peer in ["n1", "n2", "n3"] {
        wait_join_seen(agents[0].as_mut().unwrap(), peer, 0);
    }
    serf.wait_member("n3", &["alive"]);

    // n2 is down during the first deploy.
    agents[2].take().unwrap().kill9();
    let (ok, out) = deploy(&slots[0], &ops, &g.echo, "60s");
    assert!(ok, "deploy: {out}");
    assert!(out.contains("Deployed greet version 1"), "{out}");
    wait_states(&slots[0], "greet", 1, "running", &["n0", "n1", "n3"]);
    // n2 restarts (without the network it runs what it had: nothing yet) and catches up;
    // n4 joins late.
    agents[2] = Some(slots[2].start(&public, Some(seed)));
    agents.push(Some(slots[4].start(&public, Some(seed))));
    let all = ["n0", "n1", "n2", "n3", "n4"];
    wait_states(&slots[0], "greet", 1, "running", &all);

    // The real serf CLI's query is answered by every hearsay agent's deployed handler.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = serf.cli(&["query", "-timeout=3s", "greet", "hi"]);
        let answered = all
            .iter()
            .all(|n| out.contains(&format!("Response from '{n}': hi")));
        if answered {
            break;
        }
        assert!(Instant::now() < deadline, "serf query greet: {out}");
    }

    // An agent trusting no deploy key is listed as disabled and does not hold convergence
    // back: a deploy through it is refused, one elsewhere still converges.
    let keyless = Slot {
        name: "k".into(),
        gossip: free_port(),
        rpc: format!("127.0.0.1:{}", free_port()),
        data: dir.join("k"),
    };
    let k = keyless.start("", Some(seed));
    wait_states(&slots[0], "greet", 0, "disabled", &["k"]);
    let (ok, out) = deploy(&keyless, &ops, &g.echo, "5s");
    assert!(!ok && out.contains("does not trust"), "keyless: {out}");
    drop(k);

    // Attacks, at every node's RPC: an untrusted signer, bytes that are not the signed ones,
    // and a replay of an older version.
    let echo = std::fs::read(&g.echo).unwrap();
    let sysinfo = std::fs::read(&g.sysinfo).unwrap();
    for s in &slots {
        let (ok, out) = deploy(s, &stranger, &g.sysinfo, "5s");
        assert!(!ok && out.contains("does not trust"), "{}: {out}", s.name);
        let tampered = with_client(s, async |c| {
            c.deploy(&record(&ops_key, 7, &sysinfo), &echo).await
        });
        let e = tampered.unwrap_err().to_string();
        assert!(e.contains("are not the signed ones"), "{}: {e}", s.name);
        let replay = with_client(s, async |c| {
            c.deploy(&record(&ops_key, 1, &sysinfo), &sysinfo).await
        });
        let e = replay.unwrap_err().to_string();
        assert!(e.contains("is not newer than version 1"), "{}: {e}", s.name);
    }

    // Each node lists what it refused, with the reason.
    let (ok, out) = hearsay(&args(&["deployments", &slots[0].rpc_arg(), "-format=json"]));
    assert!(ok, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let refused = v["refused"].as_array().unwrap();
    for n in all {
        for why in ["does not trust", "are not the signed ones", "is not newer"] {
            assert!(
                refused
                    .iter()
                    .any(|r| r["node"] == n && r["reason"].as_str().unwrap().contains(why)),
                "{n} does not list a refusal for {why:?}: {out}"
            );
        }
    }

    // Version 2 through n3, which is killed as soon as another node runs it: the others fetch
    // the module from that node.
    let (_, out) = deploy(&slots[3], &ops, &g.sysinfo, "0s");
    assert!(out.contains("Deployed greet version 2"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let running_elsewhere = states(&slots[0], "greet")
            .iter()
            .any(|(n, s, v)| n != "n3" && s == "running" && *v == 2);
        if running_elsewhere {
            break;
        }
        assert!(Instant::now() < deadline, "nobody but n3 runs v2");
        std::thread::sleep(Duration::from_millis(50));
    }
    agents[3].take().unwrap().kill9();
    let rest = ["n0", "n1", "n2", "n4"];
    wait_states(&slots[0], "greet", 2, "running", &rest);

    // A module file changed on disk is not run: n1, restarted, fetches the signed bytes again.
    agents[1].take().unwrap().kill9();
    let sha = Digest::of(&sysinfo).to_string();
    let file = slots[1].data.join("deploy").join(format!("{sha}.wasm"));
    std::fs::write(&file, &echo).unwrap();
    agents[1] = Some(slots[1].start(&public, Some(seed)));
    wait_states(&slots[0], "greet", 2, "running", &rest);
    assert_eq!(
        std::fs::read(&file).unwrap(),
        sysinfo,
        "n1 runs the signed bytes"
    );

    // Persistence without the network: n4, restarted alone (no join), runs greet v2 from its
    // data dir before it talks to anyone; then it rejoins.
    agents[4].take().unwrap().kill9();
    let alone = slots[4].start(&public, None);
    let (ok, out) = hearsay(&args(&["handlers", &slots[4].rpc_arg()]));
    assert!(ok && out.contains("deploy/greet"), "n4 alone: {out}");
    drop(alone);
    agents[4] = Some(slots[4].start(&public, Some(seed)));
    wait_states(&slots[0], "greet", 2, "running", &rest);

    // Rollback (to echo, as version 3) and undeploy (version 4) converge.
    let (ok, out) = hearsay(&args(&[
        "rollback",
        &slots[0].rpc_arg(),
        &format!("-key={}", ops.display()),
        "-name=greet",
        "-wait=60s",
    ]));
    assert!(ok, "rollback: {out}");
    wait_states(&slots[0], "greet", 3, "running", &rest);
    let (ok, out) = hearsay(&args(&[
        "undeploy",
        &slots[4].rpc_arg(),
        &format!("-key={}", ops.display()),
        "-name=greet",
        "-wait=60s",
    ]));
    assert!(ok, "undeploy: {out}");
    wait_states(&slots[0], "greet", 4, "removed", &rest);
    for s in rest
        .iter()
        .map(|n| &slots[n[1..].parse::<usize>().unwrap()])
    {
        let (ok, out) = hearsay(&args(&["handlers", &s.rpc_arg()]));
        assert!(ok && !out.contains("deploy/greet"), "{}: {out}", s.name);
    }

    // A selector: a deployment for role=web runs where that tag is, and follows tag changes.
    let (ok, out) = hearsay(&args(&[
        "deploy",
        &slots[0].rpc_arg(),
        &format!("-key={}", ops.display()),
        "-name=web",
        "-events=query:web",
        "-tag=role=^web$",
        "-wait=60s",
        &g.echo.display().to_string(),
    ]));
    assert!(
        ok && out.contains("0 of 0 nodes running"),
        "deploy -tag: {out}"
    );
    wait_states(&slots[0], "web", 1, "not-selected", &rest);
    let tag = |verb: &str, value: &str| {
        let (ok, out) = hearsay(&args(&["tags", &slots[2].rpc_arg(), verb, value]));
        assert!(ok, "tags: {out}");
    };
    tag("-set", "role=web");
    wait_states(&slots[0], "web", 1, "running", &["n2"]);
    wait_states(&slots[0], "web", 1, "not-selected", &["n0", "n1", "n4"]);
    tag("-delete", "role");
    wait_states(&slots[0], "web", 1, "not-selected", &rest);
    let (_, out) = hearsay(&args(&["handlers", &slots[2].rpc_arg()]));
    assert!(!out.contains("deploy/web"), "{out}");

    // The serf agent's handler saw member events and our own `greet` query, nothing else.
    let seen = std::fs::read_to_string(&serf_events).unwrap_or_default();
    for line in seen.lines() {
        assert!(
            line.starts_with("member-") || line == "query greet",
            "serf's handler saw {line:?}:\n{seen}"
        );
    }
    assert!(seen.contains("query greet"), "{seen}");
}
