#!/usr/bin/env bash
# Installs the npm packages of the JS peer servers (bench/peers/bun runs on
# Bun, bench/peers/uws on uWebSockets.js under Node) into
# bench/peers/node_modules, from the pinned bench/peers/package-lock.json;
# and those of the cluster scenario's Socket.IO peer (socket.io,
# @socket.io/redis-adapter, redis) into bench/peers/socketio/node_modules,
# from bench/peers/socketio/package-lock.json. (The cluster scenario's
# Centrifugo peer is a Go module: megaws-bench cluster builds it itself.)
#
# Idempotent and quick: when node_modules was installed from the same
# package.json and lock file and the runtimes start, it installs nothing.
# Prints where bun is. Needs node and npm on PATH and the npm registry.
set -euo pipefail
export DO_NOT_TRACK=1 # Bun: no telemetry

cd "$(dirname "$0")/../bench/peers"
peers="$PWD"
stamp=node_modules/.megaws-install-stamp

manifest_sum() { cat package.json package-lock.json 2>/dev/null | sha256sum | cut -d' ' -f1; }
bun_ok() { node_modules/.bin/bun --version >/dev/null 2>&1; }
uws_ok() { node -e "require('uWebSockets.js')" >/dev/null 2>&1; }

if [[ -f $stamp && "$(cat "$stamp")" == "$(manifest_sum)" ]] && bun_ok && uws_ok; then
	echo "bench/peers: npm packages already installed"
else
	if [[ -f package-lock.json ]]; then
		npm ci --no-audit --no-fund
	else
		npm install --no-audit --no-fund
	fi
	# bun's postinstall links the native binary over the placeholder
	# bin/bun.exe; run it by hand if npm skipped install scripts.
	if ! bun_ok; then
		(cd node_modules/bun && node install.js)
	fi
	if ! bun_ok; then
		echo "bench-peers-install: node_modules/.bin/bun does not run:" >&2
		node_modules/.bin/bun --version >&2 || true
		exit 1
	fi
	if ! uws_ok; then
		echo "bench-peers-install: uWebSockets.js does not load under $(node --version):" >&2
		node -e "require('uWebSockets.js')" >&2 || true
		exit 1
	fi
	manifest_sum >"$stamp"
fi

echo "bun $(node_modules/.bin/bun --version): $peers/node_modules/.bin/bun"
echo "uWebSockets.js (npm uwebsockets $(node -p "require('uWebSockets.js/package.json').version")) under node $(node --version)"

# The Socket.IO cluster peer: its own package.json, so that its packages
# stay out of the other peers' lock file.
cd "$peers/socketio"
sio_ok() { node -e "require('socket.io'); require('@socket.io/redis-adapter'); require('redis')" >/dev/null 2>&1; }
if [[ -f $stamp && "$(cat "$stamp")" == "$(manifest_sum)" ]] && sio_ok; then
	echo "bench/peers/socketio: npm packages already installed"
else
	npm ci --no-audit --no-fund
	if ! sio_ok; then
		echo "bench-peers-install: socket.io and its Redis adapter do not load under $(node --version):" >&2
		node -e "require('socket.io'); require('@socket.io/redis-adapter'); require('redis')" >&2 || true
		exit 1
	fi
	manifest_sum >"$stamp"
fi
echo "socket.io $(node -p "require('socket.io/package.json').version") + @socket.io/redis-adapter $(node -p "require('@socket.io/redis-adapter/package.json').version") under node $(node --version)"
