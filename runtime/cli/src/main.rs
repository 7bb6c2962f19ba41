//! `hearsay`: the command line. `hearsay agent` runs a node (see [`agent`]); every other verb
//! is a client of a running agent's RPC address (see [`client`]). Flags become config here; no
//! protocol logic lives in this crate.

#![warn(unreachable_pub)]

mod agent;
mod client;
mod new;

use std::process::ExitCode;

const USAGE: &str = "usage: hearsay <command> [flags]

Commands:
  agent         run a hearsay agent (a cluster node)
  members       list the cluster's members
  join          tell the agent to join nodes
  leave         make the agent leave the cluster gracefully and stop
  force-leave   force a failed member into the left state
  event         send a user event to the cluster
  query         send a query and print the acks and responses
  monitor       stream the agent's logs
  tags          change the agent's tags
  keys          manage the gossip encryption keyring
  keygen        make a new encryption key (-deploy: a deploy signing key)
  rtt           estimate the round-trip time between nodes
  info          show the agent's runtime information
  reachability  test which nodes answer a query
  handlers      list the agent's WebAssembly handlers with their counters
  deploy        deploy a handler module to every hearsay node (signed)
  deployments   list deployments and each node's state
  rollback      deploy a handler's previous version again
  undeploy      remove a deployed handler from every node
  new           write a new handler project (Rust, C, Python or JavaScript)
  version       print hearsay's version

Run `hearsay <command> -help` for a command's flags.";

fn main() -> ExitCode {
    // The verbs take text: an argument that is not UTF-8 is refused with one line, not a panic.
    let args: Result<Vec<String>, _> = std::env::args_os()
        .skip(1)
        .map(|a| a.into_string())
        .collect();
    let args = match args {
        Ok(args) => args,
        Err(bad) => {
            eprintln!("Error: argument {bad:?} is not valid UTF-8");
            return ExitCode::from(1);
        }
    };
    let mut args = args.into_iter();
    let Some(verb) = args.next() else {
        eprintln!("{USAGE}");
        return ExitCode::from(1);
    };
    let rest: Vec<String> = args.collect();
    let result = match verb.as_str() {
        "agent" => agent::run(rest),
        "new" => new::run(rest),
        "-h" | "-help" | "--help" | "help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => client::run(other, rest),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // One line: our errors already name their causes, so the chain is not repeated.
            let msg = e.to_string().replace('\n', " ");
            eprintln!("Error: {msg}");
            ExitCode::from(1)
        }
    }
}
