//! `hearsay-serf-node`: runs one Serf node from flags and reports what it sees, one line per
//! event, so scripts and interop tests (against the real `serf`) can follow and drive it.
//!
//! ```text
//! hearsay-serf-node -name=h1 -bind=127.0.0.1:7950 -join=127.0.0.1:7946 -tag role=web \
//!     -respond uptime=42 -event-log /tmp/h1.events
//! ```
//!
//! Flags (Go style: `-name=x`, `-name x`, `--name=x` and `--name x` all work):
//! `-name` (default: the host name), `-bind ADDR` (default 127.0.0.1:7946; port 0 picks one),
//! `-advertise ADDR`, `-join ADDR` (repeatable; port defaults to 7946), `-replay` (deliver user
//! events from before the join), `-encrypt BASE64KEY`, `-keyring-file PATH`,
//! `-tag k=v` (repeatable, or `k=v,k=v`), `-profile lan|wan|local`, `-event-log PATH`,
//! `-respond NAME=TEXT` (answer queries named NAME with TEXT; repeatable),
//! `-fire-event NAME[=PAYLOAD]` and `-query NAME[=PAYLOAD]` (after the join; repeatable),
//! `-query-timeout SECS`, `-query-ack`, `-snapshot PATH` (Serf's snapshot file: on start the
//! node restores its clocks from it, so events it already delivered are not delivered again,
//! and rejoins the nodes it knew, printing `REJOINED n`), `-tags-file PATH` (Serf's tags file,
//! a JSON object of strings, e.g. `{"role":"web"}`, over the `-tag`s: read at start and again
//! on SIGHUP, which announces the new tags and prints `TAGS k=v,...`).
//!
//! Output on stdout: `READY name addr` once listening, `JOINED n` after the start-up join,
//! `EVENT <line>` per delivered event (the line also goes to `-event-log`):
//! `member-join|member-leave|member-failed|member-update|member-reap <name>...` (in
//! `member-update`, a member with tags is followed by them as `k=v,...`),
//! `user <ltime> <name> <payload>`, `query <ltime> <name> <payload>`; for each `-query`:
//! `ACK <node>`, `RESPONSE <node> <payload>`, then `DONE <name>`; `MEMBERS name=status,...` on
//! SIGUSR1; `LEFT` after the graceful leave that SIGINT or SIGTERM starts. Payloads are
//! printed as text with `\`, newline and carriage return escaped. Logs go to stderr (`RUST_LOG`).

use anyhow::{bail, Context};
use hearsay_agent::conventions::Flag;
use hearsay_agent::{run, tags_file, Node, NodeOptions, QueryResult};
use hearsay_net::{Config, UdpTcpTransport};
use hearsay_serf::event::{Event, MemberEvent, MemberEventKind};
use hearsay_serf::{QueryParams, SerfConfig};
use hearsay_test_nodes::{members_line, parse_flags, secs, NodeArgs, Signal, Signals};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

#[derive(Debug)]
struct Args {
    node: NodeArgs,
    replay: bool,
    event_log: Option<PathBuf>,
    respond: BTreeMap<String, String>,
    fire_events: Vec<(String, String)>,
    queries: Vec<(String, String)>,
    query_timeout: Option<Duration>,
    query_ack: bool,
    snapshot: Option<PathBuf>,
    tags_file: Option<PathBuf>,
}

const USAGE: &str = "usage: hearsay-serf-node [-name=NAME] [-bind=IP:PORT] [-advertise=IP:PORT] \
[-join=ADDR]... [-replay] [-encrypt=BASE64KEY] [-keyring-file=PATH] [-tag k=v]... \
[-profile=lan|wan|local] [-event-log=PATH] [-respond NAME=TEXT]... [-fire-event NAME=PAYLOAD]... \
[-query NAME[=PAYLOAD]]... [-query-timeout=SECS] [-query-ack] [-snapshot=PATH] [-tags-file=PATH]";

/// Flags that take no value.
const BOOL_FLAGS: &[&str] = &["replay", "query-ack"];

