//! Three `hearsay agent`s started from config files alone (one JSON file, one TOML file, one
//! `-config-dir`) form a cluster; the real `serf` agent joins them and lists all three, and the
//! real `serf members` run against a hearsay agent's RPC address lists all four. Then SIGHUP
//! reloads one agent's tags (from its tags file) and log level, SIGINT makes another leave, and
//! `serf leave` over RPC a third: serf sees them `left`.

mod agent_support;

use agent_support::{
    free_port, require_serf, scratch, start_agent, wait_join_seen, wait_output, Serf,
};

#[test]
fn three_agents_from_config_files_then_reload_and_leave() {
    require_serf();
    let dir = scratch("cluster");
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let (r1, r2, r3) = (free_port(), free_port(), free_port());

    let a1 = dir.join("a1.json");
    std::fs::write(
        &a1,
        format!(
            r#"{{"node_name":"a1","bind":"127.0.0.1:{p1}","rpc_addr":"127.0.0.1:{r1}",
                "profile":"local","tags":{{"role":"one"}}}}"#
        ),
    )
    .unwrap();

    let tags2 = dir.join("a2-tags.json");
    std::fs::write(&tags2, r#"{"role":"two"}"#).unwrap();
    let a2 = dir.join("a2.toml");
    let a2_toml = |level: &str| {
        format!(
            "node_name = \"a2\"\nbind = \"127.0.0.1:{p2}\"\nrpc_addr = \"127.0.0.1:{r2}\"\n\
             profile = \"local\"\nlog_level = \"{level}\"\nstart_join = [\"127.0.0.1:{p1}\"]\n\
             tags_file = \"{}\"\n",
            tags2.display()
        )
    };
    std::fs::write(&a2, a2_toml("info")).unwrap();

    let conf3 = dir.join("a3.d");
    std::fs::create_dir(&conf3).unwrap();
    std::fs::write(
        conf3.join("10-node.json"),
        format!(r#"{{"node_name":"a3","bind":"127.0.0.1:{p3}","rpc_addr":"127.0.0.1:{r3}"}}"#),
    )
    .unwrap();
    std::fs::write(
        conf3.join("20-join.toml"),
        format!(
            "profile = \"local\"\nretry_join = [\"127.0.0.1:{p1}\"]\nretry_interval = \"1s\"\n\
             [tags]\nrole = \"three\"\n"
        ),
    )
    .unwrap();

    let mut n1 = start_agent(&[format!("-config-file={}", a1.display())]);
    n1.expect_line("==> Log data will now stream in");
    let mut n2 = start_agent(&[format!("-config-file={}", a2.display())]);
    n2.expect_line("    Join completed. Synced with 1 initial agents");
    let mut n3 = start_agent(&[format!("-config-dir={}", conf3.display())]);
    n3.expect_line("==> Log data will now stream in");

    // The agents themselves see each other...
    wait_join_seen(&mut n1, "a2", 0);
    wait_join_seen(&mut n1, "a3", 0);
    wait_join_seen(&mut n3, "a2", 0);

    // ...and so does the real serf, joining through one of them.
    let serf = Serf::start_named("s1", "agent-cluster", &["-profile=local"]);
    serf.join(&format!("127.0.0.1:{p2}"));
    serf.wait_member("a1", &["alive", "role=one"]);
    serf.wait_member("a2", &["alive", "role=two"]);
    serf.wait_member("a3", &["alive", "role=three"]);

    // The real serf CLI talks to a hearsay agent's RPC address directly, too.
    let members_via = |rpc: u16| {
        let out = std::process::Command::new("serf")
            .args(["members", &format!("-rpc-addr=127.0.0.1:{rpc}")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let m = members_via(r1);
        let alive = ["a1", "a2", "a3", "s1"].iter().all(|n| {
            m.lines()
                .any(|l| l.starts_with(&format!("{n} ")) && l.contains("alive"))
        });
        if alive {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "serf members via a1: {m}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // SIGHUP: new tags from the tags file, new log level from the TOML file.
    std::fs::write(&tags2, r#"{"role":"two-b","extra":"x"}"#).unwrap();
    std::fs::write(&a2, a2_toml("debug")).unwrap();
    n2.signal("HUP");
    n2.expect_line("==> Reloading configuration...");
    wait_output(&mut n2, 0, "the DEBUG line", |l| {
        l.contains("agent: log level is now DEBUG")
    });
    serf.wait_member("a2", &["alive", "role=two-b", "extra=x"]);

    // SIGINT: a graceful leave, then a clean exit.
    n3.signal("INT");
    n3.expect_line("==> Gracefully shutting down agent...");
    assert!(n3.wait_exit(), "a3 did not exit successfully after leaving");
    serf.wait_member("a3", &["left"]);
    serf.wait_member("a1", &["alive"]);

    // `serf leave` over RPC: a1 leaves and its process exits with status 0.
    let out = std::process::Command::new("serf")
        .args(["leave", &format!("-rpc-addr=127.0.0.1:{r1}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "serf leave: {out:?}");
    assert!(
        n1.wait_exit(),
        "a1 did not exit successfully after an RPC leave"
    );
    serf.wait_member("a1", &["left"]);
    n2.signal("INT");
    assert!(n2.wait_exit());
    std::fs::remove_dir_all(&dir).unwrap();
}
