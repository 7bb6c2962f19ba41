//! probe: a hostile or curious guest for hearsay-host's tests. The query name picks what it does
//! (its last `/`-separated part, so `payments/env` is `env` for a tenant's handler); most modes
//! reply with a text report the test checks.
//!
//! - `loop`: spins forever (the deadline must stop it).
//! - `hog`: allocates without bound (the memory limit must stop it).
//! - `recurse`: recurses without bound (the stack limit must stop it).
//! - `panic`: panics with "probe panicked on purpose".
//! - `file`: payload is a path; tries to read it and replies `read:<contents>` or `refused:<error>`.
//! - `socket`: payload is `ip:port`; tries to connect and replies `connected` or `refused:<error>`.
//! - `env`: replies with the environment, `k=v` per line.
//! - `clock`: replies with the wall clock's seconds since the Unix epoch.
//! - `emit`: emits user event `probe-emitted` with the payload; replies `ok` or `refused:<error>`.
//! - `members`: replies with `name addr:port status` per member, local member first.
//! - `twice`: opens a reply stream, tries a second reply with `respond` (which must fail), writes
//!   that error into the stream and finishes it.
//! - `abandon`: opens a stream, writes "partial" and drops it without finishing.
//! - `fail`: returns an error "probe failed on purpose".
//! - `exit`: payload is a status; calls `std::process::exit` with it.
//! - `sleep`: payload is seconds; sleeps that long in WASI's monotonic clock (as
//!   `std::thread::sleep` does: a host call), then replies `slept`.
//! - `log`: payload is `N TEXT`; logs TEXT at info N times, then replies `logged N`.
//! - `write`: payload is `PATH\nCONTENT`; writes CONTENT to PATH and replies `wrote` or
//!   `refused:<error>`.
//! - `command`: payload is `NAME` or `NAME\nSTDIN`; runs the granted command and replies
//!   `status=S signal=G cut=B out=STDOUT err=STDERR` or `refused:<error>`.
//! - `kv`: payload is `set KEY VALUE`, `get KEY`, `del KEY` or `keys PREFIX`; replies with the
//!   result (`ok`, the value or `none`, `true`/`false`, keys joined by `,`) or `refused:<error>`.
//! - `tag`: payload is `set NAME VALUE` or `del NAME`; replies `ok` or `refused:<error>`.
//! - a `tick` event with `PROBE_TICK_TAG` in its environment: sets that tag of its node to the
//!   tick's count.
//! - `state`: counts its calls in a zeroed static and overwrites an initialised one, and replies
//!   `calls=N word=W` with the values it found: `calls=1 word=7` in a fresh instance.

use std::hint::black_box;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

use hearsay_sdk::{Event, Handler, ReplyStream};

struct Probe;

/// Zero in a fresh instance (.bss).
static CALLS: AtomicU64 = AtomicU64::new(0);
/// 7 in a fresh instance (.data).
static WORD: AtomicU64 = AtomicU64::new(7);

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 32]);
    if black_box(depth) == u64::MAX {
        return frame[1];
    }
    recurse(frame[0] + 1).wrapping_add(frame[31])
}

fn text(payload: &[u8]) -> String {
    String::from_utf8_lossy(payload).into_owned()
}

fn reply(s: &str) -> Result<(), String> {
    hearsay_sdk::reply(s.as_bytes()).map_err(|e| format!("reply: {e:?}"))
}

