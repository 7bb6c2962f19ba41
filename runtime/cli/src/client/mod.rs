//! The client verbs: each connects to an agent's RPC address (hearsay's or Serf's: they speak
//! the same protocol), runs one command and prints what `serf` prints, with `serf`'s flag
//! names. `-rpc-addr` defaults to `HEARSAY_RPC_ADDR`, then `SERF_RPC_ADDR`, then
//! 127.0.0.1:7373; `-rpc-auth` to `HEARSAY_RPC_AUTH`, then `SERF_RPC_AUTH`.

mod deploy;
pub(crate) mod flags;
mod handlers;
mod output;
mod query;

use anyhow::Context as _;
use hearsay_agent::conventions::{parse_go_duration, parse_tags, DEFAULT_RPC_ADDR};
use hearsay_rpc::{KeyOp, QueryParams, QueryRecord, RecordStream, RpcClient, RpcMember, Value};
use output::{columnize, json};
use serde::Serialize;
use std::collections::BTreeMap;
use std::process::ExitCode;

/// One verb: its usage text, boolean flags and value flags (besides `-rpc-addr`/`-rpc-auth`).
struct Verb {
    usage: &'static str,
    bools: &'static [&'static str],
    values: &'static [&'static str],
}

fn verb_spec(verb: &str) -> Option<Verb> {
    let v = |usage, bools, values| {
        Some(Verb {
            usage,
            bools,
            values,
        })
    };
    match verb {
        "members" => v(
            "usage: hearsay members [-status=REGEX] [-name=REGEX] [-tag key=REGEX]... [-detailed] [-format=text|json]",
            &["detailed"],
            &["status", "name", "tag", "role", "format"],
        ),
        "join" => v("usage: hearsay join [-replay] ADDR...", &["replay"], &[]),
        "leave" => v("usage: hearsay leave", &[], &[]),
        "force-leave" => v("usage: hearsay force-leave [-prune] NODE", &["prune"], &[]),
        "event" => v(
            "usage: hearsay event [-coalesce=true|false] NAME [PAYLOAD]",
            &["coalesce"],
            &[],
        ),
        "query" => v(
            "usage: hearsay query [-node NAME]... [-tag key=REGEX]... [-timeout=DURATION] [-no-ack] [-relay-factor=N] [-format=text|json] [-output-dir DIR] NAME [PAYLOAD]",
            &["no-ack"],
            &["node", "tag", "timeout", "relay-factor", "format", "output-dir"],
        ),
        "monitor" => v(
            "usage: hearsay monitor [-log-level=TRACE|DEBUG|INFO|WARN|ERR]",
            &[],
            &["log-level"],
        ),
        "tags" => v(
            "usage: hearsay tags [-set key=value]... [-delete key]...",
            &[],
            &["set", "delete"],
        ),
        "keys" => v(
            "usage: hearsay keys -install=KEY | -use=KEY | -remove=KEY | -list",
            &["list"],
            &["install", "use", "remove"],
        ),
        "rtt" => v("usage: hearsay rtt NODE [NODE]", &[], &[]),
        "info" => v("usage: hearsay info [-format=text|json]", &[], &["format"]),
        "reachability" => v("usage: hearsay reachability [-verbose]", &["verbose"], &[]),
        "handlers" => v(
            "usage: hearsay handlers [-format=text|json]\n\nLists the agent's WebAssembly handlers: filter, invocations, errors, traps, drops,\np50/p99 run time and module (a hearsay extension; a Serf agent does not have it).",
            &[],
            &["format"],
        ),
        "deploy" => v(
            "usage: hearsay deploy -key=FILE -name=NAME [-events=FILTER] [-tag key=REGEX]... \
[-limits memory=32MiB,timeout=2s] [-grant-dir DIR]... [-grant-env K=V]... [-grant-emit] \
[-grant-clocks] [-grant-write-dir DIR]... [-grant-http URL]... [-grant-command NAME]... \
[-grant-kv SIZE] [-grant-tag PATTERN]... [-wait=30s] MODULE.wasm\n\nSigns a deployment of MODULE.wasm as handler NAME with \
the deploy key (hearsay keygen -deploy) and\nhands it to the agent, which spreads it to every \
hearsay member; then shows how many of\nthe nodes its -tag selector picks run it, until all do \
or -wait passes (exit 1 naming\nthe nodes that did not converge and why). Agents run it only \
if they trust the key\n(-deploy-key) and their deploy_grants allow what it asks for; \
-grant-command names a\ncommand each agent's deploy_grants.commands defines.",
            &["grant-emit", "grant-clocks"],
            &[
                "key",
                "name",
                "events",
                "tag",
                "limits",
                "grant-dir",
                "grant-env",
                "grant-write-dir",
                "grant-http",
                "grant-command",
                "grant-kv",
                "grant-tag",
                "wait",
            ],
        ),
        "rollback" => v(
            "usage: hearsay rollback -key=FILE -name=NAME [-wait=30s]\n\nDeploys the previous \
version's module and settings again, as a new version.",
            &[],
            &["key", "name", "wait"],
        ),
        "undeploy" => v(
            "usage: hearsay undeploy -key=FILE -name=NAME [-wait=30s]\n\nRemoves deployment NAME \
from every node (a signed removal that newer deploys supersede).",
            &[],
            &["key", "name", "wait"],
        ),
        "deployments" => v(
            "usage: hearsay deployments [-format=text|json]\n\nLists the deployments with each \
hearsay node's state: running, pending, failed, refused,\nnot-selected, removed or unreachable, \
and why.",
            &[],
            &["format"],
        ),
        _ => None,
    }
}

