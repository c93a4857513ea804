package scenario

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/megaws/megaws/bench/peers"
)

// Brokers of the cluster scenario.
const (
	BrokerNATS  = "nats"
	BrokerRedis = "redis"
)

// ClusterTargets resolves the names the cluster scenario takes: megaws and
// the cluster peers (peers.ClusterPeers: centrifugo, socketio), megaws first.
func ClusterTargets(names []string) ([]Target, error) {
	var out []Target
	seen := map[string]bool{}
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "" || seen[n] {
			continue
		}
		if n == "all" {
			for _, m := range append([]string{"megaws"}, clusterPeerNames()...) {
				if !seen[m] {
					seen[m] = true
					t, _ := clusterTarget(m)
					out = append(out, t)
				}
			}
			continue
		}
		t, ok := clusterTarget(n)
		if !ok {
			return nil, fmt.Errorf("cluster: unknown server %q (megaws, %s or all)", n, strings.Join(clusterPeerNames(), ", "))
		}
		seen[n] = true
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, errors.New("cluster: no server given")
	}
	for i, t := range out {
		if t.Name == "megaws" && i > 0 {
			copy(out[1:i+1], out[:i])
			out[0] = t
		}
	}
	return out, nil
}

func clusterTarget(name string) (Target, bool) {
	if name == "megaws" {
		return Target{Name: "megaws", Library: "github.com/megaws/megaws", Version: MegawsVersion, Kind: "megaws"}, true
	}
	for _, p := range peers.ClusterPeers() {
		if p.Name == name {
			return peerTarget(p), true
		}
	}
	return Target{}, false
}

func clusterPeerNames() []string {
	var s []string
	for _, p := range peers.ClusterPeers() {
		s = append(s, p.Name)
	}
	return s
}

// BuildCluster builds megaws and the cluster peers among targets: megaws
// from this repository; Centrifugo with `go install MODULE@VERSION` (the
// release's own go.mod and go.sum, checked by the Go checksum database, its
// version stamped in with -ldflags as its release build does) into a cache
// directory (centrifugoDir), skipped when that binary already reports the
// version; Socket.IO by checking that node loads the packages
// scripts/bench-peers-install.sh installs into bench/peers/socketio.
func (e *Env) BuildCluster(ctx context.Context, targets []Target) error {
	for _, t := range targets {
		switch t.Name {
		case "megaws":
			if err := e.Build(ctx, []Target{t}); err != nil {
				return err
			}
		case "centrifugo":
			if err := e.buildCentrifugo(ctx, t); err != nil {
				return err
			}
		case "socketio":
			cmd := exec.CommandContext(ctx, "node", "-e", "require('socket.io'); require('@socket.io/redis-adapter'); require('redis')")
			cmd.Dir = filepath.Join(e.BenchDir, "peers", "socketio")
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("socketio: node cannot load its packages (%v): run scripts/bench-peers-install.sh\n%s", err, out)
			}
		default:
			return fmt.Errorf("cluster: no build for %q", t.Name)
		}
	}
	return nil
}

// centrifugoDir is where Centrifugo's binary is built: a directory per
// version in the user's cache (~/.cache/megaws-bench on Linux), so that a
// build serves every later run and test whatever their BinDir; BinDir when
// there is no cache directory.
func (e *Env) centrifugoDir(t Target) string {
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "megaws-bench", "centrifugo-"+t.Version)
	}
	return filepath.Join(e.BinDir, "centrifugo-"+t.Version)
}

func (e *Env) buildCentrifugo(ctx context.Context, t Target) error {
	dir := e.centrifugoDir(t)
	bin := filepath.Join(dir, "centrifugo")
	want := "Centrifugo " + t.Version + " "
	if out, err := exec.CommandContext(ctx, bin, "version").Output(); err == nil && strings.HasPrefix(string(out), want) {
		return nil
	}
	fmt.Fprintf(e.Log, "cluster: building %s@%s (minutes the first time)\n", t.Library, t.Version)
	ver := strings.TrimPrefix(t.Version, "v")
	cmd := exec.CommandContext(ctx, "go", "install", "-ldflags", "-X "+t.Library+"/internal/build.Version="+ver, t.Library+"@"+t.Version)
	cmd.Dir = os.TempDir() // outside any module: go install PKG@VERSION uses the release's go.mod
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build centrifugo: %v\n%s", err, out)
	}
	out, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), want) {
		return fmt.Errorf("build centrifugo: %s version says %q (%v), want %q", bin, out, err, want)
	}
	return nil
}

// BrokerProc is a message broker process (nats-server or redis-server) the
// cluster scenario started on a loopback port, without persistence.
type BrokerProc struct {
	Kind    string
	Port    int
	Version string
	*Proc
}

// URL is the broker's address for megaws --broker and the peers' configs.
func (b *BrokerProc) URL() string { return fmt.Sprintf("%s://127.0.0.1:%d", b.Kind, b.Port) }

