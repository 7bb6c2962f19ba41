#!/usr/bin/env bash
# hearsay's main job for now: a real serf agent and two hearsay nodes form one cluster on
# loopback; the real serf CLI lists them, fires an event they receive and sends a query they
# answer. Stops everything it started (by pid) on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build -q -p hearsay-agent --bin hearsay-serf-node
BIN=target/debug/hearsay-serf-node
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

SERF_BIND=127.0.0.1:17946
SERF_RPC=127.0.0.1:17373
echo "== starting serf agent serf-1 on $SERF_BIND (log: $WORK/serf.log)"
serf agent -node=serf-1 -bind=$SERF_BIND -rpc-addr=$SERF_RPC -tag role=serf \
  -event-handler "query:hello=echo hello from serf-1" >"$WORK/serf.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 50); do serf members -rpc-addr=$SERF_RPC >/dev/null 2>&1 && break; sleep 0.2; done

for i in 1 2; do
  echo "== starting hearsay node hearsay-$i on 127.0.0.1:1795$i, joining $SERF_BIND"
  "$BIN" -name=hearsay-$i -bind=127.0.0.1:1795$i -join=$SERF_BIND -tag role=hearsay \
    -respond "hello=hello from hearsay-$i" -event-log "$WORK/hearsay-$i.events" \
    >"$WORK/hearsay-$i.out" 2>"$WORK/hearsay-$i.log" &
  PIDS+=($!)
done

echo "== waiting for serf to see all three members"
for _ in $(seq 1 50); do
  [ "$(serf members -rpc-addr=$SERF_RPC -status=alive | wc -l)" -ge 3 ] && break
  sleep 0.2
done
echo "== serf members (as the real serf sees the cluster):"
serf members -rpc-addr=$SERF_RPC
echo "== serf event deploy v1"
serf event -rpc-addr=$SERF_RPC deploy v1
sleep 1
for i in 1 2; do echo "-- hearsay-$i received:"; cat "$WORK/hearsay-$i.events"; done
echo "== serf query hello (answered by serf's shell handler and by both hearsay nodes)"
serf query -rpc-addr=$SERF_RPC -timeout=3s hello