/// Runs a client verb; `Err` only for failures main should print as `Error: ...`.
pub(crate) fn run(verb: &str, args: Vec<String>) -> anyhow::Result<ExitCode> {
    match verb {
        "version" => {
            println!("hearsay v{}", env!("CARGO_PKG_VERSION"));
            println!("Agent Protocol: 5 (Understands back to: 2)");
            return Ok(ExitCode::SUCCESS);
        }
        "keygen" => return keygen(&args),
        _ => {}
    }
    let Some(spec) = verb_spec(verb) else {
        anyhow::bail!("unknown command {verb:?}; run `hearsay -help` for the list");
    };
    if args
        .iter()
        .any(|a| matches!(a.as_str(), "-h" | "-help" | "--help"))
    {
        println!(
            "{}\n\nCommon flags: -rpc-addr=ADDR (default {DEFAULT_RPC_ADDR}), -rpc-auth=TOKEN",
            spec.usage
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut values = spec.values.to_vec();
    values.extend(["rpc-addr", "rpc-auth"]);
    let parsed = match flags::parse(&args, spec.bools, &values) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}\n{}", spec.usage);
            return Ok(ExitCode::from(1));
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let code = runtime.block_on(dispatch(verb, &spec, &parsed));
    Ok(ExitCode::from(code))
}

/// `hearsay keygen`: Serf's gossip encryption key; with `-deploy -out FILE`, a deploy key.
fn keygen(args: &[String]) -> anyhow::Result<ExitCode> {
    use base64::Engine as _;
    const USAGE: &str = "usage: hearsay keygen [-deploy -out=FILE]\n\nPrints a new gossip \
encryption key (for -encrypt). With -deploy, writes a new Ed25519\ndeploy key to FILE (mode \
0600) and prints its public key (ed25519:BASE64) for the\nagents' -deploy-key.";
    let p = match flags::parse(args, &["deploy", "h", "help"], &["out"]) {
        Ok(p) if p.args.is_empty() => p,
        Ok(_) => {
            eprintln!("keygen takes no arguments\n{USAGE}");
            return Ok(ExitCode::from(1));
        }
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return Ok(ExitCode::from(1));
        }
    };
    if p.get("h").is_some() || p.get("help").is_some() {
        println!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    }
    if p.bool("deploy", false).map_err(anyhow::Error::msg)? {
        return Ok(match deploy::keygen(p.get("out")) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(1)
            }
        });
    }
    let key: [u8; 32] = rand::random();
    println!("{}", base64::engine::general_purpose::STANDARD.encode(key));
    Ok(ExitCode::SUCCESS)
}

