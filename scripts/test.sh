#!/usr/bin/env bash
# hearsay's whole test suite: installs what the tests need, then runs every test in the workspace
# (unit tests, simulator scenarios, fuzz-target smoke runs, interop with the real serf).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --workspace --all-targets "$@"
