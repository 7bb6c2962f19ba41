//! Child processes on loopback: `serf agent`s and `hearsay-serf-node`s, each with a reader
//! thread that timestamps every stdout line as it arrives. Every child is killed by its pid
//! (SIGKILL) and reaped when its [`Proc`] is dropped, however the benchmark ends, and every
//! wait has a deadline.

use anyhow::{bail, Context, Result};
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Lines with their arrival times, and the condition variable that signals a new one.
type Shared = Arc<(Mutex<Vec<(Instant, String)>>, Condvar)>;

/// Timestamped output lines of one process (or of the in-process node), shared with the
/// thread that appends them.
#[derive(Clone, Default)]
pub(crate) struct Lines {
    inner: Shared,
}

impl Lines {
    /// Appends a line stamped now and wakes the waiters.
    pub(crate) fn push(&self, line: String) {
        let (lock, cv) = &*self.inner;
        lock.lock()
            .expect("lines lock")
            .push((Instant::now(), line));
        cv.notify_all();
    }

    /// The arrival time of the first line for which `pred` holds, waiting until `deadline`.
    pub(crate) fn wait_for(
        &self,
        deadline: Instant,
        mut pred: impl FnMut(&str) -> bool,
    ) -> Option<Instant> {
        let (lock, cv) = &*self.inner;
        let mut seen = 0;
        let mut lines = lock.lock().expect("lines lock");
        loop {
            if let Some((t, _)) = lines[seen..].iter().find(|(_, l)| pred(l)) {
                return Some(*t);
            }
            seen = lines.len();
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            lines = cv
                .wait_timeout(lines, deadline - now)
                .expect("lines lock")
                .0;
        }
    }

    /// Arrival times of every line for which `pred` holds so far.
    pub(crate) fn all(&self, mut pred: impl FnMut(&str) -> bool) -> Vec<(Instant, String)> {
        let lines = self.inner.0.lock().expect("lines lock");
        lines.iter().filter(|(_, l)| pred(l)).cloned().collect()
    }