// findBinary looks for name in $env, on PATH, then in the directories
// Debian packages and go install use (as internal/brokertest does).
func findBinary(name, env string) (string, error) {
	if p := os.Getenv(env); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	dirs := []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found (set $%s, or run scripts/setup.sh to install it)", name, env)
}

// StartBroker starts kind (BrokerNATS or BrokerRedis) in dir and waits
// until it answers.
func StartBroker(ctx context.Context, kind, dir string) (*BrokerProc, error) {
	port, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	var bin string
	var args []string
	switch kind {
	case BrokerNATS:
		bin, err = findBinary("nats-server", "NATS_SERVER")
		args = []string{"-a", "127.0.0.1", "-p", strconv.Itoa(port)}
	case BrokerRedis:
		bin, err = findBinary("redis-server", "REDIS_SERVER")
		args = []string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no",
			"--daemonize", "no", "--dir", dir, "--logfile", ""}
	default:
		return nil, fmt.Errorf("cluster: unknown broker %q (nats or redis)", kind)
	}
	if err != nil {
		return nil, err
	}
	b := &BrokerProc{Kind: kind, Port: port}
	if out, err := exec.CommandContext(ctx, bin, "--version").Output(); err == nil {
		b.Version = strings.TrimSpace(string(out))
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	t := Target{Name: kind + "-server", Library: bin, Version: b.Version, Kind: "broker"}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	b.Proc, err = launch(ctx, t, cmd, addr, nil, func() error { return pingBroker(kind, addr) })
	if err != nil {
		return nil, err
	}
	return b, nil
}

// pingBroker checks that a broker serves: NATS greets with INFO, Redis
// answers PING.
func pingBroker(kind, addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if kind == BrokerRedis {
		if _, err := c.Write([]byte("PING\r\n")); err != nil {
			return err
		}
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "INFO ") && !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("unexpected greeting %q", line)
	}
	return nil
}

// Proc is a process of the cluster scenario: a node or the broker.
type Proc struct {
	Target Target
	Addr   string   // host:port it serves on
	Admin  []string // megaws's expvar address, if any
	Cmd    []string

	cmd    *exec.Cmd
	done   chan struct{}
	stderr *tailBuffer
}

// PID is the process id.
func (s *Proc) PID() int { return s.cmd.Process.Pid }

// RSS is the process's resident memory.
func (s *Proc) RSS() int64 {
	n, _ := ProcRSS(s.PID())
	return n
}

// Exited reports whether the process has ended.
func (s *Proc) Exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Stderr returns the tail of the process's standard error.
func (s *Proc) Stderr() string { return s.stderr.String() }

