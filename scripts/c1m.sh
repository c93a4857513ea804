#!/usr/bin/env bash
# scripts/c1m.sh — one million idle WebSocket connections on one machine.
#
#   scripts/c1m.sh                          # 1,000,000 connections, hold 60 s, report in bench/reports/c1m
#                                           # (megaws keepalive off; add --megaws-args "..." to change)
#   scripts/c1m.sh --conns 200k --hold 10s --out /tmp/c200k
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
# The run ramps up with a progress line (stopping at 100k, 250k, 500k and
# 750k to measure memory), holds for --hold, echoes a verified message on 1%
# of the connections, closes them all in order, and writes report.json and
# report.md. It exits non-zero if any connection failed or dropped, or the
# sample did not answer.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

orig=("$@")
conns=1000000
hold=60s
out="$root/bench/reports/c1m"
workers=""
clients=""
extra=()
while [[ $# -gt 0 ]]; do
    case $1 in
    --conns) conns=$2; shift 2 ;;
    --hold) hold=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --processes) clients=$2; shift 2 ;;
    *) extra+=("$1"); shift ;;
    esac
done
# Accept 1m, 200k, 1_000_000.
n=${conns//_/}
case $n in
*k) n=$(( ${n%k} * 1000 )) ;;
*m) n=$(( ${n%m} * 1000000 )) ;;
esac

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

echo "c1m: $n connections, $workers megaws processes, $clients client processes, hold $hold, open files limit $nofile"
cd "$root/bench"
MEGAWS_BENCH_COMMAND="scripts/c1m.sh"
for a in "${orig[@]}"; do MEGAWS_BENCH_COMMAND+=" $(printf '%q' "$a")"; done
export MEGAWS_BENCH_COMMAND
checkpoints=""
for c in 100000 250000 500000 750000; do
    (( c < n )) && checkpoints+="${checkpoints:+,}$c"
done
# Defaults that the committed report was measured with; flags given on the
# command line come later and win. Keepalive is off because "idle" means no
# traffic at all: at 1M connections megaws's default 25 s pings (40,000/s plus
# the pongs) saturate a 2-core machine that also runs the 56 client processes
# (see bench/reports/c1m-keepalive-attempt). A 30 s connect+handshake limit and
# 64 dials in flight per client process keep the ramp within what 2 cores do.
defaults=(--megaws-args "--ping-interval=-1s --idle-timeout=-1s" --handshake-timeout 30s --pending 64)
exec timeout 3600 "$bin/megaws-bench" idle \
    --title "One million idle WebSocket connections (scripts/c1m.sh)" \
    --server megaws --bin "$bin" \
    --conns "$n" --workers "$workers" --loops 1 --gomaxprocs 1 \
    --processes "$clients" --checkpoints "$checkpoints" \
    --hold "$hold" --sample 0.01 --settle 3s --ramp-timeout 20m \
    --out "$out" "${defaults[@]}" "${extra[@]}"
