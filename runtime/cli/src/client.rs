//! The client verbs: each connects to an agent's RPC address, speaks Serf's RPC protocol and
//! prints what `serf` would.

use std::process::ExitCode;

pub fn run(verb: &str, _args: Vec<String>) -> anyhow::Result<ExitCode> {
    if verb == "version" {
        println!("hearsay v{}", env!("CARGO_PKG_VERSION"));
        return Ok(ExitCode::SUCCESS);
    }
    anyhow::bail!("unknown command {verb:?}; run `hearsay -help` for the list")
}
