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
    if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "./$pkg" 2>&1 | tee "$log"; then
        last=$(grep -o 'elapsed: [^,]*, execs: [0-9]*' "$log" | tail -1 || true)
        summary+=("$name (./$pkg): no finding; ${last:-ran $fuzztime}")
    else
        summary+=("$name (./$pkg): FAILED (see above; the input is under ./$pkg/testdata/fuzz/$name/)")
        status=1
    fi
    rm -f "$log"
done

echo
echo "fuzz summary (${fuzztime} each):"
printf '  %s\n' "${summary[@]}"
exit $status
