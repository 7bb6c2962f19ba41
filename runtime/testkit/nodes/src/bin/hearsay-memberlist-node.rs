//! `hearsay-memberlist-node`: runs one membership node from flags and prints what it sees, one
//! line per event, so scripts and interop tests (against the real `serf`) can follow it.
//!
//! ```text
//! hearsay-memberlist-node -name=h1 -bind=127.0.0.1:7950 -join=127.0.0.1:7946 -tag role=web
//! ```
//!
//! Flags (Go style: `-name=x`, `-name x`, `--name=x` and `--name x` all work):
//! `--name` (default: the host name), `--bind ADDR` (default 127.0.0.1:7946; port 0 picks one),
//! `--advertise ADDR`, `--join ADDR` (repeatable; port defaults to 7946), `--encrypt BASE64KEY`,
//! `--keyring-file PATH` (Serf's JSON list of base64 keys),
//! `--tag k=v` / `--meta-tags k=v[,k=v]` (repeatable; Serf's tag encoding),
//! `--profile lan|wan|local`, `--print-members-every SECS`, `--leave-timeout SECS`.
//!
//! Output on stdout: `READY name addr` once listening, `JOINED n` after the start-up join,
//! `EVENT member-join|member-update|member-leave|member-failed name addr` per event,
//! `MEMBERS name=status,...` on SIGUSR1 or every `--print-members-every` seconds, and `LEFT`
//! after the graceful leave that SIGINT or SIGTERM starts. Logs go to stderr (`RUST_LOG`).

use anyhow::bail;
use hearsay_net::{Config, Event, Member, Memberlist, Options, UdpTcpTransport};
use hearsay_serf::messages::encode_tags;
use hearsay_swim::wire::NodeStateKind;
use hearsay_test_nodes::{members_line, parse_flags, secs, tags, NodeArgs, Signal, Signals};
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

#[derive(Debug)]
struct Args {
    node: NodeArgs,
    print_members_every: Option<Duration>,
    leave_timeout: Duration,
}

const USAGE: &str =
    "usage: hearsay-memberlist-node [-name=NAME] [-bind=IP:PORT] [-advertise=IP:PORT] \
[-join=ADDR]... [-encrypt=BASE64KEY] [-keyring-file=PATH] [-tag k=v]... [-meta-tags k=v,...] [-profile=lan|wan|local] \
[-print-members-every=SECS] [-leave-timeout=SECS]";

fn parse_args(raw: Vec<String>) -> anyhow::Result<Args> {
    let mut args = Args {
        node: NodeArgs::default(),
        print_members_every: None,
        leave_timeout: Duration::from_secs(5),
    };
    parse_flags(raw, &[], USAGE, |flag| {
        let Some(flag) = args.node.accept(flag)? else {
            return Ok(true);
        };
        match flag.name.as_str() {
            "meta-tags" => args.node.tags.extend(tags(&flag)?),
            "print-members-every" => {
                args.print_members_every = Some(secs(&flag)?).filter(|d| !d.is_zero())
            }
            "leave-timeout" => args.leave_timeout = secs(&flag)?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(args)
}

fn status(m: &Member) -> &'static str {
    match m.state {
        NodeStateKind::Alive => "alive",
        NodeStateKind::Suspect => "suspect",
        NodeStateKind::Dead => "failed",
        NodeStateKind::Left => "left",
    }
}

fn event_line(ev: &Event) -> Option<String> {
    let (kind, m) = match ev {
        Event::MemberJoined(m) => ("member-join", m),
        Event::MemberUpdated(m) => ("member-update", m),
        Event::MemberLeft(m) => ("member-leave", m),
        Event::MemberFailed(m) => ("member-failed", m),
        _ => return None,
    };
    Some(format!("EVENT {kind} {} {}", m.name, m.addr))
}

async fn print_members(node: &Memberlist) -> anyhow::Result<()> {
    let mut members = node.members().await?;
    members.sort_by(|a, b| a.name.cmp(&b.name));
    println!(
        "{}",
        members_line(members.iter().map(|m| (m.name.as_str(), status(m))))
    );
    Ok(())
}

async fn run(args: Args) -> anyhow::Result<()> {
    let node_args = &args.node;
    let transport =
        UdpTcpTransport::bind_with_advertise(node_args.bind, node_args.advertise).await?;
    let config = Config::profile(node_args.profile, node_args.name.clone(), node_args.bind);
    let mut options = Options::new(config);
    if let Some(ring) = node_args.keyring()? {
        options = options.keyring(ring);
    }
    if !node_args.tags.is_empty() {
        options = options.meta(encode_tags(&node_args.tags));
    }
    let node = Memberlist::start(options, transport)?;
    let mut events = node.subscribe();
    let me = node.local().await?;
    println!("READY {} {}", me.name, me.addr);
    println!("EVENT member-join {} {}", me.name, me.addr);

    if !node_args.join.is_empty() {
        let addrs = node_args.join_addrs().await?;
        match node.join(&addrs).await {
            Ok(n) => println!("JOINED {n}"),
            Err(e) => {
                node.shutdown().await;
                return Err(e.into());
            }
        }
    }

    let mut signals = Signals::new()?;
    let every = args
        .print_members_every
        .unwrap_or(Duration::from_secs(3600));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(ev) => {
                    if let Some(line) = event_line(&ev) {
                        println!("{line}");
                    }
                }
                Err(RecvError::Lagged(n)) => eprintln!("warning: missed {n} events"),
                Err(RecvError::Closed) => bail!("the node stopped unexpectedly"),
            },
            _ = tick.tick(), if args.print_members_every.is_some() => print_members(&node).await?,
            signal = signals.recv() => match signal {
                Signal::PrintMembers => print_members(&node).await?,
                Signal::Leave => break,
                Signal::Reload => {}
            },
        }
    }
    match node.leave(args.leave_timeout).await {
        Ok(()) => println!("LEFT"),
        Err(e) => eprintln!("warning: {e}"),
    }
    node.shutdown().await;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    hearsay_test_nodes::run_main(parse_args, run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

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
            "-tag",
            "role=web",
            "--meta-tags=dc=x,rack=1",
            "-profile=local",
            "--print-members-every",
            "2",
        ])
        .unwrap();
        assert_eq!(a.node.name, "a");
        assert_eq!(a.node.bind, "127.0.0.1:0".parse().unwrap());
        assert_eq!(a.node.join, vec!["127.0.0.1:7946", "h2"]);
        assert_eq!(a.node.tags.len(), 3);
        assert_eq!(a.node.profile, hearsay_net::Profile::Local);
        assert_eq!(a.print_members_every, Some(Duration::from_secs(2)));
        assert!(args(&["-bogus=1"]).is_err());
        assert!(args(&["-name"]).is_err());
        assert!(args(&["stray"]).is_err());
    }

    #[test]
    fn tags_encode_like_serf() {
        let mut t = BTreeMap::new();
        t.insert("role".to_owned(), "web".to_owned());
        // 0xff, fixmap(1), fixraw "role", fixraw "web"
        assert_eq!(
            encode_tags(&t),
            [&[0xff, 0x81, 0xa4][..], b"role", &[0xa3], b"web"].concat()
        );
        let long = "x".repeat(40);
        t.insert("k".to_owned(), long.clone());
        let enc = encode_tags(&t);
        let pos = enc.windows(1).position(|w| w[0] == 0xda).unwrap();
        assert_eq!(&enc[pos + 1..pos + 3], &[0, 40]);
    }
}
