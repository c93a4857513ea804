#!/usr/bin/env bash
# scripts/lint.sh — golangci-lint (pinned) with the checked-in .golangci.yml over
# every Go module. Installs the pinned version with `go install` if missing.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
version=v2.15.0
bin="$(go env GOPATH)/bin/golangci-lint"
if ! [[ -x "$bin" ]] || ! "$bin" version 2>/dev/null | grep -q "${version#v}"; then
    echo "lint: installing golangci-lint $version (go install, ~2 min once)"
    go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$version"
fi
for m in . bench; do
    echo "lint: $m"
    (cd "$m" && "$bin" run --config "$root/.golangci.yml" ./...)
done
echo "lint: clean"
