#!/usr/bin/env bash
# A load balancer on loopback: a real nginx (Debian's package) in front of three backends. Each
# backend is a tiny web server (another nginx) beside a `hearsay agent` (web-2, web-3, web-4 on
# 127.0.0.2-4) whose health handler offers the service while the backend answers /health (tag
# service:web=PORT). The load balancer's own agent (lb, 127.0.0.1) runs the upstreams handler,
# which writes nginx's upstream block from the members offering web and reloads nginx. A
# backend's server stopped, then its node killed, drops out of nginx's pool; both restarted, it
# comes back. Stops every process it started, nginx included. See README.md here for the
# environment it reads.
EXAMPLE=load-balancer
# shellcheck source=examples/lib.sh
source "$(dirname "$0")/../lib.sh"
HERE=$EXAMPLES_DIR/$EXAMPLE

need timeout sed sort
# nginx and curl come from Debian's packages, installed the first time (with sudo when not
# root), as scripts/setup.sh installs serf. Debian puts nginx in /usr/sbin, which may not be on
# a user's PATH.
find_nginx() { NGINX=$(command -v nginx || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } || true); }
find_nginx
missing=()
[ -n "$NGINX" ] || missing+=(nginx)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || die "this example needs ${missing[*]}: install them first"
  sudo=()
  if [ "$(id -u)" != 0 ]; then sudo=(sudo); fi
  say "installing ${missing[*]} from Debian's packages (once per machine)"
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
  find_nginx
  [ -n "$NGINX" ] || die "nginx is still not installed"
  need curl
fi

build_hearsay
build_handlers upstreams health
make_work upstreams health

# The ports: lb gossips on 127.0.0.1:BASE+1 and web-N on 127.0.0.N:BASE+N (N = 2, 3, 4); each
# serves RPC on 127.0.0.1:BASE+10+N. The backends listen on 127.0.0.N:BASE+8, nginx on
# 127.0.0.1:BASE+9.
BASE=${EXAMPLE_PORT_BASE:-27940}
LB_BIND=127.0.0.1:$((BASE + 1))
WEB_PORT=$((BASE + 8))
LB_URL=http://127.0.0.1:$((BASE + 9))/
rpc() { echo "127.0.0.1:$((BASE + 10 + $1))"; }
UPSTREAMS=$WORK/lb/conf.d/upstreams.conf

# `render TEMPLATE OUT NAME=VALUE...`: this directory's TEMPLATE with each @NAME@ replaced.
render() {
  local template=$1 out=$2 kv subs=()
  shift 2
  for kv in "$@"; do subs+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
  sed "${subs[@]}" "$HERE/$template" >"$out"
}

# `serve_backend N`: starts backend-N, the web server of web-N on 127.0.0.N:WEB_PORT, and waits
# for it to answer.
serve_backend() {
  local dir=$WORK/backend-$1
  mkdir -p "$dir"
  render backend.conf "$dir/nginx.conf" NAME=web-$1 IP=127.0.0.$1 PORT=$WEB_PORT
  start backend-$1 "$NGINX" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log"
  wait_for 20 "backend-$1 on 127.0.0.$1:$WEB_PORT" curl -sf -o /dev/null "http://127.0.0.$1:$WEB_PORT/health"
}

# `start_agent N`: starts web-N's hearsay agent (its health handler), joining lb.
start_agent() {
  render web.toml "$WORK/web-$1.toml" IP=127.0.0.$1 PORT=$WEB_PORT
  start web-$1 "$HEARSAY" agent -config-file="$WORK/web-$1.toml" -node=web-$1 \
    -bind=127.0.0.$1:$((BASE + $1)) -rpc-addr="$(rpc "$1")" -join=$LB_BIND
}

say "starting nginx, the load balancer, on $LB_URL (scratch directory $WORK)"
mkdir -p "$WORK/lb/conf.d"
render nginx.conf "$WORK/lb/nginx.conf" PORT=$((BASE + 9))
# Until the upstreams handler writes it: no backend (nginx refuses an empty upstream block).
printf 'upstream web {\n    server 127.0.0.1:1 down;\n}\n' >"$UPSTREAMS"
start nginx "$NGINX" -p "$WORK/lb/" -c "$WORK/lb/nginx.conf" -e "$WORK/lb/error.log"
wait_for 20 "nginx on $LB_URL" curl -s -o /dev/null "$LB_URL"