fn parse_args(raw: Vec<String>) -> anyhow::Result<Args> {
    let mut args = Args {
        node: NodeArgs::default(),
        replay: false,
        event_log: None,
        respond: BTreeMap::new(),
        fire_events: Vec::new(),
        queries: Vec::new(),
        query_timeout: None,
        query_ack: false,
        snapshot: None,
        tags_file: None,
    };
    parse_flags(raw, BOOL_FLAGS, USAGE, |flag| {
        let Some(flag) = args.node.accept(flag)? else {
            return Ok(true);
        };
        match flag.name.as_str() {
            "replay" => args.replay = flag.bool()?,
            "event-log" => args.event_log = Some(flag.value.into()),
            "respond" => {
                let (name, text) = respond(&flag)?;
                args.respond.insert(name, text);
            }
            "fire-event" => args.fire_events.push(name_and_payload(&flag.value)),
            "query" => args.queries.push(name_and_payload(&flag.value)),
            "query-timeout" => args.query_timeout = Some(secs(&flag)?),
            "query-ack" => args.query_ack = flag.bool()?,
            "snapshot" => args.snapshot = Some(flag.value.into()),
            "tags-file" => args.tags_file = Some(flag.value.into()),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(args)
}

/// `-respond NAME=TEXT`: the text may hold `=`.
fn respond(flag: &Flag) -> anyhow::Result<(String, String)> {
    let (name, text) = flag
        .value
        .split_once('=')
        .ok_or_else(|| flag.bad("NAME=TEXT"))?;
    Ok((name.to_owned(), text.to_owned()))
}

/// `NAME=PAYLOAD`, or `NAME` with an empty payload.
fn name_and_payload(s: &str) -> (String, String) {
    match s.split_once('=') {
        Some((n, p)) => (n.to_owned(), p.to_owned()),
        None => (s.to_owned(), String::new()),
    }
}

/// A payload as one line of text.
fn escape(payload: &[u8]) -> String {
    let text = String::from_utf8_lossy(payload);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

fn member_line(e: &MemberEvent) -> String {
    let mut line = e.kind.as_str().to_owned();
    for m in &e.members {
        line.push(' ');
        line.push_str(&m.name);
        if e.kind == MemberEventKind::Update && !m.tags.is_empty() {
            line.push(' ');
            line.push_str(&tags_text(&m.tags));
        }
    }
    line
}

/// Tags as `k=v,k=v`.
fn tags_text(tags: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(",")
}

/// The `-tag`s with the `-tags-file`'s tags (if any) over them.
fn current_tags(args: &Args) -> anyhow::Result<BTreeMap<String, String>> {
    let mut tags = args.node.tags.clone();
    if let Some(path) = &args.tags_file {
        tags.extend(tags_file::read(path)?);
    }
    Ok(tags)
}

/// SIGHUP: re-reads the `-tags-file` and announces its tags; a bad file is reported and the
/// current tags are kept, as Serf's reload does.
async fn reload_tags(agent: &Node, args: &Args) {
    if args.tags_file.is_none() {
        return;
    }
    let result = match current_tags(args) {
        Ok(tags) => agent
            .set_tags(tags.clone())
            .await
            .map(|()| tags)
            .map_err(anyhow::Error::from),
        Err(e) => Err(e),
    };
    match result {
        Ok(tags) => println!("TAGS {}", tags_text(&tags)),
        Err(e) => eprintln!("warning: reloading -tags-file: {e:#}"),
    }
}

/// The line an event is reported as, if it is one the event log records.
fn event_line(ev: &Event) -> Option<String> {
    Some(match ev {
        Event::Member(e) => member_line(e),
        Event::User(u) => format!("user {} {} {}", u.ltime, u.name, escape(&u.payload)),
        Event::Query(q) => format!("query {} {} {}", q.ltime, q.name, escape(&q.payload)),
        _ => return None,
    })
}

/// Appends event lines to the `-event-log` file (if any) and echoes them on stdout.
struct EventLog {
    file: Option<std::fs::File>,
}

impl EventLog {
    fn open(path: Option<&PathBuf>) -> anyhow::Result<Self> {
        let file = path
            .map(|p| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .with_context(|| format!("opening -event-log {}", p.display()))
            })
            .transpose()?;
        Ok(Self { file })
    }

    fn record(&mut self, line: &str) -> anyhow::Result<()> {
        println!("EVENT {line}");
        if let Some(f) = &mut self.file {
            writeln!(f, "{line}").context("writing the event log")?;
            f.flush()?;
        }
        Ok(())
    }
}

async fn print_members(agent: &Node) -> anyhow::Result<()> {
    let members = agent.members().await?;
    println!(
        "{}",
        members_line(members.iter().map(|m| (m.name.as_str(), m.status.as_str())))
    );
    Ok(())
}

/// Runs one `-query` and prints its results.
async fn run_query(
    agent: Node,
    name: String,
    payload: String,
    params: QueryParams,
) -> anyhow::Result<()> {
    let mut results = agent
        .query(&name, payload.as_bytes(), params)
        .await
        .with_context(|| format!("query {name:?}"))?;
    while let Some(r) = results.next().await {
        match r {
            QueryResult::Ack { from } => println!("ACK {from}"),
            QueryResult::Response { from, payload } => {
                println!("RESPONSE {from} {}", escape(&payload))
            }
            QueryResult::ResponseChunk { from, chunk } => {
                println!("CHUNK {from} {}", chunk.len())
            }
            QueryResult::ResponseEnd { from, result } => println!("END {from} {result:?}"),
            QueryResult::Done => println!("DONE {name}"),
        }
    }
    Ok(())
}

fn start(args: &Args, transport: UdpTcpTransport) -> anyhow::Result<Node> {
    let node = &args.node;
    let memberlist = Config::profile(node.profile, node.name.clone(), node.bind);
    let mut config = SerfConfig::new(memberlist);
    config.tags = current_tags(args)?;
    let mut options = NodeOptions::new(config);
    if let Some(ring) = node.keyring()? {
        options = options.keyring(ring);
    }
    Ok(Node::start(options, transport)?)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut log = EventLog::open(args.event_log.as_ref())?;
    let transport =
        UdpTcpTransport::bind_with_advertise(args.node.bind, args.node.advertise).await?;
    let agent = start(&args, transport)?;
    let mut events = agent.subscribe();
    let me = agent.local_member().await?;
    println!("READY {} {}", me.name, me.addr);

    if let Some(path) = &args.snapshot {
        // The agent's own snapshot handling (after a leave, the replay holds nothing to
        // restore, as Serf's without -rejoin).
        let n = run::open_snapshot(&agent, path, false).await?;
        if n > 0 {
            println!("REJOINED {n}");
        }
    }

    if !args.node.join.is_empty() {
        let addrs = args.node.join_addrs().await?;
        // A few attempts, a second apart, ride out a peer that is briefly too busy to answer;
        // each failure is logged with its cause, and the last one ends the node.
        const JOIN_ATTEMPTS: u32 = 3;
        let mut attempt = 1;
        loop {
            match agent.join(&addrs, !args.replay).await {
                Ok(n) => {
                    println!("JOINED {n}");
                    break;
                }
                Err(e) if attempt < JOIN_ATTEMPTS => {
                    tracing::warn!(attempt, error = %e, "join failed; retrying in 1 s");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => {
                    agent.shutdown().await;
                    return Err(e.into());
                }
            }
        }
    }
    for (name, payload) in &args.fire_events {
        agent
            .user_event(name, payload.as_bytes(), false)
            .await
            .with_context(|| format!("-fire-event {name}"))?;
    }
    let params = QueryParams {
        request_ack: args.query_ack,
        timeout: args.query_timeout.unwrap_or_default(),
        ..QueryParams::default()
    };
    for (name, payload) in args.queries.iter().cloned() {
        let (agent, params) = (agent.clone(), params.clone());
        // Beside the event loop, which answers queries (ours included) meanwhile.
        tokio::spawn(async move {
            if let Err(e) = run_query(agent, name, payload, params).await {
                eprintln!("error: {e:#}");
            }
        });
    }

    let mut signals = Signals::with_reload()?;
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(ev) => {
                    if let Some(line) = event_line(&ev) {
                        log.record(&line)?;
                    }
                    if let Event::NameConflict { won: false, matching, responses } = &ev {
                        agent.shutdown().await;
                        bail!(
                            "another node uses the name {:?} and the cluster voted for it \
                             ({matching} of {responses} members know us at our address); \
                             start this node with a unique -name",
                            agent.name()
                        );
                    }
                    if let Event::Query(q) = &ev {
                        if let Some(text) = args.respond.get(&q.name) {
                            if let Err(e) = agent.respond(q.ltime, q.id, text.as_bytes()).await {
                                eprintln!("warning: answering query {}: {e}", q.name);
                            }
                        }
                    }
                }
                Err(RecvError::Lagged(n)) => eprintln!("warning: missed {n} events"),
                Err(RecvError::Closed) => bail!("the node stopped unexpectedly"),
            },
            signal = signals.recv() => match signal {
                Signal::PrintMembers => print_members(&agent).await?,
                Signal::Reload => reload_tags(&agent, &args).await,
                Signal::Leave => break,
            },
        }
    }
    match agent.leave().await {
        Ok(()) => println!("LEFT"),
        Err(e) => eprintln!("warning: {e}"),
    }
    agent.shutdown().await;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    hearsay_test_nodes::run_main(parse_args, run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearsay_serf::event::{Member, MemberStatus, UserEvent};

    fn args(v: &[&str]) -> anyhow::Result<Args> {
        parse_args(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn flags_in_both_styles() {
        let a = args(&[
            "-name=a",
            "--bind",
            "127.0.0.1:0",
            "-join=127.0.0.1:7946",
            "--join",
            "h2",
            "-replay",
            "-tag",
            "role=web",
            "--tag=dc=x,rack=1",
            "-respond",
            "uptime=42 days",
            "--respond=who=a=b",
            "-fire-event=deploy=v1",
            "-query",
            "uptime",
            "-query-ack",
            "--event-log",
            "/tmp/x",
            "-profile=local",
            "-tags-file=/tmp/tags.json",
        ])
        .unwrap();
        assert_eq!(a.node.name, "a");
        assert_eq!(a.node.bind, "127.0.0.1:0".parse().unwrap());
        assert_eq!(a.node.join, vec!["127.0.0.1:7946", "h2"]);
        assert!(a.replay && a.query_ack);
        assert_eq!(a.node.tags.len(), 3);
        assert_eq!(a.respond["uptime"], "42 days");
        assert_eq!(a.respond["who"], "a=b");
        assert_eq!(a.fire_events, [("deploy".to_owned(), "v1".to_owned())]);
        assert_eq!(a.queries, [("uptime".to_owned(), String::new())]);
        assert_eq!(a.event_log, Some(PathBuf::from("/tmp/x")));
        assert_eq!(a.node.profile, hearsay_net::Profile::Local);
        assert_eq!(a.tags_file, Some(PathBuf::from("/tmp/tags.json")));
        assert!(!args(&["-replay=false"]).unwrap().replay);
        assert!(args(&["-bogus=1"]).is_err());
        assert!(args(&["-name"]).is_err());
        assert!(args(&["-respond=noequals"]).is_err());
        assert!(args(&["stray"]).is_err());
    }

    #[test]
    fn event_lines() {
        let m = |name: &str| Member {
            name: name.into(),
            addr: "127.0.0.1:1".parse().unwrap(),
            tags: BTreeMap::new(),
            status: MemberStatus::Alive,
            vsn: [0; 6],
        };
        let join = Event::Member(MemberEvent {
            kind: MemberEventKind::Join,
            members: vec![m("a"), m("b")],
        });
        assert_eq!(event_line(&join).unwrap(), "member-join a b");
        let mut tagged = m("c");
        tagged.tags.insert("role".into(), "db".into());
        tagged.tags.insert("dc".into(), "x".into());
        let update = Event::Member(MemberEvent {
            kind: MemberEventKind::Update,
            members: vec![m("a"), tagged],
        });
        assert_eq!(
            event_line(&update).unwrap(),
            "member-update a c dc=x,role=db"
        );
        let user = Event::User(UserEvent {
            ltime: 7,
            name: "deploy".into(),
            payload: b"v1\nback\\slash".to_vec(),
            coalesce: false,
        });
        assert_eq!(
            event_line(&user).unwrap(),
            "user 7 deploy v1\\nback\\\\slash"
        );
        assert_eq!(event_line(&Event::LeaveComplete), None);
    }
}
