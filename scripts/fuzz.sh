#!/usr/bin/env bash
# scripts/fuzz.sh [duration] — runs every Go fuzz target of the main module,
# one after another, for the given time each (default 30s; CI runs it short,
# long runs are by hand: scripts/fuzz.sh 30m).
#
# The targets the project relies on are named below and must exist; any other
# Fuzz* function found in the module is run too. Seeds live in each package's
# testdata/fuzz/<Target>/; a crasher found here is written there by go test —
# commit it with the fix. The summary says how long each target ran and how
# many inputs it tried without a finding. Exit status 1 if any target failed
# or is missing.
#
# The argument is anything go test's -fuzztime takes: a duration (30s, 30m) or
# a count of inputs (20000x). CI uses a count: with a duration, Go 1.26's fuzz
# coordinator can fail a target at the deadline with a bare "context deadline
# exceeded" although nothing was found (golang/go#75804, fixed in Go 1.27): when
# the -fuzztime context fires, the coordinator may read the parent context's
# error before the workers' child context is cancelled and report it. A count
# has no deadline, so the race cannot happen. For duration runs this script
# recognises exactly that failure — the only error line, no new file under
# testdata/fuzz/<Target>/ — replays the target's whole corpus, and reports it
# in the summary as the Go race, not as a pass and not as a finding.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
fuzztime=${1:-30s}

# package:Target, relative to the module root.
required=(
    codec:FuzzDecodeHeader
    codec:FuzzParseRequest
    codec:FuzzUTF8
    server:FuzzConn
)

declare -A seen=()
targets=()
for t in "${required[@]}"; do
    seen[$t]=1
    targets+=("$t")
done
# Discover the others: every "func FuzzXxx(" in a test file of the module's
# packages (bench/ is a module of its own).
declare -A found=()
for pkg in $(go list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.Dir}}{{end}}' ./...); do
    rel=${pkg#"$root"/}
    names=$(cat "$pkg"/*_test.go | sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p')
    for name in $names; do
        found[$rel:$name]=1
        if [[ -z "${seen[$rel:$name]:-}" ]]; then
            seen[$rel:$name]=1
            targets+=("$rel:$name")
        fi
    done
done

# deadline_race LOG BEFORE CORPUS: true when the run failed only with Go's
# coordinator deadline race: the one error line is "context deadline
# exceeded", nothing says a failing input, and the corpus directory holds no
# new file.
deadline_race() {
    local log=$1 before=$2 corpus=$3 after
    grep -qx '    context deadline exceeded' "$log" || return 1
    if grep -q -e 'Failing input written' -e 'panic:' -e '--- FAIL: .*/' -e '_test.go:[0-9]*:' "$log"; then
        return 1
    fi
    after=$(ls "$corpus" 2>/dev/null | sort || true)
    [[ "$after" == "$before" ]]
}

status=0
summary=()
for t in "${targets[@]}"; do
    pkg=${t%%:*} name=${t#*:}
    if [[ -z "${found[$t]:-}" ]]; then
        echo "fuzz.sh: MISSING: $name in ./$pkg"
        summary+=("$name (./$pkg): MISSING")
        status=1
        continue
    fi
    echo "=== fuzz $name in ./$pkg for $fuzztime"
    log=$(mktemp)
    corpus="./$pkg/testdata/fuzz/$name"
    before=$(ls "$corpus" 2>/dev/null | sort || true)
    if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime 5s "./$pkg" 2>&1 | tee "$log"; then
        last=$(grep -o 'elapsed: [^,]*, execs: [0-9]*' "$log" | tail -1 || true)
        summary+=("$name (./$pkg): no finding; ${last:-ran $fuzztime}")
    elif deadline_race "$log" "$before" "$corpus"; then
        echo "fuzz.sh: $name stopped with a bare 'context deadline exceeded' and wrote no input:"
        echo "fuzz.sh: Go's -fuzztime shutdown race (golang/go#75804); replaying the corpus"
        if go test -count=1 -run "^${name}\$" "./$pkg"; then
            last=$(grep -o 'elapsed: [^,]*, execs: [0-9]*' "$log" | tail -1 || true)
            summary+=("$name (./$pkg): no finding; ${last:-ran $fuzztime}; ended by Go's fuzztime race (golang/go#75804), corpus replayed clean")
        else
            summary+=("$name (./$pkg): FAILED on corpus replay (see above)")
            status=1
        fi
    else
        summary+=("$name (./$pkg): FAILED (see above; the input is under $corpus/)")
        status=1
    fi
    rm -f "$log"
done

echo
echo "fuzz summary (${fuzztime} each):"
printf '  %s\n' "${summary[@]}"
exit $status
