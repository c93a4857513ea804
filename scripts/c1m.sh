#!/usr/bin/env bash
# scripts/c1m.sh — one million WebSocket connections on one machine, run as
# production runs them: megaws's default keepalive, held, then stopped
# gracefully with SIGTERM.
#
#   scripts/c1m.sh                          # 1,000,000 connections, hold 5 min, report in bench/reports/c1m
#   scripts/c1m.sh --conns 30k --hold 40s --out /tmp/c30k
#   scripts/c1m.sh --teardown close         # the clients close instead (1000), as before
#
# megaws runs as `megaws serve --workers N` (N processes sharing the port with
# SO_REUSEPORT) and the load generator as M `megaws-bench agent` processes,
# because this machine caps open files at 20,000 per process: each server
# process then holds ~17,000 connections and each client process at most
# 18,000, dialing from 127.0.0.2-127.0.0.250 (IP_BIND_ADDRESS_NO_PORT) so no
# source address runs out of ephemeral ports. On a host where `ulimit -n`
# is above the target, one server process and as many client processes as
# needed are used instead (set --workers 1).
#
# megaws keeps its defaults (keepalive ping after 25 s of silence, idle
# timeout 60 s) except --stop-timeout 30s: the graceful stop waits up to 30 s
# for the close handshakes, the time the goal allows them (a supervisor's
# grace period, such as Kubernetes' default of 30 s). Extra megaws flags go
# in --megaws-args "..." and come after it.
#
# The run ramps up with a progress line (stopping at 100k, 250k, 500k and
# 750k to measure memory), holds for --hold (5 min: 12 rounds of pings),
# counting the server's pings and pongs and the CPU both sides use, fetches
# the server processes' heap profiles, echoes a verified message on 1% of the
# connections, sends SIGTERM to the megaws parent (each connection gets 1001,
# the clients answer), and writes report.json, report.md and the charts
# (memory per connection, RSS and CPU over time). It exits non-zero if any
# connection failed or dropped, a ping went unanswered, fewer than 90% of the
# expected ping rounds were sent, the sample did not answer, fewer than 99% of
# the close handshakes completed within 30 s, or megaws did not exit 0.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

orig=("$@")
conns=1000000
hold=5m
out="$root/bench/reports/c1m"
workers=""
clients=""
megaws_args="--stop-timeout=30s"
extra=()
while [[ $# -gt 0 ]]; do
    case $1 in
    --conns) conns=$2; shift 2 ;;
    --hold) hold=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --processes) clients=$2; shift 2 ;;
    --megaws-args) megaws_args+=" $2"; shift 2 ;;
    *) extra+=("$1"); shift ;;
    esac
done
# Accept 1m, 200k, 1_000_000.
n=${conns//_/}
case $n in
*k) n=$(( ${n%k} * 1000 )) ;;
*m) n=$(( ${n%m} * 1000000 )) ;;
esac

# The hold in seconds (Go duration: 5m, 40s, 1m30s, 1h).
hold_s=$(awk -v d="$hold" 'BEGIN {
    s = 0
    while (match(d, /^[0-9.]+(h|ms|m|s)/)) {
        tok = substr(d, 1, RLENGTH); d = substr(d, RLENGTH + 1)
        v = tok + 0; u = tok; sub(/^[0-9.]+/, "", u)
        s += (u == "h") ? v * 3600 : (u == "m") ? v * 60 : (u == "ms") ? v / 1000 : v
    }
    if (d != "") { print "bad"; exit }
    printf "%d", s
}')
if [[ $hold_s == bad ]]; then
    echo "c1m: bad --hold $hold (want a Go duration such as 5m or 40s)" >&2
    exit 2
fi
# At least 90% of the ping rounds the hold should see at megaws's 25 s, when
# the ping interval is megaws's default.
rounds=0
if [[ $megaws_args != *ping-interval* ]]; then
    rounds=$(awk -v s="$hold_s" 'BEGIN { r = int(0.9 * s / 25); printf "%d", (s >= 25 && r < 1) ? 1 : r }')
fi

nofile=$(ulimit -n)
if [[ -z $workers ]]; then
    if (( nofile > n + 1000 )); then
        workers=1
    else
        # SO_REUSEPORT spreads connections by hash, not evenly: leave ~15%
        # of each process's descriptors spare.
        per=$(( nofile * 85 / 100 ))
        workers=$(( (n + per - 1) / per ))
    fi
fi
if [[ -z $clients ]]; then
    per=$(( nofile - 2000 ))
    (( per > 18000 )) && per=18000
    clients=$(( (n + per - 1) / per ))
fi

avail_kb=$(awk '/MemAvailable/ {print $2}' /proc/meminfo)
need_kb=$(( n * 12 ))   # ~10 KB kernel + user per connection, both ends, with margin
if (( avail_kb < need_kb )); then
    echo "c1m: only $(( avail_kb / 1024 )) MiB available, ~$(( need_kb / 1024 )) MiB needed for $n connections" >&2
    exit 1
fi

bin="${MEGAWS_BENCH_BIN:-${TMPDIR:-/tmp}/megaws-bench-$(id -u)}"
mkdir -p "$bin"
(cd "$root/bench" && go build -o "$bin/megaws-bench" ./cmd/megaws-bench)

echo "c1m: $n connections, $workers megaws processes ($megaws_args), $clients client processes, hold $hold (>= $rounds ping rounds), open files limit $nofile"
cd "$root/bench"
MEGAWS_BENCH_COMMAND="scripts/c1m.sh"
for a in "${orig[@]}"; do MEGAWS_BENCH_COMMAND+=" $(printf '%q' "$a")"; done
export MEGAWS_BENCH_COMMAND
checkpoints=""
for c in 100000 250000 500000 750000; do
    (( c < n )) && checkpoints+="${checkpoints:+,}$c"
done
# Defaults; flags given on the command line come later and win. A 30 s
# connect+handshake limit and 64 dials in flight per client process keep the
# ramp within what 2 cores do.
defaults=(--handshake-timeout 30s --pending 64
    --teardown sigterm --close-within 30s --min-close-handshakes 0.99 --stop-wait 3m
    --min-ping-rounds "$rounds" --heap-profile --sample-every 2s)
exec timeout $(( 3600 + hold_s )) "$bin/megaws-bench" idle \
    --title "One million WebSocket connections: keepalive on, graceful stop (scripts/c1m.sh)" \
    --server megaws --bin "$bin" \
    --conns "$n" --workers "$workers" --loops 1 --gomaxprocs 1 \
    --processes "$clients" --checkpoints "$checkpoints" \
    --hold "$hold" --sample 0.01 --settle 3s --ramp-timeout 20m \
    --megaws-args "$megaws_args" \
    --out "$out" "${defaults[@]}" "${extra[@]}"
