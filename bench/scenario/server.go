package scenario

import (
	"bufio"
	"bytes"
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
	// LogLevel is megaws serve's --log-level; default "warn". A graceful
	// stop's outcome is logged at "info".
	LogLevel string
	// MemProfileRate, when above 0, sets the megaws processes'
	// runtime.MemProfileRate (GODEBUG=memprofilerate=N): one heap profile
	// sample per that many bytes allocated, instead of Go's 512 KiB, so
	// that a heap profile resolves the few hundred bytes of each of a few
	// thousand connections.
	MemProfileRate int
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

	cmd     *exec.Cmd
	done    chan struct{}
	exited  time.Time // when done was closed
	stderr  *tailBuffer
	stopped *lineCollector
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
	s := &Server{Target: t, Addr: addr, Mode: mode, done: make(chan struct{}), stderr: &tailBuffer{max: 64 << 10}, stopped: &lineCollector{match: " msg=stopped "}}
	for i := range workers {
		s.Admin = append(s.Admin, "127.0.0.1:"+strconv.Itoa(port+1+i))
	}
	var cmd *exec.Cmd
	if t.Kind == "megaws" {
		loops := e.Loops
		if loops <= 0 {
			loops = e.GOMAXPROCS
		}
		level := e.LogLevel
		if level == "" {
			level = "warn"
		}
		args := []string{"serve", "--addr", addr, "--admin", s.Admin[0], "--mode", mode, "--log-level", level}
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
		if e.MemProfileRate > 0 {
			cmd.Env = withGODEBUG(cmd.Env, "memprofilerate="+strconv.Itoa(e.MemProfileRate))
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
	cmd.Stderr = io.MultiWriter(s.stderr, s.stopped)
	ready, err := startListening(cmd, t.Name, func() { s.exited = time.Now(); close(s.done) })
	if err != nil {
		return nil, err
	}
	s.cmd = cmd
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

// withGODEBUG returns env with setting added to its GODEBUG variable.
func withGODEBUG(env []string, setting string) []string {
	for i, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
			out := append([]string(nil), env...)
			if v != "" {
				setting = v + "," + setting
			}
			out[i] = "GODEBUG=" + setting
			return out
		}
	}
	return append(env, "GODEBUG="+setting)
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
	// Megaws's keepalive and close counters (server.Stats), cumulative.
	PingsSent      int64 `json:"pings_sent"`
	PongsIn        int64 `json:"pongs_in"`
	ClosesAnswered int64 `json:"closes_answered"`
	CloseTimeouts  int64 `json:"close_timeouts"`
	// Processes is how many processes answered.
	Processes int `json:"processes"`
}

// Vars fetches /debug/vars of every server process, all at once, and sums
// them.
func (s *Server) Vars() Vars {
	v := Vars{Connections: -1, Goroutines: -1, HeapInuse: -1, Sys: -1, Mallocs: -1, PingsSent: -1, PongsIn: -1, ClosesAnswered: -1, CloseTimeouts: -1}
	add := func(dst *int64, x *int64) {
		if x == nil {
			return
		}
		if *dst < 0 {
			*dst = 0
		}
		*dst += *x
	}
	for _, r := range s.eachVars() {
		if r == nil {
			continue
		}
		v.Processes++
		add(&v.Connections, r.Connections)
		add(&v.Goroutines, r.Goroutines)
		if r.Memstats != nil {
			add(&v.HeapInuse, r.Memstats.HeapInuse)
			add(&v.Sys, r.Memstats.Sys)
			add(&v.Mallocs, r.Memstats.Mallocs)
		}
		if m := r.Megaws; m != nil {
			add(&v.PingsSent, m.PingsSent)
			add(&v.PongsIn, m.PongsIn)
			add(&v.ClosesAnswered, m.ClosesAnswered)
			add(&v.CloseTimeouts, m.CloseTimeouts)
		}
	}
	return v
}

// eachVars fetches /debug/vars of every admin address, 16 at a time, so
// that the figures of dozens of worker processes are read at nearly the
// same moment; an entry is nil where the fetch failed.
func (s *Server) eachVars() []*rawVars {
	out := make([]*rawVars, len(s.Admin))
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i, a := range s.Admin {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if r, err := fetchVars(a); err == nil {
				out[i] = r
			}
		}()
	}
	wg.Wait()
	return out
}