impl Handler for Probe {
    fn handle(event: Event) -> Result<(), String> {
        // On a timer's tick, with PROBE_TICK_TAG granted in its environment: sets that tag of
        // its node to the tick's count (through the tags grant).
        if let (Event::Tick(t), Ok(tag)) = (&event, std::env::var("PROBE_TICK_TAG")) {
            hearsay_sdk::tags::set(&tag, &t.count.to_string()).map_err(|e| format!("{e:?}"))?;
        }
        let Event::Query(q) = event else {
            hearsay_sdk::info(&format!("probe saw {}", event.describe()));
            return Ok(());
        };
        match q.name.rsplit('/').next().unwrap_or_default() {
            "loop" => {
                let mut i = 0u64;
                loop {
                    i = black_box(i.wrapping_add(1));
                }
            }
            "hog" => {
                let mut held = Vec::new();
                loop {
                    held.push(vec![7u8; 1 << 20]);
                    black_box(&held);
                }
            }
            "recurse" => {
                black_box(recurse(0));
                reply("returned")
            }
            "panic" => panic!("probe panicked on purpose"),
            "file" => {
                let mut out = String::new();
                match std::fs::File::open(text(&q.payload))
                    .and_then(|mut f| f.read_to_string(&mut out))
                {
                    Ok(_) => reply(&format!("read:{out}")),
                    Err(e) => reply(&format!("refused:{e}")),
                }
            }
            "write" => {
                let t = text(&q.payload);
                let (path, content) = t.split_once('\n').unwrap_or((&t, ""));
                match std::fs::write(path, content) {
                    Ok(()) => reply("wrote"),
                    Err(e) => reply(&format!("refused:{e}")),
                }
            }
            "command" => {
                let t = text(&q.payload);
                let (name, stdin) = match t.split_once('\n') {
                    Some((n, s)) => (n.to_owned(), Some(s.as_bytes().to_vec())),
                    None => (t.clone(), None),
                };
                match hearsay_sdk::commands::run(&name, stdin.as_deref()) {
                    Ok(o) => reply(&format!(
                        "status={:?} signal={:?} cut={} out={} err={}",
                        o.status,
                        o.signal,
                        o.truncated,
                        o.stdout_text(),
                        o.stderr_text()
                    )),
                    Err(e) => reply(&format!("refused:{e:?}")),
                }
            }
            "kv" => {
                let t = text(&q.payload);
                let mut words = t.splitn(3, ' ');
                let (op, key, value) = (
                    words.next().unwrap_or(""),
                    words.next().unwrap_or(""),
                    words.next().unwrap_or(""),
                );
                use hearsay_sdk::kv;
                let out = match op {
                    "set" => kv::set(key, value).map(|()| "ok".to_owned()),
                    "get" => kv::get_string(key).map(|v| v.unwrap_or_else(|| "none".into())),
                    "del" => kv::delete(key).map(|b| b.to_string()),
                    "keys" => kv::keys(key).map(|k| k.join(",")),
                    other => return reply(&format!("unknown op {other}")),
                };
                match out {
                    Ok(s) => reply(&s),
                    Err(e) => reply(&format!("refused:{e:?}")),
                }
            }
            "tag" => {
                let t = text(&q.payload);
                let mut words = t.splitn(3, ' ');
                let (op, name, value) = (
                    words.next().unwrap_or(""),
                    words.next().unwrap_or(""),
                    words.next().unwrap_or(""),
                );
                let out = match op {
                    "set" => hearsay_sdk::tags::set(name, value),
                    _ => hearsay_sdk::tags::delete(name),
                };
                match out {
                    Ok(()) => reply("ok"),
                    Err(e) => reply(&format!("refused:{e:?}")),
                }
            }
            "socket" => match std::net::TcpStream::connect(text(&q.payload)) {
                Ok(_) => reply("connected"),
                Err(e) => reply(&format!("refused:{e}")),
            },
            "env" => reply(
                &std::env::vars()
                    .map(|(k, v)| format!("{k}={v}\n"))
                    .collect::<String>(),
            ),
            "clock" => {
                let secs = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                reply(&secs.to_string())
            }
            "emit" => match hearsay_sdk::emit("probe-emitted", &q.payload, false) {
                Ok(()) => reply("ok"),
                Err(e) => reply(&format!("refused:{e:?}")),
            },
            "members" => {
                let mut all = vec![hearsay_sdk::local_member()];
                all.extend(hearsay_sdk::members());
                let lines: String = all
                    .iter()
                    .map(|m| format!("{} {}:{} {:?}\n", m.name, m.addr, m.port, m.status))
                    .collect();
                reply(&lines)
            }
            "twice" => {
                let stream = hearsay_sdk::reply_stream().map_err(|e| format!("{e:?}"))?;
                let second = hearsay_sdk::reply(b"second");
                stream
                    .write(format!("second reply: {second:?}").as_bytes())
                    .map_err(|e| format!("{e:?}"))?;
                ReplyStream::finish(stream).map_err(|e| format!("{e:?}"))
            }
            "abandon" => {
                let stream = hearsay_sdk::reply_stream().map_err(|e| format!("{e:?}"))?;
                stream.write(b"partial").map_err(|e| format!("{e:?}"))?;
                drop(stream);
                Ok(())
            }
            "fail" => Err("probe failed on purpose".into()),
            "exit" => std::process::exit(text(&q.payload).trim().parse().unwrap_or(1)),
            "state" => {
                let calls = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
                let word = WORD.swap(1_000_000 + calls, Ordering::Relaxed);
                reply(&format!("calls={calls} word={word}"))
            }
            "sleep" => {
                let secs = text(&q.payload).trim().parse().unwrap_or(3600);
                std::thread::sleep(std::time::Duration::from_secs(secs));
                reply("slept")
            }
            "log" => {
                let payload = text(&q.payload);
                let (n, line) = payload.split_once(' ').unwrap_or(("1", ""));
                let n: u64 = n.parse().unwrap_or(1);
                for _ in 0..n {
                    hearsay_sdk::info(line);
                }
                reply(&format!("logged {n}"))
            }
            other => Err(format!("probe: unknown mode {other}")),
        }
    }
}

hearsay_sdk::export!(Probe);