fn env_default(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

/// Connects as the flags say, or prints one line saying why not and what to do.
async fn connect(p: &flags::Parsed) -> Result<RpcClient, u8> {
    let addr = p
        .get("rpc-addr")
        .map(str::to_owned)
        .or_else(|| env_default(&["HEARSAY_RPC_ADDR", "SERF_RPC_ADDR"]))
        .unwrap_or_else(|| DEFAULT_RPC_ADDR.to_owned());
    let auth = p
        .get("rpc-auth")
        .map(str::to_owned)
        .or_else(|| env_default(&["HEARSAY_RPC_AUTH", "SERF_RPC_AUTH"]));
    RpcClient::connect(&addr, auth.as_deref())
        .await
        .map_err(|e| {
            use hearsay_rpc::Error;
            let line = match &e {
                Error::Io { source, .. } => {
                    let why = match source.kind() {
                        std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
                        std::io::ErrorKind::TimedOut => "timed out".to_owned(),
                        _ => source.to_string(),
                    };
                    format!(
                        "Error connecting to hearsay agent at {addr}: {why}. Is an agent running? \
                         Start one with: hearsay agent -dev (or pass -rpc-addr=HOST:PORT)"
                    )
                }
                Error::Remote(msg) => format!(
                    "Error connecting to hearsay agent at {addr}: {msg}. Pass the agent's token \
                     with -rpc-auth=TOKEN (or HEARSAY_RPC_AUTH)"
                ),
                other => format!("Error connecting to hearsay agent at {addr}: {other}"),
            };
            eprintln!("{line}");
            1
        })
}

async fn dispatch(verb: &str, spec: &Verb, p: &flags::Parsed) -> u8 {
    // Argument checks come before connecting, as serf does them.
    let usage_error = |msg: &str| {
        eprintln!("{msg}\n\n{}", spec.usage);
        1u8
    };
    match verb {
        "join" if p.args.is_empty() => {
            return usage_error("At least one address to join must be specified.")
        }
        "force-leave" if p.args.len() != 1 => {
            return usage_error("A node name must be specified to force leave.")
        }
        "event" | "query" if p.args.is_empty() => {
            let what = if verb == "event" {
                "An event"
            } else {
                "A query"
            };
            return usage_error(&format!("{what} name must be specified."));
        }
        "event" | "query" if p.args.len() > 2 => {
            return usage_error(
                "Too many command line arguments. Only a name and payload must be specified.",
            )
        }
        "rtt" if p.args.is_empty() || p.args.len() > 2 => {
            return usage_error("One or two node names must be specified")
        }
        "tags" if p.all("set").is_empty() && p.all("delete").is_empty() => {
            return usage_error("Nothing to do: give -set key=value or -delete key.")
        }
        "keys" => {
            let given = [p.get("install"), p.get("use"), p.get("remove")]
                .iter()
                .filter(|v| v.is_some_and(|v| !v.is_empty()))
                .count()
                + usize::from(p.bool("list", false).unwrap_or(false));
            if given != 1 {
                return usage_error("Only one of -install, -use, -remove, or -list allowed");
            }
        }
        _ => {}
    }
    let client = match connect(p).await {
        Ok(c) => c,
        Err(code) => return code,
    };
    let result = match verb {
        "members" => members(&client, p).await,
        "join" => join(&client, p).await,
        "leave" => client
            .leave()
            .await
            .map(|()| println!("Graceful leave complete"))
            .map_err(|e| format!("Error leaving: {e}")),
        "force-leave" => client
            .force_leave(&p.args[0], p.bool("prune", false).unwrap_or(false))
            .await
            .map_err(|e| format!("Error force leaving: {e}")),
        "event" => event(&client, p).await,
        "query" => query(&client, p).await,
        "monitor" => monitor(&client, p).await,
        "tags" => tags(&client, p).await,
        "keys" => keys(&client, p).await,
        "rtt" => rtt(&client, p).await,
        "info" => info(&client, p).await,
        "reachability" => reachability(&client, p).await,
        "handlers" => handlers::run(&client, p).await,
        "deploy" => deploy::deploy(&client, p).await,
        "rollback" => deploy::rollback(&client, p).await,
        "undeploy" => deploy::undeploy(&client, p).await,
        "deployments" => deploy::list(&client, p).await,
        _ => Err(format!("unknown command {verb:?}")),
    };
    match result {
        Ok(()) => 0,
        Err(e) if e.is_empty() => 1,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

type Outcome = Result<(), String>;

/// The error line of a hearsay-only command: `Error {doing}: {e}`, or, when the agent does
/// not have the command (a Serf agent answers "Unsupported command"), that it lacks
/// `missing` because `why` is a hearsay extension.
fn hearsay_only_error(doing: &str, missing: &str, why: &str, e: hearsay_rpc::Error) -> String {
    let e = e.to_string();
    if e == hearsay_rpc::errors::UNSUPPORTED_COMMAND {
        format!(
            "Error {doing}: the agent does not support {missing} (a Serf agent? {why} a hearsay \
             extension)"
        )
    } else {
        format!("Error {doing}: {e}")
    }
}

fn format_of(p: &flags::Parsed) -> Result<&str, String> {
    match p.get("format").unwrap_or("text") {
        f @ ("text" | "json") => Ok(f),
        other => Err(format!(
            "Invalid output format \"{other}\" (use text or json)"
        )),
    }
}

/// `serf members -format=json`: `{"members": [...]}` (`null` when there are none, as Go
/// writes a nil slice).
#[derive(Serialize)]
struct MembersJson<'a> {
    members: Option<Vec<MemberJson<'a>>>,
}

/// One member as `serf members -format=json` prints it (Serf's `Member` struct, in its field
/// order; `protocol` is a map, so its keys are sorted).
#[derive(Serialize)]
struct MemberJson<'a> {
    name: &'a str,
    addr: String,
    port: u16,
    tags: &'a BTreeMap<String, String>,
    status: &'a str,
    protocol: BTreeMap<&'static str, u8>,
}

async fn members(client: &RpcClient, p: &flags::Parsed) -> Outcome {
    let format = format_of(p)?;
    let mut tag_args = p.all("tag").to_vec();
    if let Some(role) = p.get("role") {
        println!("Deprecation warning: 'Role' has been replaced with 'Tags'");
        tag_args.push(format!("role={role}"));
    }
    let tags = parse_tags(&tag_args).map_err(|e| format!("Error: {e}"))?;
    let detailed = p.bool("detailed", false)?;
    let members = client
        .members_filtered(
            &tags,
            p.get("status").unwrap_or(""),
            p.get("name").unwrap_or(""),
        )
        .await
        .map_err(|e| format!("Error retrieving members: {e}"))?;
    let addr_of = |m: &RpcMember| match m.ip() {
        Some(ip) => std::net::SocketAddr::new(ip, m.port).to_string(),
        None => format!(":{}", m.port),
    };
    if format == "json" {
        let list: Vec<MemberJson<'_>> = members
            .iter()
            .map(|m| MemberJson {
                name: &m.name,
                addr: addr_of(m),
                port: m.port,
                tags: &m.tags,
                status: &m.status,
                protocol: BTreeMap::from([
                    ("max", m.vsn[4]),
                    ("min", m.vsn[3]),
                    ("version", m.vsn[5]),
                ]),
            })
            .collect();
        let out = MembersJson {
            members: (!list.is_empty()).then_some(list),
        };
        println!("{}", json(&out)?);
        return Ok(());
    }
    let lines: Vec<String> = members
        .iter()
        .map(|m| {
            let tags: Vec<String> = m.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let mut line = format!("{}|{}|{}|{}", m.name, addr_of(m), m.status, tags.join(","));
            if detailed {
                line.push_str(&format!(
                    "|Protocol Version: {}|Available Protocol Range: [{}, {}]",
                    m.vsn[5], m.vsn[3], m.vsn[4]
                ));
            }
            line
        })
        .collect();
    let out = columnize(&lines);
    if !out.is_empty() {
        println!("{out}");
    }
    Ok(())
}

async fn join(client: &RpcClient, p: &flags::Parsed) -> Outcome {
    let n = client
        .join(&p.args, p.bool("replay", false)?)
        .await
        .map_err(|e| format!("Error joining the cluster: {e}"))?;
    println!("Successfully joined cluster by contacting {n} nodes.");
    Ok(())
}

async fn event(client: &RpcClient, p: &flags::Parsed) -> Outcome {
    let coalesce = p.bool("coalesce", true)?;
    let name = &p.args[0];
    let payload = p.args.get(1).map_or(&[][..], |s| s.as_bytes());
    client
        .user_event(name, payload, coalesce)
        .await
        .map_err(|e| format!("Error sending event: {e}"))?;
    println!("Event '{name}' dispatched! Coalescing enabled: {coalesce}");
    Ok(())
}

async fn query(client: &RpcClient, p: &flags::Parsed) -> Outcome {
    let format = match p.get("format").unwrap_or("text") {
        f @ ("text" | "json") => f,
        other => return Err(format!("Invalid format: {other}")),
    };
    let relay: i64 = p
        .get("relay-factor")
        .unwrap_or("0")
        .parse()
        .map_err(|_| "Relay factor must be a number".to_owned())?;
    let relay_factor =
        u8::try_from(relay).map_err(|_| "Relay factor must be between 0 and 255".to_owned())?;
    let no_ack = p.bool("no-ack", false)?;
    let params = QueryParams {
        filter_nodes: p.all("node").to_vec(),
        filter_tags: parse_tags(p.all("tag")).map_err(|e| format!("Error: {e}"))?,
        request_ack: !no_ack,
        relay_factor,
        timeout: match p.get("timeout") {
            Some(t) => parse_go_duration(t)?,
            None => std::time::Duration::ZERO,
        },
        name: p.args[0].clone(),
        payload: p
            .args
            .get(1)
            .map(|s| s.as_bytes().to_vec())
            .unwrap_or_default(),
    };
    let output_dir = p.get("output-dir").filter(|d| !d.is_empty());
    let mut sink = query::Sink::new(output_dir, format == "text")?;
    let mut stream = client
        .query(&params)
        .await
        .map_err(|e| format!("Error sending query: {e}"))?;
    if format == "text" {
        println!("Query '{}' dispatched", params.name);
    }
    while let Some(rec) = stream.next_query_record().await {
        match rec {
            QueryRecord::Ack(from) => sink.ack(from),
            QueryRecord::Response(from, payload) => sink.response(from, payload)?,
            QueryRecord::Piece {
                from,
                payload,
                last,
                error,
            } => sink.piece(from, payload, last, error)?,
        }
    }
    sink.finish()?;
    if format == "json" {
        if !sink.streamed.is_empty() && output_dir.is_none() {
            eprintln!("Large responses are not printed with -format=json; use -output-dir DIR to keep them");
        }
        let streamed = sink
            .streamed
            .iter()
            .map(|(node, st)| {
                let streamed = StreamedJson {
                    bytes: st.bytes,
                    error: st.error.as_deref().unwrap_or_default(),
                    file: st
                        .file
                        .as_ref()
                        .map_or(String::new(), |f| f.display().to_string()),
                };
                (node.as_str(), streamed)
            })
            .collect();
        let out = QueryJson {
            acks: (!sink.acks.is_empty()).then_some(&sink.acks),
            responses: &sink.whole,
            streamed,
        };
        println!("{}", json(&out)?);
    } else {
        if !no_ack {
            println!("Total Acks: {}", sink.acks.len());
        }
        println!("Total Responses: {}", sink.responded());
    }
    Ok(())
}

/// `serf query -format=json`: the acks (`null` when none, as Go writes a nil slice) and the
/// responses by node; hearsay adds `Streamed` (large responses, by node) when there are any.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct QueryJson<'a> {
    acks: Option<&'a Vec<String>>,
    responses: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    streamed: BTreeMap<&'a str, StreamedJson<'a>>,
}

