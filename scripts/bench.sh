#!/usr/bin/env bash
# scripts/bench.sh — build megaws-bench and run it.
#
#   scripts/bench.sh --quick                 every scenario, tiny, against megaws and gorilla
#                                            (part of the test suite; exits non-zero on any
#                                            failed/dropped connection, wrong byte or protocol error)
#   scripts/bench.sh compare --out DIR ...   megaws and every peer, pinned, 3 repetitions: report in DIR
#   scripts/bench.sh echo --servers megaws,gws --size 64,1k,16k --conns 1000
#   scripts/bench.sh idle --conns 18000 --checkpoints 1000,5000,10000
#
# It builds what it needs itself (megaws-bench, megaws, the Go peers) and, for
# anything but --quick, installs the JS peers (scripts/bench-peers-install.sh)
# when they are asked for. Every run is bounded in time and stops by itself.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin="${MEGAWS_BENCH_BIN:-${TMPDIR:-/tmp}/megaws-bench-$(id -u)}"
mkdir -p "$bin"
(cd "$root/bench" && go build -o "$bin/megaws-bench" ./cmd/megaws-bench)

if [[ ${1:-} == --quick ]]; then
    shift
    cd "$root/bench"
    exec timeout 300 "$bin/megaws-bench" quick --bin "$bin" "$@"
fi

# JS peers (bun, uws, socketio) are installed on demand: whenever "all",
# "bun", "uws" or "socketio" is among the servers (compare defaults to all;
# so does cluster).
args=" $* "
if [[ ${1:-} =~ ^(compare|cluster)$ && ! $args =~ " --servers" && ! $args =~ " --server " ]] || [[ $args =~ (all|bun|uws|socketio) ]]; then
    bash "$root/scripts/bench-peers-install.sh"
fi
cd "$root/bench"
MEGAWS_BENCH_COMMAND="scripts/bench.sh"
for a in "$@"; do MEGAWS_BENCH_COMMAND+=" $(printf '%q' "$a")"; done
export MEGAWS_BENCH_COMMAND
exec "$bin/megaws-bench" "$@"
