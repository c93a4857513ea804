#!/usr/bin/env bash
# scripts/cluster.sh — a megaws cluster on this machine: a real broker (NATS or
# Redis), N `megaws serve --broker URL --mode demo` nodes on loopback ports, and
# nginx load-balancing WebSocket connections over them. Open the printed URL in
# several browser tabs: they land on different nodes and share one board.
#
# Usage:
#   scripts/cluster.sh [--broker nats|redis] [--nodes N] [--port P] [--duration S]
#                      [--node-base PORT] [--broker-port PORT] [--mode MODE]
#                      [--bin PATH] [--workdir DIR] [--log-level LEVEL]
#
#   --broker nats|redis  the broker to run (default nats): nats-server or
#                        redis-server, from scripts/setup.sh
#   --nodes N            megaws nodes (default 3)
#   --port P             nginx's load-balanced port (default 8080); node i is
#                        also reachable alone through nginx on port P+i
#   --node-base PORT     node i listens on 127.0.0.1:PORT+i-1 (default 9101)
#   --broker-port PORT   the broker's port (default 14222 for NATS, 16379 for
#                        Redis; NATS's monitoring port is PORT+1)
#   --mode MODE          megaws serve --mode (default demo; broadcast works too)
#   --duration S         stop after S seconds (default 0: run until Ctrl-C/SIGTERM)
#   --bin PATH           the megaws binary (default: go build ./cmd/megaws)
#   --workdir DIR        logs, nginx config and the built binary (default: a new
#                        temporary directory, kept for the logs)
#   --log-level LEVEL    the nodes' --log-level (default info)
#
# Output: one "cluster: ..." line per part, then "cluster: url http://..." and
# "cluster: ready". Everything the script started is stopped (by PID) when it
# ends: on Ctrl-C, SIGTERM, --duration, or when a part dies (exit 1).
set -euo pipefail

broker=nats
nodes=3
port=8080
node_base=9101
broker_port=""
mode=demo
duration=0
bin=""
workdir=""
log_level=info

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
    exit 2
}
die() {
    printf 'cluster: %s\n' "$*" >&2
    exit 1
}
number() { [[ $2 =~ ^[0-9]+$ ]] || die "$1 wants a number, got '$2'"; }

while [[ $# -gt 0 ]]; do
    opt=$1
    [[ $opt == -h || $opt == --help ]] && usage
    [[ $# -ge 2 ]] || die "$opt needs a value"
    val=$2
    shift 2
    case $opt in
    --broker) broker=$val ;;
    --nodes) number "$opt" "$val" && nodes=$val ;;
    --port) number "$opt" "$val" && port=$val ;;
    --node-base) number "$opt" "$val" && node_base=$val ;;
    --broker-port) number "$opt" "$val" && broker_port=$val ;;
    --mode) mode=$val ;;
    --duration) number "$opt" "$val" && duration=$val ;;
    --bin) bin=$val ;;
    --workdir) workdir=$val ;;
    --log-level) log_level=$val ;;
    *) die "unknown option $opt (see --help)" ;;
    esac
done
[[ $broker == nats || $broker == redis ]] || die "--broker must be nats or redis"
((nodes >= 1 && nodes <= 32)) || die "--nodes must be 1 to 32"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# tool NAME: the path of a command installed by scripts/setup.sh (Debian puts
# nginx and nats-server in /usr/sbin, which a non-login shell may not have).
tool() {
    local p
    if p=$(command -v "$1"); then
        printf '%s\n' "$p"
        return
    fi
    for d in /usr/sbin /sbin /usr/local/sbin /usr/local/bin "$HOME/go/bin"; do
        [[ -x $d/$1 ]] && printf '%s\n' "$d/$1" && return
    done
    die "$1 not found: run scripts/setup.sh"
}
nginx_bin=$(tool nginx)
case $broker in
nats) broker_bin=$(tool nats-server) && broker_port=${broker_port:-14222} ;;
redis) broker_bin=$(tool redis-server) && broker_port=${broker_port:-16379} ;;
esac

if [[ -z $workdir ]]; then
    workdir=$(mktemp -d "${TMPDIR:-/tmp}/megaws-cluster.XXXXXX")
fi
mkdir -p "$workdir"/tmp/{client_body,proxy,fastcgi,uwsgi,scgi}
workdir=$(cd "$workdir" && pwd)

# Everything started, in order; stopped in reverse, by PID.
pids=()
names=()
cleanup() {
    trap - EXIT INT TERM
    local i pid n
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill -TERM "${pids[i]}" 2>/dev/null || true
    done
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        pid=${pids[i]}
        for ((n = 0; n < 100; n++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            printf 'cluster: %s (pid %d) still running 10 s after SIGTERM; killing it\n' "${names[i]}" "$pid" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    printf 'cluster: stopped (logs in %s)\n' "$workdir"
}
trap cleanup EXIT
trap 'printf "cluster: stopping\n"; exit 0' INT TERM

started() {
    pids+=("$1")
    names+=("$2")
}

# wait_port PORT SECONDS PID: until something accepts on 127.0.0.1:PORT, or PID dies.
wait_port() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# 1. The broker.
case $broker in
nats)
    "$broker_bin" -a 127.0.0.1 -p "$broker_port" -m $((broker_port + 1)) >"$workdir/broker.log" 2>&1 &
    ;;
redis)
    "$broker_bin" --bind 127.0.0.1 --port "$broker_port" --save '' --appendonly no \
        --daemonize no --dir "$workdir" >"$workdir/broker.log" 2>&1 &
    ;;
