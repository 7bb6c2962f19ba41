//! `hearsay agent`: flags and config files become an agent config, then the agent runs until
//! it is told to leave or stop.

use std::process::ExitCode;

pub fn run(_args: Vec<String>) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`hearsay agent` is being built (issue 4)")
}
