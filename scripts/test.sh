#!/usr/bin/env bash
# hearsay's whole test suite: installs what the tests need, then runs every test in the workspace
# (unit tests, simulator scenarios, fuzz-target smoke runs, interop with the real serf).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --workspace --all-targets "$@"
# The SDK's and the ready-made handlers' pure logic (tag convention, file formats), on the host:
# they are components for wasm32-wasip2 everywhere else, outside this workspace.
env -u CARGO_BUILD_TARGET cargo test --manifest-path sdk/Cargo.toml
env -u CARGO_BUILD_TARGET cargo test --manifest-path handlers/Cargo.toml