esac
started $! "$broker"
wait_port "$broker_port" 10 $! || die "$broker did not start on port $broker_port: $(tail -5 "$workdir/broker.log")"
broker_url="$broker://127.0.0.1:$broker_port"
printf 'cluster: broker %s (pid %d)\n' "$broker_url" "${pids[-1]}"

# 2. The nodes.
if [[ -z $bin ]]; then
    bin="$workdir/megaws"
    (cd "$root" && go build -o "$bin" ./cmd/megaws) || die "go build ./cmd/megaws failed"
fi
[[ -x $bin ]] || die "$bin is not an executable"
for ((i = 1; i <= nodes; i++)); do
    np=$((node_base + i - 1))
    "$bin" serve --addr "127.0.0.1:$np" --mode "$mode" --broker "$broker_url" --log-level "$log_level" \
        >"$workdir/node$i.log" 2>&1 &
    started $! "node $i"
done
for ((i = 1; i <= nodes; i++)); do
    np=$((node_base + i - 1))
    pid=${pids[i]}
    for ((n = 0; n < 150; n++)); do
        grep -q "listening on" "$workdir/node$i.log" && break
        kill -0 "$pid" 2>/dev/null || die "node $i exited: $(tail -5 "$workdir/node$i.log")"
        sleep 0.1
    done
    grep -q "listening on" "$workdir/node$i.log" || die "node $i not listening after 15 s: $(tail -5 "$workdir/node$i.log")"
    printf 'cluster: node %d 127.0.0.1:%d (pid %d), alone via nginx at http://127.0.0.1:%d/\n' "$i" "$np" "$pid" $((port + i))
done

# 3. nginx, from scripts/cluster/megaws-cluster.conf.in.
upstreams=""
pinned=""
for ((i = 1; i <= nodes; i++)); do
    np=$((node_base + i - 1))
    upstreams+="    server 127.0.0.1:$np max_fails=1 fail_timeout=2s;"$'\n'
    pinned+="server {
    listen 127.0.0.1:$((port + i));
    access_log $workdir/access.log megaws_cluster;
    location / {
        proxy_pass http://127.0.0.1:$np;
        proxy_http_version 1.1;
        proxy_set_header Upgrade    \$http_upgrade;
        proxy_set_header Connection \$connection_upgrade;
        proxy_set_header Host       \$host;
        proxy_read_timeout 120s;
        proxy_send_timeout 120s;
        proxy_buffering off;
    }
}
"
done
template="$root/scripts/cluster/megaws-cluster.conf.in"
conf="$workdir/megaws-cluster.conf"
UP=${upstreams%$'\n'} PINNED=$pinned LISTEN="127.0.0.1:$port" LOG="$workdir/access.log" awk '
    /^@UPSTREAM_SERVERS@$/ { print ENVIRON["UP"]; next }
    /^@PINNED_SERVERS@$/ { print ENVIRON["PINNED"]; next }
    /^[^#]/ { gsub(/@LISTEN@/, ENVIRON["LISTEN"]); gsub(/@LOG@/, ENVIRON["LOG"]) }
    { print }
' "$template" >"$conf"
if grep -v '^#' "$conf" | grep -q '@[A-Z_]*@'; then
    die "placeholders left in $conf: $(grep -v '^#' "$conf" | grep -o '@[A-Z_]*@' | sort -u | tr '\n' ' ')"
fi
user_line=""
[[ $(id -u) -eq 0 ]] && user_line="user root root;" # workers must enter $workdir
cat >"$workdir/nginx.conf" <<EOF
# Generated by scripts/cluster.sh; not for deployment.
$user_line
daemon off;
master_process on;
worker_processes 1;
worker_shutdown_timeout 5s;
pid $workdir/nginx.pid;
error_log $workdir/error.log warn;
events {
    worker_connections 4096;
}
http {
    client_body_temp_path $workdir/tmp/client_body;
    proxy_temp_path $workdir/tmp/proxy;
    fastcgi_temp_path $workdir/tmp/fastcgi;
    uwsgi_temp_path $workdir/tmp/uwsgi;
    scgi_temp_path $workdir/tmp/scgi;
    include $conf;
}
EOF
"$nginx_bin" -t -q -p "$workdir" -e "$workdir/error.log" -c "$workdir/nginx.conf" || die "nginx -t failed"
"$nginx_bin" -p "$workdir" -e "$workdir/error.log" -c "$workdir/nginx.conf" &
started $! nginx
wait_port "$port" 10 $! || die "nginx did not start on port $port: $(tail -5 "$workdir/error.log")"
for ((i = 1; i <= nodes; i++)); do
    wait_port $((port + i)) 10 "${pids[-1]}" || die "nginx is not listening on port $((port + i))"
done
printf 'cluster: nginx (pid %d), config %s\n' "${pids[-1]}" "$conf"
printf 'cluster: workdir %s\n' "$workdir"
printf 'cluster: url http://127.0.0.1:%d/\n' "$port"
printf 'cluster: ready\n'

# 4. Run until a signal, the duration, or a part dying.
end=$((SECONDS + duration))
while true; do
    for ((i = 0; i < ${#pids[@]}; i++)); do
        kill -0 "${pids[i]}" 2>/dev/null || die "${names[i]} (pid ${pids[i]}) exited; see $workdir"
    done
    if ((duration > 0 && SECONDS >= end)); then
        printf 'cluster: %d s elapsed\n' "$duration"
        break
    fi
    sleep 1 &
    wait $! || true
done