/// A large response under `Streamed`: its size, its error (empty when none) and the file it
/// was written to (empty without `-output-dir`).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct StreamedJson<'a> {
    bytes: u64,
    error: &'a str,
    file: String,
}

/// Go's `%#v` of a value decoded into `interface{}` (close enough for reading).
fn go_value(v: &Value) -> String {
    match v {
        Value::Nil => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Uint(u) => format!("0x{u:x}"),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Raw(b) => format!("{:?}", String::from_utf8_lossy(b)),
        Value::Array(items) => format!(
            "[]interface {{}}{{{}}}",
            items.iter().map(go_value).collect::<Vec<_>>().join(", ")
        ),
        Value::Map(pairs) => format!(
            "map[string]interface {{}}{{{}}}",
            pairs
                .iter()
                .map(|(k, v)| format!("{}:{}", go_value(k), go_value(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

async fn monitor(client: &RpcClient, p: &flags::Parsed) -> Outcome {
    let level = p.get("log-level").unwrap_or("INFO");
    let mut events: RecordStream = client
        .stream("*")
        .await
        .map_err(|e| format!("Error starting stream: {e}"))?;
    let mut logs = client
        .monitor(level)
        .await
        .map_err(|e| format!("Error starting monitor: {e}"))?;
    loop {
        tokio::select! {
            line = logs.next_log() => match line {
                Some(l) => println!("{l}"),
                None => break,
            },
            ev = events.next() => match ev {
                Some(Value::Map(pairs)) => {
                    println!("Event Info:");
                    for (k, v) in &pairs {
                        let key = match k {
                            Value::Raw(b) => String::from_utf8_lossy(b).into_owned(),
                            other => go_value(other),
                        };
                        println!("\t{key}: {}", go_value(v));
                    }
                }
                Some(_) => {}
                None => break,
            },
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
    println!();
    println!("Remote side ended the monitor! This usually means that the\nremote side has exited or crashed.");
    Err(String::new())
}

async fn tags(client: &RpcClient, p: &flags::Parsed) -> Outcome {
    let set = parse_tags(p.all("set")).map_err(|e| format!("Error: {e}"))?;
    client
        .update_tags(&set, p.all("delete"))
        .await
        .map_err(|e| format!("Error setting tags: {e}"))?;
    println!("Successfully updated agent tags");
    Ok(())
}

async fn keys(client: &RpcClient, p: &flags::Parsed) -> Outcome {
    let nonempty = |n| p.get(n).filter(|v| !v.is_empty());
    let (op, key, doing, done, failed) = if p.bool("list", false)? {
        (
            KeyOp::List,
            "",
            "Asking all members for installed keys...",
            "",
            "Failed to gather member keys",
        )
    } else if let Some(k) = nonempty("install") {
        (
            KeyOp::Install,
            k,
            "Installing key on all members...",
            "Successfully installed key!",
            "Error installing key",
        )
    } else if let Some(k) = nonempty("use") {
        (
            KeyOp::Use,
            k,
            "Changing primary key on all members...",
            "Successfully changed primary key!",
            "Error changing primary key",
        )
    } else {
        let k = nonempty("remove").unwrap_or("");
        (
            KeyOp::Remove,
            k,
            "Removing key on all members...",
            "Successfully removed key!",
            "Error removing key",
        )
    };
    println!("==> {doing}");
    let (resp, err) = client
        .key_op(op, key)
        .await
        .map_err(|e| format!("{failed}: {e}"))?;
    if let Some(err) = err {
        if !resp.messages.is_empty() {
            let lines: Vec<String> = resp
                .messages
                .iter()
                .map(|(node, msg)| format!("failed: | {node} | {msg}"))
                .collect();
            eprintln!("{}", columnize(&lines));
        }
        eprintln!();
        return Err(format!("{failed}: {err}"));
    }
    if op == KeyOp::List {
        println!("==> Keys gathered, listing cluster keys...");
        println!();
        let lines: Vec<String> = resp
            .keys
            .iter()
            .map(|(k, n)| format!("{k} | [{n}/{}]", resp.num_nodes))
            .collect();
        println!("{}", columnize(&lines));
    } else {
        println!("==> {done}");
    }
    Ok(())
}

async fn rtt(client: &RpcClient, p: &flags::Parsed) -> Outcome {
    let mut nodes = p.args.clone();
    if nodes.len() == 1 {
        let stats = client
            .stats()
            .await
            .map_err(|e| format!("Error querying agent: {e}"))?;
        let me = stats
            .get("agent")
            .and_then(|a| a.get("name"))
            .cloned()
            .unwrap_or_default();
        nodes.push(me);
    }
    let mut coords = Vec::new();
    for n in &nodes {
        let c = client
            .coordinate(n)
            .await
            .map_err(|e| format!("Error getting coordinates: {e}"))?
            .ok_or_else(|| format!("Could not find a coordinate for node {n:?}"))?;
        coords.push(c);
    }
    let dist = coords[0].distance_to(&coords[1]);
    println!(
        "Estimated {} <-> {} rtt: {:.3} ms",
        nodes[0],
        nodes[1],
        dist.as_secs_f64() * 1000.0
    );
    Ok(())
}

async fn info(client: &RpcClient, p: &flags::Parsed) -> Outcome {
    let format = format_of(p)?;
    let stats = client
        .stats()
        .await
        .map_err(|e| format!("Error querying agent: {e}"))?;
    if format == "json" {
        println!("{}", json(&stats)?);
        return Ok(());
    }
    let mut out = String::new();
    for (section, values) in &stats {
        out.push_str(&format!("{section}:\n"));
        for (k, v) in values {
            out.push_str(&format!("\t{k} = {v}\n"));
        }
    }
    println!("{}", out.trim());
    Ok(())
}

async fn reachability(client: &RpcClient, p: &flags::Parsed) -> Outcome {
    let verbose = p.bool("verbose", false)?;
    let members = client
        .members()
        .await
        .map_err(|e| format!("Error getting members: {e}"))?;
    let live: std::collections::BTreeSet<String> = members
        .iter()
        .filter(|m| m.status == "alive")
        .map(|m| m.name.clone())
        .collect();
    println!(
        "Total members: {}, live members: {}",
        members.len(),
        live.len()
    );
    let params = QueryParams {
        request_ack: true,
        name: "_serf_ping".into(),
        ..QueryParams::default()
    };
    let mut stream = client
        .query(&params)
        .await
        .map_err(|e| format!("Error sending query: {e}"))?;
    println!("Starting reachability test...");
    let start = std::time::Instant::now();
    let mut last = start;
    let mut acks = std::collections::BTreeSet::new();
    let (mut num_acks, mut dups) = (0usize, false);
    while let Some(rec) = stream.next_query_record().await {
        if let QueryRecord::Ack(from) = rec {
            if verbose {
                println!("\tAck from '{from}'");
            }
            num_acks += 1;
            if !acks.insert(from.clone()) {
                dups = true;
                println!("Duplicate response from '{from}'");
            }
            last = std::time::Instant::now();
        }
    }
    if verbose {
        println!(
            "Query time: {:.2} sec, time to last response: {:.2} sec",
            start.elapsed().as_secs_f64(),
            last.duration_since(start).as_secs_f64()
        );
    }
    const TROUBLESHOOTING: &str = "
Troubleshooting tips:
* Ensure that the bind addr:port is accessible by all other nodes
* If an advertise address is set, ensure it routes to the bind address
* Check that no nodes are behind a NAT
* If nodes are behind firewalls or iptables, check that Serf traffic is permitted (UDP and TCP)
* Verify networking equipment is functional";
    if dups {
        println!("Duplicate responses means there is a misconfiguration. Verify that node names are unique.");
    }
    if num_acks == live.len() {
        println!("Successfully contacted all live nodes");
        return if dups { Err(String::new()) } else { Ok(()) };
    }
    if num_acks > live.len() {
        println!("Received more acks than live nodes! Acks from non-live nodes:");
        for m in acks.difference(&live) {
            println!("\t{m}");
        }
        println!("Received more acks than live nodes. This could mean a node is misconfigured or there is a name collision.");
    } else {
        println!("Received less acks than live nodes! Missing acks from:");
        for m in live.difference(&acks) {
            println!("\t{m}");
        }
        println!("Received less acks than live nodes. This could mean some nodes are failing to receive the query or respond to it.");
    }
    println!("{TROUBLESHOOTING}");
    Err(String::new())
}
