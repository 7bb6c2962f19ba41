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

use anyhow::{bail, Context};
use hearsay_net::flags::{self, Flags, DEFAULT_PORT};
use hearsay_net::{Config, Event, Member, Memberlist, Options, Profile, UdpTcpTransport};
use hearsay_swim::wire::NodeStateKind;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::broadcast::error::RecvError;

/// Serf's `tagMagicByte`: metadata starting with it is a msgpack map of tags.
const TAG_MAGIC: u8 = 255;

#[derive(Debug)]
struct Args {
    name: String,
    bind: SocketAddr,
    advertise: Option<SocketAddr>,
    join: Vec<String>,
    encrypt: Option<String>,
    keyring_file: Option<String>,
    tags: BTreeMap<String, String>,
    profile: Profile,
    print_members_every: Option<Duration>,
    leave_timeout: Duration,
}

const USAGE: &str =
    "usage: hearsay-memberlist-node [-name=NAME] [-bind=IP:PORT] [-advertise=IP:PORT] \
[-join=ADDR]... [-encrypt=BASE64KEY] [-keyring-file=PATH] [-tag k=v]... [-meta-tags k=v,...] [-profile=lan|wan|local] \
[-print-members-every=SECS] [-leave-timeout=SECS]";

fn parse_args(raw: impl IntoIterator<Item = String>) -> anyhow::Result<Args> {
    let mut args = Args {
        name: flags::default_name(),
        bind: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
        advertise: None,
        join: Vec::new(),
        encrypt: None,
        keyring_file: None,
        tags: BTreeMap::new(),
        profile: Profile::Lan,
        print_members_every: None,
        leave_timeout: Duration::from_secs(5),
    };
    for flag in Flags::new(raw, &["h", "help"]) {
        let flag = flag.with_context(|| USAGE)?;
        match flag.name.as_str() {
            "h" | "help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "name" | "node" => args.name = flag.value,
            "bind" => args.bind = flag.addr()?,
            "advertise" => args.advertise = Some(flag.addr()?),
            "join" => args.join.push(flag.value),
            "encrypt" => args.encrypt = Some(flag.value),
            "keyring-file" => args.keyring_file = Some(flag.value),
            "tag" | "meta-tags" => args.tags.extend(flag.key_values()?),
            "profile" => args.profile = flag.value.parse()?,
            "print-members-every" => {
                args.print_members_every = Some(flag.secs()?).filter(|d| !d.is_zero())
            }
            "leave-timeout" => args.leave_timeout = flag.secs()?,
            other => bail!("unknown flag -{other}\n{USAGE}"),
        }
    }
    Ok(args)
}

/// Serf's `encodeTags`: the magic byte, then a msgpack map of string to string in the old
/// spec go-msgpack writes (raw strings, no str8).
fn encode_tags(tags: &BTreeMap<String, String>) -> Vec<u8> {
    fn len_header(out: &mut Vec<u8>, len: usize, fix: u8, fix_max: usize, b16: u8, b32: u8) {
        if len <= fix_max {
            out.push(fix | len as u8);
        } else if let Ok(l) = u16::try_from(len) {
            out.push(b16);
            out.extend_from_slice(&l.to_be_bytes());
        } else {
            out.push(b32);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
    }
    let raw = |out: &mut Vec<u8>, s: &str| {
        len_header(out, s.len(), 0xa0, 31, 0xda, 0xdb);
        out.extend_from_slice(s.as_bytes());
    };
    let mut out = vec![TAG_MAGIC];
    len_header(&mut out, tags.len(), 0x80, 15, 0xde, 0xdf);
    for (k, v) in tags {
        raw(&mut out, k);
        raw(&mut out, v);
    }
    out
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
    let list: Vec<String> = members
        .iter()
        .map(|m| format!("{}={}", m.name, status(m)))
        .collect();
    println!("MEMBERS {}", list.join(","));
    Ok(())
}

async fn run(args: Args) -> anyhow::Result<()> {
    let transport = UdpTcpTransport::bind_with_advertise(args.bind, args.advertise).await?;
    let config = Config::profile(args.profile, args.name.clone(), args.bind);
    let mut options = Options::new(config);
    let keyring = flags::keyring(args.encrypt.as_deref(), args.keyring_file.as_deref())
        .context("-encrypt / -keyring-file")?;
    if let Some(ring) = keyring {
        options = options.keyring(ring);
    }
    if !args.tags.is_empty() {
        options = options.meta(encode_tags(&args.tags));
    }
    let node = Memberlist::start(options, transport)?;
    let mut events = node.subscribe();
    let me = node.local().await?;
    println!("READY {} {}", me.name, me.addr);
    println!("EVENT member-join {} {}", me.name, me.addr);

    if !args.join.is_empty() {
        let mut addrs = Vec::new();
        for a in &args.join {
            addrs.push(flags::resolve(a).await?);
        }
        match node.join(&addrs).await {
            Ok(n) => println!("JOINED {n}"),
            Err(e) => {
                node.shutdown().await;
                return Err(e.into());
            }
        }
    }

    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigusr1 = signal(SignalKind::user_defined1())?;
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
            _ = sigusr1.recv() => print_members(&node).await?,
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
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
    flags::init_logging();
    let args = parse_args(std::env::args().skip(1))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> anyhow::Result<Args> {
        parse_args(v.iter().map(|s| s.to_string()))
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
        assert_eq!(a.name, "a");
        assert_eq!(a.bind, "127.0.0.1:0".parse().unwrap());
        assert_eq!(a.join, vec!["127.0.0.1:7946", "h2"]);
        assert_eq!(a.tags.len(), 3);
        assert_eq!(a.profile, Profile::Local);
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