// Stop sends SIGTERM to the process and waits up to 15 s, then kills it.
func (s *Proc) Stop() {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// launch starts cmd for t and waits until it is ready: when ready is nil,
// until it prints "listening on ADDR" on stdout; otherwise until ready
// returns nil. The process gets SIGTERM if this one dies.
func launch(ctx context.Context, t Target, cmd *exec.Cmd, addr string, admin []string, ready func() error) (*Proc, error) {
	s := &Proc{Target: t, Addr: addr, Admin: admin, Cmd: cmd.Args, done: make(chan struct{}), stderr: &tailBuffer{max: 64 << 10}}
	cmd.Stderr = s.stderr
	listening, err := startListening(cmd, t.Name, func() { close(s.done) })
	if err != nil {
		return nil, err
	}
	s.cmd = cmd
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for {
		select {
		case <-listening:
			if ready == nil {
				return s, waitAdmin(s)
			}
		case <-poll.C:
			if ready != nil && ready() == nil {
				return s, waitAdmin(s)
			}
		case <-s.done:
			return nil, fmt.Errorf("%s exited before it was ready: %s", t.Name, s.stderr.String())
		case <-deadline.C:
			s.Stop()
			return nil, fmt.Errorf("%s not ready after 30 s: %s", t.Name, s.stderr.String())
		case <-ctx.Done():
			s.Stop()
			return nil, ctx.Err()
		}
	}
}

// waitAdmin waits up to 10 s for s's admin endpoints to answer.
func waitAdmin(s *Proc) error {
	deadline := time.Now().Add(10 * time.Second)
	for _, a := range s.Admin {
		for {
			if _, err := fetchVars(a); err == nil {
				break
			}
			if time.Now().After(deadline) {
				s.Stop()
				return fmt.Errorf("%s: admin %s not answering", s.Target.Name, a)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// startClusterNode starts node i of target t in broadcast mode, joined to
// broker (nil: a node on its own).
func (e *Env) startClusterNode(ctx context.Context, t Target, i int, broker *BrokerProc, dir string) (*Proc, error) {
	port, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	admin := "127.0.0.1:" + strconv.Itoa(port+1)
	switch t.Name {
	case "megaws":
		args := []string{"serve", "--addr", addr, "--admin", admin, "--mode", "broadcast", "--log-level", "warn"}
		loops := e.Loops
		if loops <= 0 {
			loops = e.GOMAXPROCS
		}
		if loops > 0 {
			args = append(args, "--loops", strconv.Itoa(loops))
		}
		if broker != nil {
			args = append(args, "--broker", broker.URL())
		}
		args = append(args, e.MegawsArgs...)
		cmd := exec.Command(filepath.Join(e.BinDir, "megaws"), args...)
		cmd.Env = e.goEnv()
		return launch(ctx, t, cmd, addr, []string{admin}, nil)
	case "centrifugo":
		cfg := filepath.Join(dir, fmt.Sprintf("centrifugo-%d.json", i))
		b, err := json.MarshalIndent(centrifugoConfig(port, i, broker), "", "  ")
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(cfg, b, 0o644); err != nil {
			return nil, err
		}
		cmd := exec.Command(filepath.Join(e.centrifugoDir(t), "centrifugo"), "--config", cfg)
		cmd.Dir = dir
		cmd.Env = e.goEnv()
		health := "http://" + addr + "/health"
		return launch(ctx, t, cmd, addr, nil, func() error {
			resp, err := varsClient.Get(health)
			if err != nil {
				return err
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return errors.New(resp.Status)
			}
			return nil
		})
	case "socketio":
		args := []string{filepath.Join(e.BenchDir, "peers", "socketio", "server.js"), "--addr", addr}
		if broker != nil {
			if broker.Kind != BrokerRedis {
				return nil, errors.New("socketio: @socket.io/redis-adapter needs --broker redis")
			}
			args = append(args, "--broker", broker.URL())
		}
		cmd := exec.Command("node", args...)
		cmd.Dir = filepath.Join(e.BenchDir, "peers", "socketio")
		return launch(ctx, t, cmd, addr, nil, nil)
	}
	return nil, fmt.Errorf("cluster: no node for %q", t.Name)
}

func (e *Env) goEnv() []string {
	env := os.Environ()
	if e.GOMAXPROCS > 0 {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(e.GOMAXPROCS))
	}
	return env
}

// centrifugoChannel is the channel every Centrifugo client subscribes and
// publishes to.
const centrifugoChannel = "bench"

// centrifugoConfig is a Centrifugo v6 configuration for node i on port:
// anonymous clients may connect without a token, subscribe and publish
// (client-side publish, the equivalent of megaws's broadcast mode) on
// channels without a namespace; no history, no presence, no usage stats.
// With Redis the node uses the Redis engine (PUBLISH per publication), with
// NATS the NATS broker (presence stays in memory, unused); alone, the memory
// engine.
func centrifugoConfig(port, i int, broker *BrokerProc) map[string]any {
	cfg := map[string]any{
		"http_server": map[string]any{"address": "127.0.0.1", "port": port},
		"log":         map[string]any{"level": "warn"},
		"usage_stats": map[string]any{"disabled": true},
		"health":      map[string]any{"enabled": true},
		"node":        map[string]any{"name": fmt.Sprintf("bench-%d", i)},
		"client":      map[string]any{"allow_anonymous_connect_without_token": true},
		"channel": map[string]any{"without_namespace": map[string]any{
			"allow_subscribe_for_anonymous": true, "allow_subscribe_for_client": true,
			"allow_publish_for_anonymous": true, "allow_publish_for_client": true,
		}},
	}
	if broker != nil {
		switch broker.Kind {
		case BrokerRedis:
			cfg["engine"] = map[string]any{"type": "redis", "redis": map[string]any{"address": []string{broker.URL()}}}
		case BrokerNATS:
			cfg["broker"] = map[string]any{"enabled": true, "type": "nats", "nats": map[string]any{"url": broker.URL()}}
		}
	}
	return cfg
}

// clusterNodeStats reads the megaws Stats counters the cluster report shows from
// a node's /debug/vars (expvar "megaws", Go field names); ok is false for
// other servers.
func clusterNodeStats(admin []string) (ClusterNodeCounters, bool) {
	if len(admin) == 0 {
		return ClusterNodeCounters{}, false
	}
	resp, err := varsClient.Get("http://" + admin[0] + "/debug/vars")
	if err != nil {
		return ClusterNodeCounters{}, false
	}
	defer func() { _ = resp.Body.Close() }()
	var v struct {
		Megaws *struct {
			MessagesIn, MessagesOut, ClusterOut, ClusterIn, ClusterDrops, QueueDrops, BudgetDrops uint64
		} `json:"megaws"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || v.Megaws == nil {
		return ClusterNodeCounters{}, false
	}
	m := v.Megaws
	return ClusterNodeCounters{MessagesIn: m.MessagesIn, MessagesOut: m.MessagesOut, ClusterOut: m.ClusterOut, ClusterIn: m.ClusterIn,
		ClusterDrops: m.ClusterDrops, QueueDrops: m.QueueDrops, BudgetDrops: m.BudgetDrops}, true
}
