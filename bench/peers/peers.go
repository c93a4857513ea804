// Package peers builds and starts the peer servers the benchmark measures
// megaws against: one small server per library, each written the way that
// library's own README and examples write it. Every peer takes the same
// flags (-addr, -admin, -mode echo|broadcast|sink), serves WebSocket on any
// path with compression off and a 16 MiB message limit, prints
// "listening on ADDR" on stdout when ready and exits on SIGINT/SIGTERM.
//
// Go peers live in bench/peers/NAME and are built with go build. JS peers
// (bench/peers/bun, bench/peers/uws) need `npm ci` in bench/peers, which
// scripts/bench-peers-install.sh runs.
package peers

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Kinds of peer.
const (
	KindGo = "go"
	KindJS = "js"
)

// Peer is one peer server.
type Peer struct {
	Name    string // "gorilla", "gobwas", "gws", "nbio", "bun", "uws"
	Library string // Go module path or npm package the peer is built on
	Version string // Library's version, as pinned in bench/go.mod or bench/peers/package.json
	Kind    string // KindGo or KindJS
}

// table is the peer list. Versions are the ones bench/go.mod and
// bench/peers/package.json pin; TestVersionsMatchManifests keeps them equal.
var table = []Peer{
	{Name: "gorilla", Library: "github.com/gorilla/websocket", Version: "v1.5.3", Kind: KindGo},
	{Name: "gobwas", Library: "github.com/gobwas/ws", Version: "v1.5.0", Kind: KindGo},
	{Name: "gws", Library: "github.com/lxzan/gws", Version: "v1.8.9", Kind: KindGo},
	{Name: "nbio", Library: "github.com/lesismal/nbio", Version: "v1.6.7", Kind: KindGo},
	{Name: "bun", Library: "bun", Version: "1.4.4", Kind: KindJS},
	// uwebsockets is a registry repackaging of uWebSockets.js's prebuilt
	// binaries (upstream publishes none to npm); package.json installs it
	// under the name uWebSockets.js.
	{Name: "uws", Library: "uwebsockets", Version: "3.0.6", Kind: KindJS},
}

// clusterTable are the peers of the cluster scenario only: they speak their
// own protocols over WebSocket, so the other scenarios cannot drive them.
// Centrifugo is built from its release module with go install (not in
// go.mod); Socket.IO is pinned in socketio/package.json.
var clusterTable = []Peer{
	{Name: "centrifugo", Library: "github.com/centrifugal/centrifugo/v6", Version: "v6.9.1", Kind: KindGo},
	{Name: "socketio", Library: "socket.io + @socket.io/redis-adapter 8.3.0 + redis 4.7.1 (npm)", Version: "4.8.4", Kind: KindJS},
}

// ClusterPeers returns the peers of the cluster scenario (bench/scenario
// cluster_procs.go builds and starts them).
func ClusterPeers() []Peer { return append([]Peer(nil), clusterTable...) }

// All returns every peer, Go peers first.
func All() []Peer {
	return append([]Peer(nil), table...)
}

// Lookup returns the peer called name.
func Lookup(name string) (Peer, bool) {
	for _, p := range table {
		if p.Name == name {
			return p, true
		}
	}
	return Peer{}, false
}

const installHint = "run scripts/bench-peers-install.sh"

// Build compiles a Go peer into binDir with go build run in benchDir (the
// bench module). For a JS peer it checks that the npm packages are installed
// in benchDir/peers/node_modules and that the runtime starts; the error then
// says to run scripts/bench-peers-install.sh.
func (p Peer) Build(ctx context.Context, benchDir, binDir string) error {
	switch p.Kind {
	case KindGo:
		cmd := exec.CommandContext(ctx, "go", "build", "-o", p.binary(binDir), "./peers/"+p.Name)
		cmd.Dir = benchDir
		if msg, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("peers: build %s: %v\n%s", p.Name, err, msg)
		}
		return nil
	case KindJS:
		peersDir := filepath.Join(benchDir, "peers")
		var check *exec.Cmd
		switch p.Name {
		case "bun":
			bun := bunPath(benchDir)
			if _, err := os.Stat(bun); err != nil {
				return fmt.Errorf("peers: bun is not installed (%v): %s", err, installHint)
			}
			check = exec.CommandContext(ctx, bun, "--version")
		default:
			node, err := exec.LookPath("node")
			if err != nil {
				return fmt.Errorf("peers: %s needs node: %v", p.Name, err)
			}
			check = exec.CommandContext(ctx, node, "-e", "require('uWebSockets.js')")
		}
		check.Dir = peersDir
		check.Env = append(os.Environ(), "DO_NOT_TRACK=1")
		var stderr bytes.Buffer
		check.Stderr = &stderr
		out, err := check.Output()
		if err != nil {
			return fmt.Errorf("peers: %s is not usable (%v): %s\n%s", p.Name, err, installHint, stderr.Bytes())
		}
		if p.Name == "bun" && strings.TrimSpace(string(out)) != p.Version {
			return fmt.Errorf("peers: bun is %s, want %s: %s", bytes.TrimSpace(out), p.Version, installHint)
		}
		return nil
	}
	return fmt.Errorf("peers: %s: unknown kind %q", p.Name, p.Kind)
}

// Command returns the command that starts the peer listening on addr, with
// the expvar admin server on admin unless admin is "", in mode ("echo",
// "broadcast" or "sink"). gomaxprocs > 0 sets GOMAXPROCS for Go peers; JS
// peers run one event loop and ignore it. The caller sets Stdout to read the
// "listening on ADDR" line and ends the process with SIGTERM.
func (p Peer) Command(benchDir, binDir, addr, admin, mode string, gomaxprocs int) *exec.Cmd {
	var cmd *exec.Cmd
	switch p.Kind {
	case KindGo:
		args := []string{"-addr", addr, "-mode", mode}
		if admin != "" {
			args = append(args, "-admin", admin)
		}
		cmd = exec.Command(p.binary(binDir), args...)
		cmd.Env = os.Environ()
		if gomaxprocs > 0 {
			cmd.Env = append(cmd.Env, "GOMAXPROCS="+strconv.Itoa(gomaxprocs))
		}
		return cmd
	default:
		args := []string{abs(filepath.Join(benchDir, "peers", p.Name, "server.js")), "--addr", addr, "--mode", mode}
		if admin != "" {
			args = append(args, "--admin", admin)
		}
		if p.Name == "bun" {
			cmd = exec.Command(bunPath(benchDir), args...)
		} else {
			cmd = exec.Command("node", args...)
		}
		cmd.Env = append(os.Environ(), "DO_NOT_TRACK=1")
		return cmd
	}
}

func (p Peer) binary(binDir string) string {
	return abs(filepath.Join(binDir, "peer-"+p.Name))
}

func bunPath(benchDir string) string {
	return abs(filepath.Join(benchDir, "peers", "node_modules", ".bin", "bun"))
}

// abs makes path absolute, so that exec never looks a bare name up in PATH.
func abs(path string) string {
	if a, err := filepath.Abs(path); err == nil {
		return a
	}
	return path
}