    /// The last few lines, for error messages.
    pub(crate) fn tail(&self, n: usize) -> String {
        let lines = self.inner.0.lock().expect("lines lock");
        let start = lines.len().saturating_sub(n);
        lines[start..]
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A child process whose stdout is read into [`Lines`]; SIGKILLed and reaped on drop.
pub(crate) struct Proc {
    pub name: String,
    pub lines: Lines,
    child: Child,
    killed: bool,
}

impl Proc {
    /// Spawns `cmd` with stdout piped (stderr discarded, stdin closed).
    pub(crate) fn spawn(name: &str, cmd: Command) -> Result<Self> {
        Self::spawn_reading(name, cmd, false)
    }

    /// As [`Proc::spawn`], with stderr's lines read into the same [`Lines`] (a CLI's errors).
    pub(crate) fn spawn_with_stderr(name: &str, cmd: Command) -> Result<Self> {
        Self::spawn_reading(name, cmd, true)
    }

    fn spawn_reading(name: &str, mut cmd: Command, stderr: bool) -> Result<Self> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(if stderr {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        let mut child = cmd
            .spawn()
            .with_context(|| format!("spawning {name}: {cmd:?}"))?;
        let lines = Lines::default();
        let stdout = child.stdout.take().expect("piped stdout");
        read_lines(&format!("stdout-{name}"), stdout, lines.clone())?;
        if let Some(err) = child.stderr.take() {
            read_lines(&format!("stderr-{name}"), err, lines.clone())?;
        }
        Ok(Self {
            name: name.to_owned(),
            lines,
            child,
            killed: false,
        })
    }

    /// The exit status, waiting until `deadline` at most (polled every 5 ms); `None` if it
    /// still runs then.
    pub(crate) fn wait_exit(&mut self, deadline: Instant) -> Option<std::process::ExitStatus> {
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.killed = true;
                    return Some(status);
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                _ => return None,
            }
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL by pid, then reap. Idempotent.
    pub(crate) fn kill(&mut self) {
        if !self.killed {
            self.killed = true;
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A thread that appends every line of `from` to `sink` until EOF (the child is gone).
fn read_lines(thread: &str, from: impl std::io::Read + Send + 'static, sink: Lines) -> Result<()> {
    std::thread::Builder::new()
        .name(thread.to_owned())
        .spawn(move || {
            for line in BufReader::new(from).lines() {
                match line {
                    Ok(l) => sink.push(l),
                    Err(_) => break,
                }
            }
        })?;
    Ok(())
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port free for both TCP and UDP on 127.0.0.1 (memberlist binds both), never handed out
/// twice in one run.
pub(crate) fn free_port() -> Result<u16> {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().expect("ports lock");
    let given = given.get_or_insert_with(HashSet::new);
    for _ in 0..200 {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        if given.contains(&port) {
            continue;
        }
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return Ok(port);
        }
    }
    bail!("no port free for both TCP and UDP on 127.0.0.1")
}

/// Where the two implementations' executables are.
#[derive(Debug, Clone)]
pub(crate) struct Tools {
    /// The real `serf`, if installed.
    pub serf: Option<PathBuf>,
    /// `hearsay-serf-node`.
    pub node: PathBuf,
    /// The `hearsay` binary (`hearsay agent`, `hearsay event`), when built: hearsay's live
    /// nodes are then agents driven over RPC as serf's are.
    pub agent: Option<PathBuf>,
}

impl Tools {
    /// Whether hearsay's nodes run as `hearsay agent` processes (else as `hearsay-serf-node`).
    pub(crate) fn hearsay_agent(&self) -> bool {
        self.agent.is_some()
    }
}

/// The two implementations measured side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Impl {
    Serf,
    Hearsay,
}

impl Impl {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Impl::Serf => "serf",
            Impl::Hearsay => "hearsay",
        }
    }

    /// Names of members this output line reports as joined.
    pub(crate) fn joined(self, line: &str) -> Vec<&str> {
        match self {
            Impl::Serf => after(line, "serf: EventMemberJoin: ")
                .and_then(|rest| rest.split_whitespace().next())
                .into_iter()
                .collect(),
            Impl::Hearsay => match after(line, "EVENT member-join ") {
                Some(rest) => rest.split_whitespace().collect(),
                // `hearsay agent`: the Serf layer's line, as serf's.
                None if line.contains("serf: EventMemberJoin ") => {
                    field(line, "peer").into_iter().collect()
                }
                None => Vec::new(),
            },
        }
    }

    /// The members this line reports failed (serf: the Serf library's event, before the
    /// agent's coalescing; hearsay: the delivered event).
    pub(crate) fn failed_names(self, line: &str) -> Vec<&str> {
        match self {
            Impl::Serf => after(line, "serf: EventMemberFailed: ")
                .and_then(|rest| rest.split_whitespace().next())
                .into_iter()
                .collect(),
            Impl::Hearsay => match after(line, "EVENT member-failed ") {
                Some(rest) => rest.split_whitespace().collect(),
                None if line.contains("serf: member left or failed ")
                    && field(line, "event") == Some("member-failed") =>
                {
                    field(line, "peer").into_iter().collect()
                }
                None => Vec::new(),
            },
        }
    }

    /// Whether this line reports `name` failed (see [`Impl::failed_names`]).
    pub(crate) fn failed(self, line: &str, name: &str) -> bool {
        self.failed_names(line).contains(&name)
    }

    /// Whether this line is memberlist's own note that a probe went unanswered and the target
    /// is now suspected (serf: `memberlist: Suspect NAME has failed, no acks received`).
    pub(crate) fn suspected(self, line: &str) -> bool {
        match self {
            Impl::Serf => {
                line.contains("memberlist: Suspect ") && line.contains("no acks received")
            }
            Impl::Hearsay => line.contains("memberlist: suspect has failed, no acks received"),
        }
    }

    /// Whether this line is the agent handing `member-failed` for `name` to its handlers
    /// (after member-event coalescing); `hearsay-serf-node` has no such line.
    pub(crate) fn failed_coalesced(self, line: &str, name: &str) -> bool {
        match self {
            Impl::Serf => line.contains("agent: Received event: member-failed"),
            Impl::Hearsay => after(line, "agent: Received event: member-failed members=")
                .is_some_and(|rest| rest.contains(&format!("\"{name}\""))),
        }
    }

    /// Whether this line reports the user event `event` delivered.
    pub(crate) fn user_event(self, line: &str, event: &str) -> bool {
        match self {
            Impl::Serf => after(line, "agent: Received event: user-event: ")
                .is_some_and(|rest| rest.trim_end() == event),
            Impl::Hearsay => {
                after(line, "EVENT user ").and_then(|rest| rest.split_whitespace().nth(1))
                    == Some(event)
                    // `hearsay agent`: `... user-event: NAME ltime=N`.
                    || after(line, "agent: Received event: user-event: ")
                        .and_then(|rest| rest.split_whitespace().next())
                        == Some(event)
            }
        }
    }
}

/// The value of a `key=value` field of a `tracing` log line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim_matches('"'))
}

/// The rest of `line` after the first `marker`.
fn after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    line.find(marker).map(|i| &line[i + marker.len()..])
}

/// One agent process of a cluster.
pub(crate) struct Node {
    pub proc: Proc,
    pub gossip_port: u16,
    /// The agent's RPC port (0 for `hearsay-serf-node`).
    pub rpc_port: u16,
}

/// What the nodes of a cluster run besides gossip.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NodeRole<'a> {
    /// serf: answer every query with `pong` through the event handler `query=echo pong`.
    pub answer_ping: bool,
    /// `hearsay agent`: `-config-file=PATH`, the handlers it runs (`[[handler]]` blocks).
    pub config_file: Option<&'a Path>,
    /// The timing profile (`-profile=`), serf's default `lan` when `None`.
    pub profile: Option<&'a str>,
    /// `hearsay agent`: `-data-dir=ROOT/NAME`, a data directory of its own under this root.
    pub data_root: Option<&'a Path>,
    /// `hearsay agent`: `-deploy-key=ed25519:...`, the signer it accepts deployments from.
    pub deploy_key: Option<&'a str>,
}

