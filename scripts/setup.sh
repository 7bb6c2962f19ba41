#!/usr/bin/env bash
# Installs what hearsay's build and tests need on a fresh machine: the real `serf` (for the
# interop tests) from Debian's packages, and rustfmt/clippy. Safe to run again: it skips what is there.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

if ! command -v serf >/dev/null 2>&1; then
  echo "setup: installing serf from Debian's packages (interop tests run the real binary)" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq serf >/dev/null
fi

for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
    echo "setup: adding rustup component $component" >&2
    rustup component add "$component"
  fi
done

# WebAssembly handlers (sdk/, handlers/, runtime/host's test guests) build for wasm32-wasip2;
# hearsay-host's tests build them and need this target's standard library.
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  echo "setup: adding rustup target wasm32-wasip2" >&2
  rustup target add wasm32-wasip2
fi
