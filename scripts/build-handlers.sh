#!/usr/bin/env bash
# Builds every shipped handler in every language into components:
#   scripts/build-handlers.sh [-lang rust|c|python|js]... [OUT_DIR]     (default OUT_DIR: target/handlers)
# The Rust handlers (handlers/<name>, one Cargo workspace) become OUT_DIR/<name>.wasm; a handler
# in another language lives in handlers/<name>-<lang> and becomes OUT_DIR/<name>-<lang>.wasm,
# built by that language's one build script, sdk/<lang>/build.sh, which installs the language's
# tools the first time. A component newer than its sources, its SDK and the WIT is not rebuilt.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
langs=()
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    -lang) langs+=("$2"); shift 2 ;;
    -lang=*) langs+=("${1#-lang=}"); shift ;;
    -h|-help|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "build-handlers: unknown flag $1" >&2; exit 2 ;;
    *) out=$1; shift ;;
  esac
done
[ ${#langs[@]} -gt 0 ] || langs=(rust c python js)
out=${out:-$root/target/handlers}
mkdir -p "$out"
out=$(cd "$out" && pwd)

# Whether $1 exists and is newer than every file under the other arguments.
up_to_date() {
  local target=$1
  shift
  [ -f "$target" ] || return 1
  [ -z "$(find "$@" -type f -newer "$target" -not -path '*/node_modules/*' \
    -not -path '*/.venv/*' -not -path '*/.build/*' -not -path '*/target/*' -not -path '*/__pycache__/*' \
    -not -name '*.wasm' -print -quit)" ]
}

for lang in "${langs[@]}"; do
  case "$lang" in
    rust)
      cargo_out=$root/handlers/target/wasm32-wasip2/release
      if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
        echo "build-handlers: adding the rustup target wasm32-wasip2 (once)" >&2
        rustup target add wasm32-wasip2
      fi
      env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u CARGO_BUILD_TARGET \
        cargo build --quiet --release --target wasm32-wasip2 --manifest-path "$root/handlers/Cargo.toml"
      for dir in "$root"/handlers/*/; do
        name=$(basename "$dir")
        [ -f "$dir/Cargo.toml" ] || continue
        cp "$cargo_out/hearsay_handler_${name//-/_}.wasm" "$out/$name.wasm.tmp"
        mv "$out/$name.wasm.tmp" "$out/$name.wasm"
        echo "$out/$name.wasm"
      done
      ;;
    c|python|js)
      for dir in "$root"/handlers/*-"$lang"/; do
        [ -d "$dir" ] || continue
        name=$(basename "$dir")
        target=$out/$name.wasm
        if up_to_date "$target" "$dir" "$root/sdk/$lang" "$root/wit"; then
          echo "$target (up to date)"
          continue
        fi
        echo "build-handlers: building $name" >&2
        "$root/sdk/$lang/build.sh" "$dir" "$target.tmp"
        mv "$target.tmp" "$target"
        echo "$target"
      done
      ;;
    *) echo "build-handlers: unknown language $lang (rust, c, python, js)" >&2; exit 2 ;;
  esac
done