/// `BIN agent -node=NAME -bind=127.0.0.1:GOSSIP -rpc-addr=127.0.0.1:RPC`: the flags `serf agent`
/// and `hearsay agent` share.
pub(crate) fn agent_command(bin: &Path, name: &str, gossip_port: u16, rpc_port: u16) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("agent")
        .arg(format!("-node={name}"))
        .arg(format!("-bind=127.0.0.1:{gossip_port}"))
        .arg(format!("-rpc-addr=127.0.0.1:{rpc_port}"));
    cmd
}

/// Starts one agent of `imp`, joining `join` (a gossip port) unless it is the first.
pub(crate) fn start_node(
    tools: &Tools,
    imp: Impl,
    name: &str,
    join: Option<u16>,
    role: NodeRole<'_>,
) -> Result<Node> {
    let gossip_port = free_port()?;
    let bind = format!("127.0.0.1:{gossip_port}");
    match imp {
        Impl::Serf => {
            let serf = tools.serf.as_ref().context("serf is not installed")?;
            let rpc_port = free_port()?;
            let mut cmd = agent_command(serf, name, gossip_port, rpc_port);
            cmd.arg("-log-level=info");
            if let Some(p) = role.profile {
                cmd.arg(format!("-profile={p}"));
            }
            if let Some(p) = join {
                cmd.arg(format!("-join=127.0.0.1:{p}"));
            }
            if role.answer_ping {
                cmd.arg("-event-handler=query=echo pong");
            }
            Ok(Node {
                proc: Proc::spawn(name, cmd)?,
                gossip_port,
                rpc_port,
            })
        }
        Impl::Hearsay if tools.hearsay_agent() => {
            let agent = tools.agent.as_ref().context("hearsay is not built")?;
            let rpc_port = free_port()?;
            let mut cmd = agent_command(agent, name, gossip_port, rpc_port);
            cmd.arg("-log-level=info");
            if let Some(p) = role.profile {
                cmd.arg(format!("-profile={p}"));
            }
            if let Some(p) = join {
                cmd.arg(format!("-join=127.0.0.1:{p}"));
            }
            if let Some(config) = role.config_file {
                cmd.arg(format!("-config-file={}", config.display()));
            }
            if let Some(root) = role.data_root {
                cmd.arg(format!("-data-dir={}", root.join(name).display()));
            }
            if let Some(key) = role.deploy_key {
                cmd.arg(format!("-deploy-key={key}"));
            }
            Ok(Node {
                proc: Proc::spawn(name, cmd)?,
                gossip_port,
                rpc_port,
            })
        }
        Impl::Hearsay => {
            let mut cmd = Command::new(&tools.node);
            cmd.arg(format!("-name={name}"))
                .arg(format!("-bind={bind}"))
                .arg(format!("-profile={}", role.profile.unwrap_or("lan")));
            if let Some(p) = join {
                cmd.arg(format!("-join=127.0.0.1:{p}"));
            }
            Ok(Node {
                proc: Proc::spawn(name, cmd)?,
                gossip_port,
                rpc_port: 0,
            })
        }
    }
}

