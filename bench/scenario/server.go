package scenario

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/megaws/megaws/bench/peers"
)

// Target is a server the harness can measure: megaws or one of the peers.
type Target struct {
	Name    string `json:"name"`
	Library string `json:"library"`
	Version string `json:"version"`
	Kind    string `json:"kind"` // "megaws", "go" or "js"
}

// MegawsVersion is the version string of the megaws target in reports.
const MegawsVersion = "working tree"

// Targets resolves names ("megaws", peer names, "all", "go" for megaws and the
// Go peers) to targets, megaws first.
func Targets(names []string) ([]Target, error) {
	var out []Target
	seen := map[string]bool{}
	add := func(t Target) {
		if !seen[t.Name] {
			seen[t.Name] = true
			out = append(out, t)
		}
	}
	megaws := Target{Name: "megaws", Library: "github.com/megaws/megaws", Version: MegawsVersion, Kind: "megaws"}
	for _, n := range names {
		switch n = strings.TrimSpace(n); n {
		case "":
		case "megaws":
			add(megaws)
		case "all", "go":
			add(megaws)
			for _, p := range peers.All() {
				if n == "all" || p.Kind == peers.KindGo {
					add(peerTarget(p))
				}
			}
		default:
			p, ok := peers.Lookup(n)
			if !ok {
				return nil, fmt.Errorf("unknown server %q (megaws, all, go, or a peer: %s)", n, peerNames())
			}
			add(peerTarget(p))
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no server given")
	}
	return out, nil
}

func peerNames() string {
	var s []string
	for _, p := range peers.All() {
		s = append(s, p.Name)
	}
	return strings.Join(s, ", ")
}

func peerTarget(p peers.Peer) Target {
	return Target{Name: p.Name, Library: p.Library, Version: p.Version, Kind: p.Kind}
}

// Env says where the code is and how servers run.
type Env struct {
	RepoDir  string // megaws repository root
	BenchDir string // RepoDir/bench
	BinDir   string // where binaries are built

	// ServerCPUs and LoadCPUs pin the server (with taskset) and the load
	// generator; empty means no pinning.
	ServerCPUs, LoadCPUs []int
	// GOMAXPROCS for Go servers; 0 leaves the default.
	GOMAXPROCS int
	// Loops is megaws's --loops; 0 means GOMAXPROCS or the CPU count.
	Loops int
	// Workers is megaws's --workers (processes sharing the port).
	Workers int
	// MegawsArgs are extra flags for megaws serve.
	MegawsArgs []string
	// Log receives progress lines.
	Log io.Writer
}

// NewEnv finds the repository from dir and builds into binDir (a temporary
// directory when empty).
func NewEnv(dir, binDir string) (*Env, error) {
	root, err := RepoRoot(dir)
	if err != nil {
		return nil, err
	}
	if binDir == "" {
		binDir = filepath.Join(os.TempDir(), fmt.Sprintf("megaws-bench-%d", os.Getuid()))
	}
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return nil, err
	}
	return &Env{RepoDir: root, BenchDir: filepath.Join(root, "bench"), BinDir: binDir, Workers: 1, Log: io.Discard}, nil
}

// Build compiles megaws and the Go peers among targets and checks the JS ones.
func (e *Env) Build(ctx context.Context, targets []Target) error {
	for _, t := range targets {
		if t.Kind == "megaws" {
			cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(e.BinDir, "megaws"), "./cmd/megaws")
			cmd.Dir = e.RepoDir
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("build megaws: %v\n%s", err, out)
			}
			continue
		}
		p, _ := peers.Lookup(t.Name)
		if err := p.Build(ctx, e.BenchDir, e.BinDir); err != nil {
			return err
		}
	}
	return nil
}

// Server is a running server process (and its children).
type Server struct {
	Target Target
	Addr   string   // WebSocket address, host:port
	Admin  []string // expvar admin addresses, one per process
	Mode   string
	Cmd    []string // the command line

	cmd    *exec.Cmd
	done   chan struct{}
	stderr *tailBuffer
}

