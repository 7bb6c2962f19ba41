#!/usr/bin/env bash
# A mixed cluster on loopback: one real `serf agent` and two `hearsay agent`s with WebAssembly
# handlers. The real serf CLI, talking to the serf agent, lists the members, fires a user event
# that hearsay's echo handler logs, and sends queries that hearsay's echo and sysinfo handlers
# answer. Stops every process it started. See README.md here for the environment it reads.
EXAMPLE=mixed-cluster
# shellcheck source=examples/lib.sh
source "$(dirname "$0")/../lib.sh"
HERE=$EXAMPLES_DIR/$EXAMPLE

need serf timeout
build_hearsay
build_handlers echo sysinfo
make_work echo sysinfo

# The ports: serf-1, hearsay-1, hearsay-2 gossip on BASE+1..3, serve RPC on BASE+11..13.
BASE=${EXAMPLE_PORT_BASE:-27900}
SERF_BIND=127.0.0.1:$((BASE + 1))
SERF_RPC=127.0.0.1:$((BASE + 11))
H1_RPC=127.0.0.1:$((BASE + 12))
H2_RPC=127.0.0.1:$((BASE + 13))

say "starting the cluster (scratch directory $WORK)"
start serf-1 serf agent -node=serf-1 -bind=$SERF_BIND -rpc-addr=$SERF_RPC -tag role=serf
wait_for 20 "serf-1's RPC on $SERF_RPC" serf members -rpc-addr=$SERF_RPC
start hearsay-1 "$HEARSAY" agent -config-file="$HERE/hearsay-1.toml" \
  -bind=127.0.0.1:$((BASE + 2)) -rpc-addr=$H1_RPC -join=$SERF_BIND
start hearsay-2 "$HEARSAY" agent -config-file="$HERE/hearsay-2.json" \
  -bind=127.0.0.1:$((BASE + 3)) -rpc-addr=$H2_RPC -join=$SERF_BIND

# The first start compiles the handlers (cached afterwards), which can take a while.
alive() { timeout 10 serf members -rpc-addr=$SERF_RPC -status=alive | grep "^$1 "; }
wait_for 120 "serf to list hearsay-1 alive" alive hearsay-1
wait_for 120 "serf to list hearsay-2 alive" alive hearsay-2

say "the real serf sees one cluster"
run serf members -rpc-addr=$SERF_RPC | tee "$WORK/members.out"
for node in serf-1 hearsay-1 hearsay-2; do expect "$node" "$WORK/members.out"; done

say "a user event from the real serf CLI; hearsay's echo.wasm logs it on both hearsay agents"
run serf event -rpc-addr=$SERF_RPC deploy v1
for node in hearsay-1 hearsay-2; do
  wait_for 20 "$node's handler to log the event" grep -q "guest: user event deploy" "$WORK/$node.log"
  echo "-- $node.log:"
  grep "guest: user event deploy" "$WORK/$node.log"
done

say "a query from the real serf CLI; serf-1 only acks, both hearsay agents answer with echo.wasm"
run serf query -rpc-addr=$SERF_RPC -timeout=3s echo hello | tee "$WORK/echo.out"
expect "Response from 'hearsay-1': hello" "$WORK/echo.out"
expect "Response from 'hearsay-2': hello" "$WORK/echo.out"

say "a query for one node; hearsay-2's sysinfo.wasm reads the /proc it was granted"
run serf query -rpc-addr=$SERF_RPC -timeout=3s -node=hearsay-2 sysinfo | tee "$WORK/sysinfo.out"
expect "Response from 'hearsay-2': hostname=" "$WORK/sysinfo.out"

say "hearsay-2's handlers, with their counters"
run "$HEARSAY" handlers -rpc-addr=$H2_RPC

say "mixed-cluster: OK (serf's CLI drove hearsay's WebAssembly handlers)"
keep_running
