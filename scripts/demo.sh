#!/usr/bin/env bash
# hearsay's main job: `hearsay agent`s form one cluster with a real serf agent on loopback.
# One hearsay agent starts from flags, one from a TOML config file; the real serf CLI lists
# them (also through a hearsay agent's RPC address, as does `hearsay members`), fires an event
# they receive, sends a query they acknowledge; SIGHUP reloads a tags file; SIGINT makes an
# agent leave gracefully, `serf leave` over RPC another. The hearsay agents answer queries with
# WebAssembly handlers (echo, sysinfo with /proc granted, blob), a 3 MB blob reply travels over
# QUIC into `hearsay query -output-dir`. A handler deployed through one hearsay agent with a
# signed `hearsay deploy` runs on both and answers `serf query greet`. Stops everything it
# started (by pid).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build -q -p hearsay --bin hearsay
echo "== building the ready-made handlers for wasm32-wasip2 (handlers/)"
cargo build -q --release --target wasm32-wasip2 --manifest-path handlers/Cargo.toml
WASM=$(pwd)/handlers/target/wasm32-wasip2/release
BIN=${CARGO_TARGET_DIR:-target}/debug/hearsay
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# Waits (at most 60 s: a first start compiles the handlers) until `serf members` shows a line with every word given.
wait_member() {
  for _ in $(seq 1 300); do
    if serf members -rpc-addr=$SERF_RPC | grep "^$1 " | grep -q -- "$2"; then return 0; fi
    sleep 0.2
  done
  echo "demo: serf never listed $1 as $2" >&2
  serf members -rpc-addr=$SERF_RPC >&2
  for f in "$WORK"/*.out; do echo "-- $f:" >&2; tail -20 "$f" >&2; done
  return 1
}

SERF_BIND=127.0.0.1:17946
SERF_RPC=127.0.0.1:17373
echo "== starting serf agent serf-1 on $SERF_BIND (log: $WORK/serf.log)"
serf agent -node=serf-1 -bind=$SERF_BIND -rpc-addr=$SERF_RPC -tag role=serf \
  -event-handler "query:hello=echo hello from serf-1" >"$WORK/serf.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 50); do serf members -rpc-addr=$SERF_RPC >/dev/null 2>&1 && break; sleep 0.2; done

echo "== hearsay keygen -deploy: the operator's deploy key (the agents trust its public half)"
DEPLOY_KEY=$("$BIN" keygen -deploy -out "$WORK/ops.key")
echo "$DEPLOY_KEY"

echo "== starting hearsay-1 from flags, joining $SERF_BIND"
"$BIN" agent -node=hearsay-1 -bind=127.0.0.1:17951 -rpc-addr=127.0.0.1:17381 \
  -join=$SERF_BIND -tag role=hearsay -handler "query:hello=$WASM/hearsay_handler_echo.wasm" \
  -data-dir="$WORK/hearsay-1" -deploy-key="$DEPLOY_KEY" \
  >"$WORK/hearsay-1.out" 2>&1 &
H1=$!
PIDS+=($H1)

echo "== starting hearsay-2 from a TOML config file with a tags file"
echo '{"role":"hearsay"}' >"$WORK/hearsay-2.tags.json"
cat >"$WORK/hearsay-2.toml" <<EOF
node_name = "hearsay-2"
bind = "127.0.0.1:17952"
rpc_addr = "127.0.0.1:17382"
retry_join = ["$SERF_BIND"]
retry_interval = "1s"
tags_file = "$WORK/hearsay-2.tags.json"
data_dir = "$WORK/hearsay-2"
deploy_keys = ["$DEPLOY_KEY"]

[[handler]]
module = "$WASM/hearsay_handler_echo.wasm"
events = "query:hello"

[[handler]]
module = "$WASM/hearsay_handler_sysinfo.wasm"
events = "query:sysinfo"
grants = { dirs = ["/proc"] }

[[handler]]
module = "$WASM/hearsay_handler_blob.wasm"
events = "query:blob"
EOF
"$BIN" agent -config-file="$WORK/hearsay-2.toml" >"$WORK/hearsay-2.out" 2>&1 &
H2=$!
PIDS+=($H2)

echo "== waiting for serf to see all three members"
wait_member hearsay-1 alive
wait_member hearsay-2 alive
echo "== serf members (as the real serf sees the cluster):"
serf members -rpc-addr=$SERF_RPC

for _ in $(seq 1 50); do
  [ "$(serf members -rpc-addr=127.0.0.1:17381 -status=alive | wc -l)" -ge 3 ] && break
  sleep 0.2
done
echo "== serf members -rpc-addr=127.0.0.1:17381 (the real serf CLI asking hearsay-1 over RPC):"
serf members -rpc-addr=127.0.0.1:17381
echo "== hearsay members -rpc-addr=127.0.0.1:17382 (hearsay's own CLI asking hearsay-2):"
"$BIN" members -rpc-addr=127.0.0.1:17382

echo "== serf event deploy v1"
serf event -rpc-addr=$SERF_RPC deploy v1
for i in 1 2; do
  for _ in $(seq 1 50); do grep -q "user-event: deploy" "$WORK/hearsay-$i.out" && break; sleep 0.2; done
  echo "-- hearsay-$i logged:"; grep "user-event: deploy" "$WORK/hearsay-$i.out"
done

echo "== serf query hello hi (serf-1 answers with its shell handler, the hearsay agents with the echo.wasm handler)"
serf query -rpc-addr=$SERF_RPC -timeout=3s hello hi

echo "== hearsay query sysinfo (hearsay-2's sysinfo.wasm reads the /proc it was granted)"
"$BIN" query -rpc-addr=127.0.0.1:17381 -timeout=3s -node=hearsay-2 sysinfo

echo "== hearsay query -output-dir blob 3000000 (hearsay-2's 3 MB reply streams over QUIC)"
"$BIN" query -rpc-addr=127.0.0.1:17381 -timeout=10s -node=hearsay-2 -output-dir="$WORK/replies" blob 3000000
ls -l "$WORK/replies"

echo "== hearsay handlers -rpc-addr=127.0.0.1:17382"
"$BIN" handlers -rpc-addr=127.0.0.1:17382

echo "== hearsay deploy: greet (echo.wasm) to every hearsay agent, signed, fetched from peers over QUIC"
"$BIN" deploy -rpc-addr=127.0.0.1:17381 -key="$WORK/ops.key" -name=greet -events=query:greet \
  -wait=60s "$WASM/hearsay_handler_echo.wasm"
echo "== serf query greet hi (the deployed handler answers on both hearsay agents; serf-1 has none)"
serf query -rpc-addr=$SERF_RPC -timeout=3s greet hi
echo "== hearsay deployments -rpc-addr=127.0.0.1:17382"
"$BIN" deployments -rpc-addr=127.0.0.1:17382

echo "== new tags in hearsay-2's tags file, then SIGHUP"
echo '{"role":"hearsay","version":"2"}' >"$WORK/hearsay-2.tags.json"
kill -HUP $H2
wait_member hearsay-2 version=2
serf members -rpc-addr=$SERF_RPC | grep '^hearsay-2 '

echo "== SIGINT to hearsay-1: it leaves gracefully"
kill -INT $H1
wait $H1 && echo "hearsay-1 exited with status 0"
wait_member hearsay-1 left
serf members -rpc-addr=$SERF_RPC

echo "== serf leave -rpc-addr=127.0.0.1:17382: hearsay-2 leaves over RPC and exits"
serf leave -rpc-addr=127.0.0.1:17382
wait $H2 && echo "hearsay-2 exited with status 0"
wait_member hearsay-2 left
serf members -rpc-addr=$SERF_RPC