// freePorts returns n consecutive TCP ports on 127.0.0.1 that are free now,
// below the ephemeral range so client sockets never take them.
func freePorts(n int) (int, error) {
	for range 200 {
		base := 10000 + rand.IntN(20000-n)
		ok := true
		var lns []net.Listener
		for i := 0; i < n && ok; i++ {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+i))
			if err != nil {
				ok = false
				break
			}
			lns = append(lns, ln)
		}
		for _, ln := range lns {
			_ = ln.Close()
		}
		if ok {
			return base, nil
		}
	}
	return 0, errors.New("no free ports")
}

var listeningRE = regexp.MustCompile(`listening on (\S+)`)

// Start starts target in mode ("echo", "broadcast", "sink") and waits until
// it listens.
func (e *Env) Start(ctx context.Context, t Target, mode string) (*Server, error) {
	workers := 1
	if t.Kind == "megaws" && e.Workers > 1 {
		workers = e.Workers
	}
	port, err := freePorts(1 + workers)
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	s := &Server{Target: t, Addr: addr, Mode: mode, done: make(chan struct{}), stderr: &tailBuffer{max: 64 << 10}}
	for i := range workers {
		s.Admin = append(s.Admin, "127.0.0.1:"+strconv.Itoa(port+1+i))
	}
	var cmd *exec.Cmd
	if t.Kind == "megaws" {
		loops := e.Loops
		if loops <= 0 {
			loops = e.GOMAXPROCS
		}
		args := []string{"serve", "--addr", addr, "--admin", s.Admin[0], "--mode", mode, "--log-level", "warn"}
		if loops > 0 {
			args = append(args, "--loops", strconv.Itoa(loops))
		}
		if workers > 1 {
			args = append(args, "--workers", strconv.Itoa(workers))
		}
		args = append(args, e.MegawsArgs...)
		cmd = exec.Command(filepath.Join(e.BinDir, "megaws"), args...)
		cmd.Env = os.Environ()
		if e.GOMAXPROCS > 0 {
			cmd.Env = append(cmd.Env, "GOMAXPROCS="+strconv.Itoa(e.GOMAXPROCS))
		}
	} else {
		p, _ := peers.Lookup(t.Name)
		cmd = p.Command(e.BenchDir, e.BinDir, addr, s.Admin[0], mode, e.GOMAXPROCS)
	}
	if len(e.ServerCPUs) > 0 {
		ts, err := exec.LookPath("taskset")
		if err != nil {
			return nil, fmt.Errorf("pinning needs taskset: %w", err)
		}
		cmd.Args = append([]string{"taskset", "-c", cpuList(e.ServerCPUs)}, cmd.Args...)
		cmd.Path = ts
	}
	s.Cmd = cmd.Args
	cmd.Stderr = s.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", t.Name, err)
	}
	s.cmd = cmd
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil && !sent {
				ready <- m[1]
				sent = true
			}
		}
		_ = cmd.Wait()
		close(s.done)
	}()
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	select {
	case a := <-ready:
		if _, _, err := net.SplitHostPort(a); err == nil && !strings.HasSuffix(a, ":0") {
			s.Addr = a
		}
	case <-s.done:
		return nil, fmt.Errorf("%s exited before listening: %s", t.Name, s.stderr.String())
	case <-timer.C:
		s.Stop()
		return nil, fmt.Errorf("%s did not print its listening line in 30 s: %s", t.Name, s.stderr.String())
	case <-ctx.Done():
		s.Stop()
		return nil, ctx.Err()
	}
	// Admin servers may come up just after the listening line.
	deadline := time.Now().Add(10 * time.Second)
	for _, a := range s.Admin {
		for {
			if _, err := fetchVars(a); err == nil {
				break
			}
			if time.Now().After(deadline) {
				s.Stop()
				return nil, fmt.Errorf("%s: admin %s not answering", t.Name, a)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return s, nil
}

func cpuList(cpus []int) string {
	s := make([]string, len(cpus))
	for i, c := range cpus {
		s[i] = strconv.Itoa(c)
	}
	return strings.Join(s, ",")
}

// PID is the server's main process.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// PIDs returns the server's process and its descendants (megaws workers).
func (s *Server) PIDs() []int { return Tree(s.PID()) }

// CPU returns the CPU time used by the server's processes.
func (s *Server) CPU() time.Duration {
	var d time.Duration
	for _, p := range s.PIDs() {
		c, _ := ProcCPU(p)
		d += c
	}
	return d
}

// RSS returns the resident memory of the server's processes, summed.
func (s *Server) RSS() int64 {
	var n int64
	for _, p := range s.PIDs() {
		r, _ := ProcRSS(p)
		n += r
	}
	return n
}

// FDs returns the open file descriptors of the server's processes, summed.
func (s *Server) FDs() int {
	n := 0
	for _, p := range s.PIDs() {
		n += ProcFDs(p)
	}
	return n
}

// Vars are the figures servers publish on /debug/vars, summed over processes.
// A field is -1 when no process published it.
type Vars struct {
	Connections int64 `json:"connections"`
	Goroutines  int64 `json:"goroutines"`
	HeapInuse   int64 `json:"heap_inuse"`
	Sys         int64 `json:"sys"`
	Mallocs     int64 `json:"mallocs"` // cumulative heap allocations (runtime.MemStats.Mallocs)
}

// Vars fetches and sums /debug/vars of every server process.
func (s *Server) Vars() Vars {
	v := Vars{Connections: -1, Goroutines: -1, HeapInuse: -1, Sys: -1, Mallocs: -1}
	add := func(dst *int64, x *int64) {
		if x == nil {
			return
		}
		if *dst < 0 {
			*dst = 0
		}
		*dst += *x
	}
	for _, a := range s.Admin {
		r, err := fetchVars(a)
		if err != nil {
			continue
		}
		add(&v.Connections, r.Connections)
		add(&v.Goroutines, r.Goroutines)
		if r.Memstats != nil {
			add(&v.HeapInuse, r.Memstats.HeapInuse)
			add(&v.Sys, r.Memstats.Sys)
			add(&v.Mallocs, r.Memstats.Mallocs)
		}
	}
	return v
}

type rawVars struct {
	Connections *int64 `json:"connections"`
	Goroutines  *int64 `json:"goroutines"`
	Memstats    *struct {
		HeapInuse *int64 `json:"HeapInuse"`
		Sys       *int64 `json:"Sys"`
		Mallocs   *int64 `json:"Mallocs"`
	} `json:"memstats"`
}

var varsClient = &http.Client{Timeout: 5 * time.Second}

func fetchVars(addr string) (*rawVars, error) {
	resp, err := varsClient.Get("http://" + addr + "/debug/vars")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", addr, resp.Status)
	}
	var r rawVars
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	return &r, nil
}

// WaitConns waits up to d for the server to report n connections (when it
// publishes the figure) and returns the last figure read.
func (s *Server) WaitConns(n int64, d time.Duration) int64 {
	deadline := time.Now().Add(d)
	for {
		v := s.Vars().Connections
		if v < 0 || v == n || time.Now().After(deadline) {
			return v
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop sends SIGTERM to the server's main process and waits up to 15 s; then
// it kills the process and any child left, by PID.
func (s *Server) Stop() {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return
	}
	pids := s.PIDs()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		<-s.done
	}
	// Workers exit with their parent; kill, by PID, any left behind.
	deadline := time.Now().Add(5 * time.Second)
	for _, p := range pids[1:] {
		for syscall.Kill(p, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if syscall.Kill(p, 0) == nil {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	}
}

// Exited reports whether the server process has ended.
func (s *Server) Exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Stderr returns the tail of the server's standard error.
func (s *Server) Stderr() string { return s.stderr.String() }

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
