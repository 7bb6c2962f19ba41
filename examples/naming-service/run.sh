#!/usr/bin/env bash
# A naming service on loopback: three `hearsay agent`s (ns-1, ns-2, ns-3 on 127.0.0.1-3) run the
# resolve handler, and members offer services by tags (`service:api=8081`). `hearsay query
# resolve api` returns the addresses of the alive members offering `api`; the answer follows a
# tag set at runtime and a member leaving. Stops every process it started. See README.md here
# for the environment it reads.
EXAMPLE=naming-service
# shellcheck source=examples/lib.sh
source "$(dirname "$0")/../lib.sh"
HERE=$EXAMPLES_DIR/$EXAMPLE

need timeout
build_hearsay
build_handlers resolve
make_work resolve

# The ports: ns-N gossips on 127.0.0.N:BASE+N and serves RPC on 127.0.0.1:BASE+10+N.
BASE=${EXAMPLE_PORT_BASE:-27920}
NS1_BIND=127.0.0.1:$((BASE + 1))
rpc() { echo "127.0.0.1:$((BASE + 10 + $1))"; }

say "starting three hearsay agents with the resolve handler (scratch directory $WORK)"
for n in 1 2 3; do
  join=()
  if [ "$n" != 1 ]; then join=("-join=$NS1_BIND"); fi
  start ns-$n "$HEARSAY" agent -config-file="$HERE/ns-$n.toml" \
    -bind=127.0.0.$n:$((BASE + n)) -rpc-addr="$(rpc $n)" "${join[@]}"
  # ns-2 and ns-3 join ns-1, so ns-1 must listen first. The first start compiles the handler
  # (cached afterwards), which can take a while.
  wait_for 120 "ns-$n's RPC on $(rpc $n)" "$HEARSAY" info -rpc-addr="$(rpc $n)"
done

members_alive() {
  [ "$(timeout 10 "$HEARSAY" members -rpc-addr="$(rpc 1)" -status=alive | wc -l)" -eq 3 ]
}
wait_for 60 "ns-1 to see three alive members" members_alive

say "the members, with the services they offer in their tags"
run "$HEARSAY" members -rpc-addr="$(rpc 1)"

# `answers N SERVICE ADDR...`: asks ns-N alone to resolve SERVICE (the command in ASKED, its
# output in WORK/resolve.out and on stdout) and succeeds if the answer is exactly ADDR..., one
# per line.
answers() {
  local n=$1 service=$2
  shift 2
  ASKED=("$HEARSAY" query -rpc-addr="$(rpc "$n")" -node=ns-"$n" -timeout=1s resolve "$service")
  timeout 20 "${ASKED[@]}" | tee "$WORK/resolve.out" || return 1
  grep -q "^Response from 'ns-$n':" "$WORK/resolve.out" || return 1
  # The answer: the rest of the response's first line, and the address lines after it.
  local got want
  got=$(sed -n -e "s/^Response from 'ns-$n': //p" -e t -e '/^[0-9[]/p' "$WORK/resolve.out")
  want=$(printf '%s\n' "$@")
  [ "$got" = "$want" ]
}
# `show N SERVICE ADDR...`: waits (bounded) until ns-N resolves SERVICE to ADDR..., then shows
# that query and its output.
show() {
  wait_for 30 "ns-$1 to resolve $2 to ${*:3}" answers "$@"
  printf '$ %s\n' "$(typed "${ASKED[@]}")"
  cat "$WORK/resolve.out"
}

say "resolve api: ns-2 and ns-3 offer it on their own addresses (tag service:api=8081)"
show 1 api 127.0.0.2:8081 127.0.0.3:8081

say "resolve db: ns-3 offers it at a full address (tag service:db=127.0.0.1:5432), asking ns-2"
show 2 db 127.0.0.1:5432

say "resolve web, asking every node: each answers from its own member list"
run "$HEARSAY" query -rpc-addr="$(rpc 1)" -timeout=1s resolve web | tee "$WORK/all.out"
for n in 1 2 3; do expect "Response from 'ns-$n': 127.0.0.1:8080" "$WORK/all.out"; done

say "resolve nosuch: no member offers it, so the answer is empty"
show 3 nosuch

say "ns-1 starts offering api too: a tag set at runtime, gossiped to the others"
run "$HEARSAY" tags -rpc-addr="$(rpc 1)" -set service:api=8081
show 3 api 127.0.0.1:8081 127.0.0.2:8081 127.0.0.3:8081

say "ns-2 leaves the cluster: the answer drops it"
gone ns-2
run "$HEARSAY" leave -rpc-addr="$(rpc 2)"
show 1 api 127.0.0.1:8081 127.0.0.3:8081

say "naming-service: OK (names resolved by the resolve.wasm handler)"
keep_running