/// Waits until the output in `lines` (of node `me`) shows that all of `names` joined.
pub(crate) fn wait_members(
    imp: Impl,
    me: &str,
    lines: &Lines,
    names: &[String],
    deadline: Instant,
) -> Result<()> {
    let mut missing: HashSet<&str> = names.iter().map(String::as_str).collect();
    missing.remove(me);
    for (_, l) in lines.all(|_| true) {
        for n in imp.joined(&l) {
            missing.remove(n);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let ok = lines
        .wait_for(deadline, |l| {
            for n in imp.joined(l) {
                missing.remove(n);
            }
            missing.is_empty()
        })
        .is_some();
    if !ok {
        bail!(
            "{} node {me} did not see every member join in time; last output:\n{}",
            imp.label(),
            lines.tail(15)
        );
    }
    Ok(())
}

/// Waits until a freshly started node is up: serf's RPC is listening, hearsay said READY.
pub(crate) fn wait_ready(imp: Impl, node: &Node, deadline: Instant) -> Result<()> {
    let marker = match imp {
        Impl::Serf => "Serf agent running!",
        Impl::Hearsay if node.rpc_port != 0 => "hearsay agent running!",
        Impl::Hearsay => "READY ",
    };
    if node
        .proc
        .lines
        .wait_for(deadline, |l| l.contains(marker))
        .is_none()
    {
        bail!(
            "{} node {} did not start; output:\n{}",
            imp.label(),
            node.proc.name,
            node.proc.lines.tail(15)
        );
    }
    Ok(())
}

/// One gossip interval of serf's LAN profile: starts spread over it give the nodes' gossip
/// tickers independent phases.
pub(crate) const GOSSIP_SPREAD: Duration = Duration::from_millis(200);

/// `n` agent processes of `imp`, the first started alone and the rest joining it, each at a
/// random moment within `spread` after the first is ready (all at once when zero); returns once
/// every node saw every other join.
///
/// Why `spread` matters: memberlist's gossip ticker takes its phase from the moment the node
/// starts (its random stagger only delays the first tick), so nodes started together gossip in
/// near lockstep, and how far the rest lag the first decides every relay's wait. Agents that
/// start independently, as in a real cluster, have independent phases; hearsay picks a random
/// phase itself.
pub(crate) fn start_cluster(
    tools: &Tools,
    imp: Impl,
    prefix: &str,
    n: usize,
    role: NodeRole<'_>,
    spread: Duration,
) -> Result<Vec<Node>> {
    let names: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
    // Generous: how long formation takes is itself a figure (see [`formation_secs`]).
    let deadline = Instant::now() + Duration::from_secs(60 + 3 * n as u64);
    let mut nodes = Vec::with_capacity(n);
    nodes.push(start_node(tools, imp, &names[0], None, role)?);
    wait_ready(imp, &nodes[0], deadline)?;
    let seed = nodes[0].gossip_port;
    let mut offsets: Vec<Duration> = (1..n)
        .map(|_| spread.mul_f64(rand::random::<f64>()))
        .collect();
    offsets.sort();
    let ready = Instant::now();
    for (name, offset) in names[1..].iter().zip(offsets) {
        if let Some(wait) = (ready + offset).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        nodes.push(start_node(tools, imp, name, Some(seed), role)?);
    }
    for (node, name) in nodes.iter().zip(&names) {
        wait_members(imp, name, &node.proc.lines, &names, deadline)?;
    }
    Ok(nodes)
}

/// Seconds from the first node's start until the last node's output showed every member
/// joined (the arrival time of that line), for a cluster [`start_cluster`] just returned.
pub(crate) fn formation_secs(imp: Impl, nodes: &[Node], started: Instant) -> f64 {
    let mut last = started;
    for node in nodes {
        let me = node.proc.name.as_str();
        let mut missing: HashSet<&str> = nodes.iter().map(|n| n.proc.name.as_str()).collect();
        missing.remove(me);
        for (t, l) in node.proc.lines.all(|_| true) {
            for n in imp.joined(&l) {
                missing.remove(n);
            }
            if missing.is_empty() {
                last = last.max(t);
                break;
            }
        }
    }
    last.saturating_duration_since(started).as_secs_f64()
}

/// VmRSS of a process in KiB, from `/proc/PID/status`.
pub(crate) fn rss_kib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no VmRSS in /proc/{pid}/status"))
}

/// CPU time (user + system) a process used so far, in seconds, from `/proc/PID/stat`.
pub(crate) fn cpu_secs(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at state (field 3).
    let rest = &stat[stat.rfind(')').context("malformed stat")? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
    Ok(ticks / clock_ticks())
}

/// CPU time a process and its reaped children used so far, in seconds: the process's threads
/// from `/proc/PID/task/*/schedstat` (nanoseconds; threads that exited are not counted), the
/// children from `/proc/PID/stat` (`cutime` + `cstime`, in clock ticks).
pub(crate) fn cpu_with_children_secs(pid: u32) -> Result<f64> {
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path().join("schedstat");
        // A thread that exited between the listing and the read is skipped.
        if let Ok(s) = std::fs::read_to_string(&path) {
            ns += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .with_context(|| format!("malformed {}", path.display()))?;
        }
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = &stat[stat.rfind(')').context("malformed stat")? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let children: f64 = f[13].parse::<f64>()? + f[14].parse::<f64>()?;
    Ok(ns as f64 / 1e9 + children / clock_ticks())
}

/// Minor page faults a process took so far (`minflt` of `/proc/PID/stat`, all its threads).
pub(crate) fn minor_faults(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    stat_minflt(&stat).context("malformed stat")
}

/// Field 10 (`minflt`) of a `/proc/PID/stat` line.
fn stat_minflt(stat: &str) -> Option<f64> {
    // Fields after the command name (which may hold spaces) start at state (field 3).
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    rest.split_whitespace().nth(7)?.parse().ok()
}

/// `sysconf(_SC_CLK_TCK)`: 100 on every Linux configuration we run on (USER_HZ).
fn clock_ticks() -> f64 {
    100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_outputs() {
        let s = "    2026/11/23 10:13:09 [INFO] serf: EventMemberJoin: b 127.0.0.1";
        assert_eq!(Impl::Serf.joined(s), ["b"]);
        assert_eq!(Impl::Hearsay.joined("EVENT member-join a b"), ["a", "b"]);
        let f = "    2026/11/23 10:13:20 [INFO] serf: EventMemberFailed: c 127.0.0.1";
        assert!(Impl::Serf.failed(f, "c") && !Impl::Serf.failed(f, "c1"));
        assert!(Impl::Hearsay.failed("EVENT member-failed x c", "c"));
        let u = "    2026/11/23 10:13:11 [INFO] agent: Received event: user-event: ev-1";
        assert!(Impl::Serf.user_event(u, "ev-1") && !Impl::Serf.user_event(u, "ev-10"));
        assert!(Impl::Hearsay.user_event("EVENT user 3 ev-1 ", "ev-1"));
        assert!(!Impl::Hearsay.user_event("EVENT user 3 ev-10 x", "ev-1"));
        // `hearsay agent` lines.
        let j = "2026-11-23T12:21:56.349531Z  INFO serf{node=a}: serf: EventMemberJoin node=a peer=b addr=127.0.0.1:17002";
        assert_eq!(Impl::Hearsay.joined(j), ["b"]);
        let f = "2026-11-23T12:21:56Z  INFO serf: member left or failed node=a peer=c addr=127.0.0.1:1 event=\"member-failed\"";
        assert!(Impl::Hearsay.failed(f, "c") && !Impl::Hearsay.failed(f, "a"));
        let u = "2026-11-23T12:21:58.346711Z  INFO agent: Received event: user-event: ev1 ltime=1";
        assert!(Impl::Hearsay.user_event(u, "ev1") && !Impl::Hearsay.user_event(u, "ev"));
        let c = "2026-11-23T12:21:57Z  INFO agent: Received event: member-failed members=[\"c\"]";
        assert!(Impl::Hearsay.failed_coalesced(c, "c") && !Impl::Hearsay.failed_coalesced(c, "d"));
        assert_eq!(
            Impl::Hearsay.failed_names("EVENT member-failed x c"),
            ["x", "c"]
        );
        assert_eq!(Impl::Hearsay.failed_names(u), Vec::<&str>::new());
        let s = "    2026/11/23 10:13:19 [INFO] memberlist: Suspect c has failed, no acks received";
        assert!(Impl::Serf.suspected(s) && !Impl::Serf.suspected(f));
        let s = "2026-11-23T12:21:55Z  INFO memberlist: suspect has failed, no acks received node=a target=c";
        assert!(Impl::Hearsay.suspected(s) && !Impl::Hearsay.suspected(u));
    }

    #[test]
    fn reads_minor_faults() {
        let stat = "4242 (a b) S 1 4242 4242 0 -1 4194560 12345 0 7 0 5 3 0 0 20 0 9 0";
        assert_eq!(stat_minflt(stat), Some(12345.0));
        assert_eq!(stat_minflt("4242 (x"), None);
        assert!(minor_faults(std::process::id()).unwrap() > 0.0);
    }

    #[test]
    fn lines_wait_with_deadline() {
        let l = Lines::default();
        l.push("a".into());
        let soon = Instant::now() + Duration::from_millis(20);
        assert!(l.wait_for(soon, |x| x == "a").is_some());
        assert!(l.wait_for(soon, |x| x == "b").is_none());
    }
}