say "starting the load balancer's hearsay agent, lb, with the upstreams handler"
render lb.toml "$WORK/lb.toml" WORK="$WORK" NGINX="$NGINX"
start lb "$HEARSAY" agent -config-file="$WORK/lb.toml" -node=lb -bind=$LB_BIND -rpc-addr="$(rpc 1)"
# The first start compiles the handlers (cached afterwards), which can take a while.
wait_for 120 "lb's RPC on $(rpc 1)" "$HEARSAY" info -rpc-addr="$(rpc 1)"

say "starting three backends, each a web server and a hearsay agent with the health handler"
for n in 2 3 4; do
  serve_backend $n
  start_agent $n
done
for n in 2 3 4; do wait_for 120 "web-$n's RPC on $(rpc $n)" "$HEARSAY" info -rpc-addr="$(rpc $n)"; done

# `upstreams N...`: the upstream block nginx includes has exactly the backends on 127.0.0.N....
upstreams() {
  local n got want
  got=$(grep -o 'server [^;]*;' "$UPSTREAMS" | sort)
  want=$(for n in "$@"; do echo "server 127.0.0.$n:$WEB_PORT;"; done | sort)
  [ "$got" = "$want" ]
}
# `reaches NAME...`: six requests through nginx (the answers in WORK/lb.out) reach exactly the
# backends NAME....
reaches() {
  local i
  : >"$WORK/lb.out"
  for i in 1 2 3 4 5 6; do
    curl -sf --max-time 5 "$LB_URL" >>"$WORK/lb.out" || echo "(no answer)" >>"$WORK/lb.out"
  done
  [ "$(sort -u "$WORK/lb.out")" = "$(printf '%s\n' "$@" | sort)" ]
}
# `show_pool N...`: waits (bounded) until the upstreams handler has written the backends on
# 127.0.0.N... and nginx routes to exactly those, then shows the members, the block and the
# requests.
show_pool() {
  local n names=()
  for n in "$@"; do names+=(web-$n); done
  wait_for 60 "the upstream block to list ${names[*]:-no backend}" upstreams "$@"
  run "$HEARSAY" members -rpc-addr="$(rpc 1)"
  printf '$ cat %s\n' "$UPSTREAMS"
  cat "$UPSTREAMS"
  echo "-- what the upstreams handler logged last (lb.log):"
  grep -F 'guest: ' "$WORK/lb.log" | tail -n 2 || true
  wait_for 30 "nginx to route to ${names[*]}" reaches "${names[@]}"
  printf '$ for i in 1 2 3 4 5 6; do curl -s %s; done\n' "$LB_URL"
  cat "$WORK/lb.out"
}

say "each backend's health handler tags its node service:web=$WEB_PORT; nginx routes to all three"
show_pool 2 3 4

say "web-3's web server stops: its health check fails, the tag goes, nginx drops it"
printf '$ kill %s   # backend-3\n' "${RUNNING[backend-3]}"
stop backend-3
show_pool 2 4
echo "-- what web-3's health handler logged last (web-3.log):"
grep -F 'guest: ' "$WORK/web-3.log" | tail -n 1 || true

say "web-3's agent is killed too: the cluster marks it failed; nginx still leaves it out"
printf '$ kill -KILL %s   # web-3'"'"'s agent\n' "${RUNNING[web-3]}"
stop web-3 KILL
failed() { timeout 10 "$HEARSAY" members -rpc-addr="$(rpc 1)" -status=failed | grep -q '^web-3 '; }
wait_for 60 "lb to see web-3 failed" failed
show_pool 2 4

say "web-3's web server and agent start again: it is healthy, tagged, and back in nginx's pool"
serve_backend 3
start_agent 3
show_pool 2 3 4

say "load-balancer: OK (nginx's pool kept by the upstreams.wasm and health.wasm handlers)"
keep_running
