#!/usr/bin/env bash
# scripts/setup.sh — install what the test suite needs on a fresh Debian machine.
#
# Idempotent and quick when everything is already there; stops at the first failure
# with the failing step named. Run as root (apt-get). Steps:
#   1. Debian packages: chromium (real-browser interop), nginx (wss:// tests, cluster),
#      openssl, redis-server and nats-server (real brokers for broker/redis,
#      broker/nats and the cluster tests; the tests start their own on free ports)
#   2. Node.js + npm (Debian's, only if node is missing)
#   3. npm ci in scripts/js (ws, playwright-core), skipped while node_modules matches
#      package-lock.json; playwright-core never downloads a browser, the tests use
#      /usr/bin/chromium
#   4. scripts/bench-peers-install.sh, when present (bench peer servers)
#   5. go mod download for the main module and bench/
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

step() { printf 'setup: %s\n' "$*"; }
fail() {
    printf 'setup: FAILED: %s\n' "$*" >&2
    exit 1
}
trap 'printf "setup: FAILED (exit %d) at line %d: %s\n" "$?" "$LINENO" "$BASH_COMMAND" >&2' ERR

apt_updated=0
apt_install() {
    if [[ $(id -u) -ne 0 ]]; then
        fail "need root to install Debian packages: $*"
    fi
    if [[ $apt_updated -eq 0 ]]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == "install ok installed" ]]
}

# 1. Debian packages.
debs=(chromium nginx openssl redis-server nats-server)
missing=()
for p in "${debs[@]}"; do
    installed "$p" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    step "debian: installing ${missing[*]}"
    apt_install "${missing[@]}"
    for p in "${missing[@]}"; do
        installed "$p" || fail "debian: $p still not installed after apt-get install"
    done
fi
command -v chromium >/dev/null || fail "chromium not on PATH after installing the chromium package"
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || fail "nginx not found after installing the nginx package"
# Under systemd the broker packages also start system-wide services (Redis on
# 6379, NATS on 4222); the tests do not use them: they start their own brokers.
command -v redis-server >/dev/null || fail "redis-server not found after installing the redis-server package"
command -v nats-server >/dev/null || [[ -x /usr/sbin/nats-server ]] || fail "nats-server not found after installing the nats-server package"
step "debian: ${debs[*]} ok ($(dpkg-query -W -f='${Version}' chromium) / nginx $(dpkg-query -W -f='${Version}' nginx) / redis $(dpkg-query -W -f='${Version}' redis-server) / nats $(dpkg-query -W -f='${Version}' nats-server))"

# 2. Node.js and npm: the machine image ships them; fall back to Debian's.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    step "node: not found, installing Debian nodejs npm"
    apt_install nodejs npm
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
[[ $node_major -ge 18 ]] || fail "node $(node --version) is too old: scripts/js needs node >= 18"
step "node: $(node --version), npm $(npm --version 2>/dev/null)"

# 3. npm ci in scripts/js, keyed on package-lock.json.
js="$root/scripts/js"
stamp="$js/node_modules/.megaws-lock.sha256"
want=$(sha256sum "$js/package-lock.json" | cut -d' ' -f1)
if [[ -f "$stamp" && $(cat "$stamp") == "$want" && -d "$js/node_modules/ws" && -d "$js/node_modules/playwright-core" ]]; then
    step "npm: scripts/js/node_modules up to date"
else
    step "npm: npm ci in scripts/js"
    (cd "$js" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
    printf '%s\n' "$want" >"$stamp"
fi

# 4. Bench peers, when the bench harness provides an installer.
if [[ -f "$root/scripts/bench-peers-install.sh" ]]; then
    step "bench: scripts/bench-peers-install.sh"
    bash "$root/scripts/bench-peers-install.sh"
else
    step "bench: no scripts/bench-peers-install.sh, nothing to install"
fi

# 5. Go modules.
command -v go >/dev/null || fail "go not on PATH"
for mod in . bench; do
    if [[ -f "$root/$mod/go.mod" ]]; then
        step "go: go mod download in $mod"
        (cd "$root/$mod" && go mod download)
    fi
done

step "done"
