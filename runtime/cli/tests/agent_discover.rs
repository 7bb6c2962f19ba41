//! mDNS discovery (`-discover=c1`) against the real serf 0.8.2, with no `-join` anywhere: two
//! hearsay agents find each other through mDNS alone; then a real `serf agent -discover=c1`
//! finds both through its own mDNS poll (our answers read by hashicorp/mdns's client); then a
//! third hearsay agent, bound with `-iface=lo`, finds serf (serf's answers read by our
//! client), and `serf members` lists all four alive.
//!
//! Multicast does not work on a plain loopback, so the test makes a network namespace of its
//! own (it needs root and `ip netns`): loopback up with multicast on, a route for 224.0.0.0/4
//! (and ff00::/8, since serf's poll gives up when its IPv6 query cannot be sent). Every agent
//! runs inside it on its own 127.0.0.x address. The namespace is deleted however the test
//! ends. Without `ip netns` the test says why and returns.

mod agent_support;

use agent_support::{require_serf, scratch, NodeProcess, BIN};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long any one wait lasts.
const WAIT: Duration = Duration::from_secs(60);

/// A network namespace made for this test, deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace (`tag` makes its name unique) with loopback up and, with
    /// `multicast`, multicast on it; `Err` says why not.
    fn create(tag: &str, multicast: bool) -> Result<Self, String> {
        let ns = Netns {
            name: format!("hearsay-mdns-{}-{tag}", std::process::id()),
        };
        let ip = |args: &[&str]| -> Result<(), String> {
            let out = Command::new("ip")
                .args(args)
                .output()
                .map_err(|e| format!("cannot run `ip`: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "`ip {}` failed: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        ip(&["netns", "add", &ns.name])?;
        // From here on `ns` is dropped (so deleted) on any error.
        ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        if !multicast {
            return Ok(ns);
        }
        ip(&["-n", &ns.name, "link", "set", "lo", "multicast", "on"])?;
        ip(&["-n", &ns.name, "route", "add", "224.0.0.0/4", "dev", "lo"])?;
        // Without IPv6 (disabled in the kernel) serf sends no IPv6 query, so this may fail.
        let _ = ip(&[
            "-n", &ns.name, "-6", "route", "add", "ff00::/8", "dev", "lo", "table", "local",
        ]);
        Ok(ns)
    }

    /// `program` run inside the namespace.
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// `serf <verb> -rpc-addr=<rpc> <args>` inside the namespace, to completion.
    fn serf_cli(&self, verb: &str, rpc: &str, args: &[&str]) -> Output {
        self.command("serf")
            .arg(verb)
            .arg(format!("-rpc-addr={rpc}"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Waits until `serf members` against `rpc` lists every one of `names` alive.
    fn wait_alive(&self, rpc: &str, names: &[&str]) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let out = self.serf_cli("members", rpc, &[]);
            let members = String::from_utf8_lossy(&out.stdout).into_owned();
            let all = names.iter().all(|n| {
                members
                    .lines()
                    .any(|l| l.split_whitespace().next() == Some(n) && l.contains(" alive"))
            });
            if all {
                return members;
            }
            assert!(
                Instant::now() < deadline,
                "serf members via {rpc} never listed {names:?} alive; last:\n{members}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A real serf agent inside the namespace, killed on drop (by its pid: `ip netns exec`
/// execs serf in place).
struct SerfAgent {
    child: Child,
    log: PathBuf,
}

impl SerfAgent {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the agent's log has a line containing every one of `words`.
    fn wait_log(&self, words: &[&str]) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let log = self.log();
            if let Some(line) = log.lines().find(|l| words.iter().all(|w| l.contains(w))) {
                return line.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "serf never logged {words:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for SerfAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `hearsay agent -node=<name> -bind=<ip> -rpc-addr=<ip>:7373 -discover=c1` inside the
/// namespace (a fresh namespace: the default ports are free).
fn hearsay(ns: &Netns, name: &str, ip: &str) -> NodeProcess {
    hearsay_with(ns, name, ip, &format!("-bind={ip}"))
}

/// Like [`hearsay`], with `bind` (`-bind=...` or `-iface=...`) saying where to bind.
fn hearsay_with(ns: &Netns, name: &str, ip: &str, bind: &str) -> NodeProcess {
    let args: Vec<String> = [
        "netns",
        "exec",
        &ns.name,
        BIN,
        "agent",
        &format!("-node={name}"),
        bind,
        &format!("-rpc-addr={ip}:7373"),
        "-discover=c1",
        "-profile=local",
    ]
    .map(str::to_owned)
    .to_vec();
    let mut n = NodeProcess::start("ip", &args);
    n.expect_line("==> Log data will now stream in");
    wait_words(&mut n, &["mDNS cluster: c1"]);
    n
}

/// Waits until `n` printed a line containing every one of `words`; returns it.
fn wait_words(n: &mut NodeProcess, words: &[&str]) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(l) = n
            .seen()
            .iter()
            .find(|l| words.iter().all(|w| l.contains(w)))
        {
            return l.clone();
        }
        assert!(
            Instant::now() < deadline,
            "never saw {words:?}; saw {:#?}",
            n.seen()
        );
        n.read_for(Duration::from_millis(200));
    }
}

#[test]
fn hearsay_and_serf_find_each_other_over_mdns() {
    require_serf();
    // Declared first, so dropped last: the agents in it are killed before it goes.
    let ns = match Netns::create("interop", true) {
        Ok(ns) => ns,
        Err(why) => {
            eprintln!("skipping: no network namespace for the multicast test: {why}");
            return;
        }
    };
    let dir = scratch("discover");

    // Two hearsay agents, no serf yet: h2's first poll finds h1.
    let mut h1 = hearsay(&ns, "h1", "127.0.0.2");
    wait_words(
        &mut h1,
        &["agent.mdns: advertising", "_serf_c1._tcp.local."],
    );
    let mut h2 = hearsay(&ns, "h2", "127.0.0.3");
    wait_words(
        &mut h2,
        &["agent.mdns: discovered a peer", "h1", "127.0.0.2:7946"],
    );
    wait_words(&mut h2, &["agent.mdns: Joined 1 hosts", "h1"]);
    let members = ns.wait_alive("127.0.0.2:7373", &["h1", "h2"]);
    // By name, the first column: a tag value (a base64 fingerprint) may contain "s1".
    assert!(
        !members
            .lines()
            .any(|l| l.split_whitespace().next() == Some("s1")),
        "{members}"
    );

    // The real serf: its own mDNS poll finds both hearsay agents (nobody joins it).
    let log = dir.join("serf.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = ns
        .command("serf")
        .args([
            "agent",
            "-node=s1",
            "-bind=127.0.0.4",
            "-rpc-addr=127.0.0.4:7373",
            "-discover=c1",
            "-profile=local",
        ])
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let serf = SerfAgent { child, log };
    let joining = serf.wait_log(&["agent: joining:"]);
    assert!(
        joining.contains("127.0.0.2:7946") && joining.contains("127.0.0.3:7946"),
        "serf's mDNS poll did not find both hearsay agents: {joining}\n{}",
        serf.log()
    );
    serf.wait_log(&["agent.mdns: Joined"]);
    ns.wait_alive("127.0.0.4:7373", &["s1", "h1", "h2"]);

    // A third hearsay agent, bound by interface (`-iface=lo`: loopback's first address,
    // 127.0.0.1, and mDNS on loopback), finds serf's answer (and the other two) and joins.
    let mut h3 = hearsay_with(&ns, "h3", "127.0.0.5", "-iface=lo");
    wait_words(&mut h3, &["Using interface 'lo' address '127.0.0.1'"]);
    wait_words(
        &mut h3,
        &["agent.mdns: discovered a peer", "s1", "127.0.0.4:7946"],
    );
    wait_words(&mut h3, &["agent.mdns: Joined", "s1"]);
    let members = ns.wait_alive("127.0.0.4:7373", &["s1", "h1", "h2", "h3"]);
    assert!(
        members
            .lines()
            .any(|l| l.starts_with("h3 ") && l.contains("127.0.0.1:7946")),
        "h3 bound to lo's address: {members}"
    );
    // No agent discovered itself as a peer.
    for (n, me) in [(&h1, "h1"), (&h2, "h2"), (&h3, "h3")] {
        assert!(
            !n.seen()
                .iter()
                .any(|l| l.contains("discovered a peer") && l.contains(&format!("peer={me} "))),
            "{me} discovered itself"
        );
    }
    eprintln!("serf members:\n{members}");

    drop((h1, h2, h3, serf));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Where multicast cannot work (a namespace whose loopback has no multicast route), the agent
/// says why at warn level and runs on: it answers `serf members` over RPC.
#[test]
fn without_multicast_the_agent_warns_and_runs_on() {
    require_serf();
    let ns = match Netns::create("nomcast", false) {
        Ok(ns) => ns,
        Err(why) => {
            eprintln!("skipping: no network namespace for the multicast test: {why}");
            return;
        }
    };
    let mut h = hearsay(&ns, "lonely", "127.0.0.2");
    let line = wait_words(&mut h, &["WARN", "agent.mdns: cannot start mDNS discovery"]);
    assert!(line.contains("error="), "the reason is given: {line}");
    ns.wait_alive("127.0.0.2:7373", &["lonely"]);
}
