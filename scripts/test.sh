#!/usr/bin/env bash
# scripts/test.sh — the whole test suite, as CI runs it (.ci/run calls this).
#
# Installs what the tests need (scripts/setup.sh: Debian chromium + nginx, npm
# packages, Go modules), then for every Go module: gofmt check, go vet,
# golangci-lint with the checked-in .golangci.yml, and go test -race. Also runs
# the bench harness end to end (scripts/bench.sh --quick) and every fuzz target
# briefly (scripts/fuzz.sh, 100,000 inputs each). Nothing is skipped silently: a missing tool fails.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export PATH="$PATH:$(go env GOPATH)/bin"

step() { printf '\n=== %s\n' "$*"; }

step "setup"
bash scripts/setup.sh

modules=(. bench)

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go') 2>&1 || true)
if [[ -n "$unformatted" ]]; then
    echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
echo "gofmt: clean"

step "go vet"
for m in "${modules[@]}"; do (cd "$m" && go vet ./...); done
echo "go vet: clean"

step "cross-compile (the library builds on kqueue systems; tests that use Linux APIs are tagged linux)"
for target in darwin/amd64 darwin/arm64 freebsd/amd64; do
    GOOS=${target%/*} GOARCH=${target#*/} go vet ./...
done
echo "cross-compile: darwin, freebsd ok"

step "golangci-lint"
bash scripts/lint.sh

if [[ -f scripts/bench.sh ]]; then
    step "bench harness (scripts/bench.sh --quick)"
    bash scripts/bench.sh --quick
fi

if [[ -f scripts/fuzz.sh ]]; then
    step "fuzz targets (scripts/fuzz.sh ${FUZZTIME:-100000x})"
    bash scripts/fuzz.sh "${FUZZTIME:-100000x}"
fi

step "allocation tests (need a build without -race)"
go test -count=1 -run 'Alloc' ./codec/ ./server/

step "go test -race"
if [[ ${MEGAWS_BENCH_CENTRIFUGO:-} != 1 ]]; then
    echo "note: bench's TestClusterEndToEnd runs megaws and Socket.IO; the Centrifugo peer is built from source"
    echo "      (go install, minutes on a fresh machine) only by MEGAWS_BENCH_CENTRIFUGO=1 or scripts/bench.sh cluster"
fi
status=0
for m in "${modules[@]}"; do
    (cd "$m" && go test -race -count=1 -timeout 20m ./...) || status=1
done
exit $status