type rawVars struct {
	Connections *int64 `json:"connections"`
	Goroutines  *int64 `json:"goroutines"`
	Memstats    *struct {
		HeapInuse *int64 `json:"HeapInuse"`
		Sys       *int64 `json:"Sys"`
		Mallocs   *int64 `json:"Mallocs"`
	} `json:"memstats"`
	// Megaws is megaws's server.Stats.
	Megaws *struct {
		PingsSent      *int64 `json:"PingsSent"`
		PongsIn        *int64 `json:"PongsIn"`
		ClosesAnswered *int64 `json:"ClosesAnswered"`
		CloseTimeouts  *int64 `json:"CloseTimeouts"`
	} `json:"megaws"`
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

// ServingPIDs returns the processes that hold connections: the workers
// when the main process is a --workers parent (parent is then its PID),
// otherwise the main process alone (parent 0).
func (s *Server) ServingPIDs() (parent int, serving []int) {
	pids := s.PIDs()
	if len(pids) > 1 {
		return pids[0], pids[1:]
	}
	return 0, pids
}

// TreeCPU returns the CPU time of the server's process tree, workers that
// have exited and been waited for included, so that it does not fall back
// while a graceful stop ends the workers one by one.
func (s *Server) TreeCPU() time.Duration {
	d := s.CPU()
	c, _ := ProcChildrenCPU(s.PID())
	return d + c
}

// ExitCPU returns, once the server has exited, the CPU time of its whole
// process tree (the main process's rusage, which includes the workers it
// waited for).
func (s *Server) ExitCPU() (time.Duration, bool) {
	if !s.Exited() || s.cmd.ProcessState == nil {
		return 0, false
	}
	ps := s.cmd.ProcessState
	return ps.UserTime() + ps.SystemTime(), true
}

// Mem returns the memory of the server's processes (ReadProcMem), summed,
// and of each of them, main process first.
func (s *Server) Mem() (total ProcMem, each []ProcMem) {
	for _, p := range s.PIDs() {
		m, err := ReadProcMem(p)
		if err != nil {
			continue
		}
		total.Add(m)
		each = append(each, m)
	}
	return total, each
}

// Terminate sends SIGTERM to the server's main process, as a supervisor
// stopping it would (a --workers parent forwards it to every worker), and
// returns when it was sent. Done is closed when the process has exited,
// ExitTime tells when.
func (s *Server) Terminate() (time.Time, error) {
	t := time.Now()
	return t, s.cmd.Process.Signal(syscall.SIGTERM)
}

// Done is closed when the server's main process has exited, which a
// --workers parent does after its last worker.
func (s *Server) Done() <-chan struct{} { return s.done }

// ExitCode returns the server's exit status once it has exited: -1 before,
// or when a signal ended it.
func (s *Server) ExitCode() int {
	if !s.Exited() || s.cmd.ProcessState == nil {
		return -1
	}
	return s.cmd.ProcessState.ExitCode()
}

// ExitTime returns when the server's main process was seen to exit; zero
// before.
func (s *Server) ExitTime() time.Time {
	if !s.Exited() {
		return time.Time{}
	}
	return s.exited
}

// StoppedLines returns the lines megaws serve logged on stderr after a
// graceful stop ("msg=stopped ..."), one per process that held
// connections, in the order they came. The server must run with
// Env.LogLevel "info" or "debug" for them to be logged.
func (s *Server) StoppedLines() []string { return s.stopped.Lines() }

// HeapProfile fetches the heap profile of the process behind admin
// address i in the legacy text format (debug=1), after a garbage
// collection, so that it holds only live objects.
func (s *Server) HeapProfile(i int) ([]byte, error) {
	resp, err := profileClient.Get("http://" + s.Admin[i] + "/debug/pprof/heap?debug=1&gc=1")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: heap profile: %s", s.Admin[i], resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 64<<20))
}

var profileClient = &http.Client{Timeout: 30 * time.Second}

// lineCollector keeps the lines written to it that contain match.
type lineCollector struct {
	match   string
	mu      sync.Mutex
	partial []byte
	lines   []string
}

func (l *lineCollector) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	rest := l.partial
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		if line := string(rest[:i]); strings.Contains(line, l.match) {
			l.lines = append(l.lines, line)
		}
		rest = rest[i+1:]
	}
	if len(rest) > 64<<10 {
		rest = nil // not a log line of ours
	}
	l.partial = append(l.partial[:0], rest...)
	return len(p), nil
}

// Lines returns the matching lines seen so far.
func (l *lineCollector) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// startListening starts cmd (SIGTERM if this process dies) and returns a
// channel that receives the address of its first "listening on ADDR" line
// on stdout; exited runs once the process has exited.
func startListening(cmd *exec.Cmd, name string, exited func()) (<-chan string, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil && !sent {
				listening <- m[1]
				sent = true
			}
		}
		_ = cmd.Wait()
		exited()
	}()
	return listening, nil
}
