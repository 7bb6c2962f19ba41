#!/usr/bin/env bash
# Builds this handler into a WebAssembly component: ./build.sh [OUT.wasm]
# (default: <package name>.wasm here). Installs the wasm32-wasip2 target with rustup the first
# time. The hearsay agent runs the result: hearsay agent -handler query:NAME=OUT.wasm
set -euo pipefail
cd "$(dirname "$0")"
name=$(sed -n 's/^name *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1)
if [ -z "$name" ]; then
  echo "build.sh: no package name in Cargo.toml" >&2
  exit 1
fi
out=${1:-$name.wasm}
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  echo "build.sh: adding the rustup target wasm32-wasip2 (once)" >&2
  rustup target add wasm32-wasip2
fi
# A build script of an enclosing project may have set flags for another target.
env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u CARGO_BUILD_TARGET \
  cargo build --quiet --release --target wasm32-wasip2
cp "target/wasm32-wasip2/release/${name//-/_}.wasm" "$out"
echo "$out"
