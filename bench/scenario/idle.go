package scenario

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/megaws/megaws/bench/loadgen"
	"github.com/megaws/megaws/client/loop"
)

// MaxConnsPerProcess is how many client connections one load-generator
// process holds, below this machine's 20,000 open-files cap.
const MaxConnsPerProcess = 18_000

// IdleConfig is an idle-connections run: ramp to Conns (stopping at each of
// Checkpoints to measure), hold for Hold, echo a verified message on a
// Sample fraction of the connections, then end them as Teardown says.
type IdleConfig struct {
	Conns       int           `json:"conns"`
	Checkpoints []int         `json:"checkpoints,omitempty"`
	Hold        time.Duration `json:"hold"`
	Settle      time.Duration `json:"settle"` // wait before each measurement
	Sample      float64       `json:"sample"`
	// Processes is the number of load-generator processes; 0 runs in this
	// process up to MaxConnsPerProcess and in child processes of at most
	// MaxConnsPerProcess connections each above.
	Processes   int           `json:"processes"`
	RampTimeout time.Duration `json:"ramp_timeout"`
	// Teardown is how the run ends: TeardownClose (the default) has every
	// client close its connections (1000) and wait for the server's
	// answer; TeardownSIGTERM sends the server SIGTERM, as a supervisor
	// stopping it would, and the clients answer the close frames it sends
	// (megaws, run with LogLevel info so that it logs its "stopped" lines).
	Teardown string `json:"teardown,omitempty"`
	// StopWait bounds the wait for the server to exit after SIGTERM;
	// default 2 minutes.
	StopWait time.Duration `json:"stop_wait,omitempty"`
	// SampleEvery is the interval of the resource samples taken through
	// the run (server and client CPU, server RSS and PSS); default 2 s.
	SampleEvery time.Duration `json:"sample_every,omitempty"`
	// HeapProfile fetches the heap profile of every server process before
	// the first connection and at the end of the hold, for HeapBreakdown.
	HeapProfile bool `json:"heap_profile,omitempty"`
	// CloseWithin is the mark Teardown.WithinCount counts close handshakes
	// against; default 30 s.
	CloseWithin time.Duration `json:"close_within,omitempty"`
	// MinCloseHandshakes, when above 0, fails the run if fewer than this
	// fraction of the connections open at the teardown completed their
	// close handshake within CloseWithin (0.99: 99%).
	MinCloseHandshakes float64 `json:"min_close_handshakes,omitempty"`
	// MinPingRounds, when above 0, fails the run if the server sent fewer
	// keepalive pings per connection over the hold (or publishes no
	// count of them).
	MinPingRounds float64 `json:"min_ping_rounds,omitempty"`
}

// The ways an idle run can end (IdleConfig.Teardown).
const (
	TeardownClose   = "close"
	TeardownSIGTERM = "sigterm"
)

// IdlePoint is the server's memory with Conns idle connections open.
type IdlePoint struct {
	Conns          int64   `json:"conns"`
	ServerRSS      int64   `json:"server_rss"`
	ServerMem      ProcMem `json:"server_mem,omitzero"` // smaps_rollup of the server's processes, summed
	HeapInuse      int64   `json:"heap_inuse"`          // -1 when the server does not publish it
	Goroutines     int64   `json:"goroutines"`          // -1 when the server does not publish it
	ServerConns    int64   `json:"server_conns"`
	Kernel         Kernel  `json:"kernel"`
	ClientRSS      int64   `json:"client_rss"`
	UserPerConn    float64 `json:"user_bytes_per_conn"`               // server RSS growth / Conns
	PSSPerConn     float64 `json:"pss_bytes_per_conn,omitempty"`      // server PSS growth / Conns
	PssAnonPerConn float64 `json:"pss_anon_bytes_per_conn,omitempty"` // server anonymous PSS growth / Conns
	HeapPerConn    float64 `json:"heap_bytes_per_conn"`               // heap-in-use growth / Conns
	KernelPerConn  float64 `json:"kernel_bytes_per_conn"`             // Slab growth / Conns: both sockets of a loopback connection, client side included
	SockMemPerConn float64 `json:"sockmem_bytes_per_conn"`
	At             float64 `json:"at_seconds"`
}

// IdleResult is what RunIdle measured.
type IdleResult struct {
	Config           IdleConfig    `json:"config"`
	Processes        int           `json:"client_processes"`
	ServerProcesses  int           `json:"server_processes"`
	ServerCommand    []string      `json:"server_command,omitempty"`
	Base             IdlePoint     `json:"base"`
	Fixed            *FixedCost    `json:"fixed_per_process,omitempty"`
	Points           []IdlePoint   `json:"points"`
	AfterHold        IdlePoint     `json:"after_hold"`
	EstablishSeconds float64       `json:"establish_seconds"`
	EstablishRate    float64       `json:"establish_rate"`
	Hold             time.Duration `json:"hold"` // how long the connections were held, ns
	HeldSeconds      float64       `json:"held_seconds"`
	// HoldServerCPUCores is the CPU time of every server process over the
	// hold (utime+stime) divided by the hold; HoldClientCPUCores the same
	// for the load generator's processes.
	HoldServerCPUCores float64        `json:"hold_server_cpu_cores,omitempty"`
	HoldClientCPUCores float64        `json:"hold_client_cpu_cores,omitempty"`
	Keepalive          *Keepalive     `json:"keepalive,omitempty"`
	OpenAfterHold      int64          `json:"open_after_hold"`
	Heap               *HeapBreakdown `json:"heap,omitempty"`
	Sample             *SampleResult  `json:"sample,omitempty"`
	TeardownSeconds    float64        `json:"teardown_seconds"`
	Teardown           *Teardown      `json:"teardown,omitempty"`
	ServerConnsAfter   int64          `json:"server_conns_after_teardown"`
	// Failures counts the connections that failed to open or were lost
	// (load-generator errors: failed dials, drops, aborts, protocol
	// errors). A SIGTERM teardown ends every connection from the server's
	// side: how those ended is in Teardown (CloseHandshakesCompleted,
	// Unclean), and only failed dials, aborts and protocol errors during it
	// count here.
	Failures  int64            `json:"failures"`
	Counters  loop.Counters    `json:"counters"`
	Errors    map[string]int64 `json:"errors,omitempty"`
	Resources []ResourceSample `json:"resources,omitempty"`
	Phases    []PhaseMark      `json:"phases,omitempty"`
}

// Keepalive is what the server's keepalive cost while the connections
// were held: server counts summed over its processes (read from each
// one's /debug/vars at the start and the end of the hold) and the load
// generator's answers.
type Keepalive struct {
	PingsSent     int64 `json:"pings_sent"`
	PongsReceived int64 `json:"pongs_received"`
	// ClientPongsSent counts the pings the load generator answered with a
	// pong while holding (every ping on an open connection is answered).
	ClientPongsSent int64   `json:"client_pongs_sent"`
	PingsPerConn    float64 `json:"pings_per_conn"`
	// ServerCPUPerPing is the server's CPU over the hold divided by the
	// pings sent (µs): everything an idle server does, pings and pongs
	// being nearly all of it. ClientCPUPerPong is the same for the load
	// generator, its event-loop wake-ups included.
	ServerCPUPerPing float64 `json:"server_cpu_us_per_ping"`
	ClientCPUPerPong float64 `json:"client_cpu_us_per_pong"`
	// PingsSentTotal and PongsReceivedTotal count from the server's start
	// to the end of the hold.
	PingsSentTotal     int64 `json:"pings_sent_total"`
	PongsReceivedTotal int64 `json:"pongs_received_total"`
	// Unanswered counts the pings sent up to the end of the hold whose
	// pong had not come back up to 15 s later, per server process: 0 when
	// every ping was answered.
	Unanswered int64 `json:"unanswered"`
	// Processes is how many server processes published the counts.
	Processes int `json:"processes"`
}

// FixedCost is the memory of a server process before it holds any
// connection: what each further worker process costs.
type FixedCost struct {
	Processes int     `json:"processes"` // processes that serve connections
	PSS       float64 `json:"pss"`       // mean over them, bytes
	PssAnon   float64 `json:"pss_anon"`
	PssFile   float64 `json:"pss_file"`
	RSS       float64 `json:"rss"`
	// Parent is the --workers parent process, which holds no connection.
	Parent *ProcMem `json:"parent,omitempty"`
}

// fleet is the set of agents of one run.
type fleet []agent

func (f fleet) Counters() loop.Counters {
	var c loop.Counters
	for _, a := range f {
		c.Add(a.Counters())
	}
	return c
}

func (f fleet) Errors() map[string]int64 {
	m := map[string]int64{}
	for _, a := range f {
		for k, v := range a.Errors() {
			m[k] += v
		}
	}
	return m
}

// ServerCloses sums the agents' ServerCloses.
func (f fleet) ServerCloses() map[string]int64 {
	m := map[string]int64{}
	for _, a := range f {
		for k, v := range a.ServerCloses() {
			m[k] += v
		}
	}
	return m
}

// refresh brings every agent's figures up to date (agent processes send
// theirs every 250 ms otherwise).
func (f fleet) refresh() { f.each(func(a agent) { a.Refresh() }) }

func (f fleet) each(fn func(a agent)) {
	var wg sync.WaitGroup
	for _, a := range f {
		wg.Add(1)
		go func() { defer wg.Done(); fn(a) }()
	}
	wg.Wait()
}

func (f fleet) rss() int64 {
	n := SelfRSS()
	for _, a := range f {
		n += a.RSS()
	}
	return n
}

// share is agent i's part of n spread over k agents.
func share(n, k, i int) int {
	s := n / k
	if i < n%k {
		s++
	}
	return s
}

// IdleOptions are what RunIdle needs beyond the scenario: how to start
// agent processes.
type IdleOptions struct {
	Load
	// Self is the command line that runs megaws-bench (argv[0] and any
	// leading arguments); "agent ..." is appended for child processes.
	Self []string
	// AgentCPUs pins agent processes with taskset; empty for none.
	AgentCPUs []int
}

// idleRun is one RunIdle in progress.
type idleRun struct {
	srv   *Server
	cfg   IdleConfig
	f     fleet
	r     *IdleResult
	p     *progress
	label string
	start time.Time
	procs serverProcs
	smp   *sampler
}

// RunIdle runs an idle scenario against srv (an echo server): it ramps to
// cfg.Conns, holds them while sampling the processes' CPU and memory,
// counts the server's keepalive pings and their pongs over the hold,
// echoes on a sample, and ends the connections as cfg.Teardown says.
func RunIdle(ctx context.Context, srv *Server, cfg IdleConfig, opt IdleOptions) (*IdleResult, error) {
	if cfg.RampTimeout <= 0 {
		cfg.RampTimeout = 10 * time.Minute
	}
	if cfg.Teardown == "" {
		cfg.Teardown = TeardownClose
	}
	if cfg.Teardown != TeardownClose && cfg.Teardown != TeardownSIGTERM {
		return nil, fmt.Errorf("idle: teardown %q: want %s or %s", cfg.Teardown, TeardownClose, TeardownSIGTERM)
	}
	if cfg.StopWait <= 0 {
		cfg.StopWait = 2 * time.Minute
	}
	if cfg.SampleEvery <= 0 {
		cfg.SampleEvery = 2 * time.Second
	}
	if cfg.CloseWithin <= 0 {
		cfg.CloseWithin = 30 * time.Second
	}
	procs := cfg.Processes
	if procs <= 0 && cfg.Conns > MaxConnsPerProcess {
		procs = (cfg.Conns + MaxConnsPerProcess - 1) / MaxConnsPerProcess
	}
	run := &idleRun{srv: srv, cfg: cfg, p: newProgress(opt.Progress), label: fmt.Sprintf("idle %s", srv.Target.Name), start: time.Now()}
	defer func() { run.f.each(func(a agent) { a.Stop() }) }()
	if procs <= 0 {
		a, err := NewAgent(srv.Addr, opt.Load)
		if err != nil {
			return nil, err
		}
		run.f = fleet{a}
	} else {
		if len(opt.Self) == 0 {
			return nil, fmt.Errorf("idle: %d connections need agent processes, and no command to start them", cfg.Conns)
		}
		for i := range procs {
			a, err := startRemoteAgent(opt.Self, srv.Addr, i*37, opt.Load, opt.AgentCPUs)
			if err != nil {
				return nil, fmt.Errorf("idle: start agent %d: %w", i, err)
			}
			run.f = append(run.f, a)
		}
	}
	run.procs = newServerProcs(srv)
	run.r = &IdleResult{Config: cfg, Processes: max(procs, 0), ServerProcesses: len(run.procs.pids), ServerCommand: srv.Cmd}
	run.smp = startSampler(run.procs, run.f, run.start, cfg.SampleEvery)
	err := run.run(ctx)
	r := run.r
	r.Resources, r.Phases = run.smp.finish()
	if r.Counters == (loop.Counters{}) {
		r.Counters, r.Errors = run.f.Counters(), run.f.Errors()
	}
	return r, err
}

func (run *idleRun) measure(n int64) IdlePoint {
	srv, r := run.srv, run.r
	v := srv.Vars()
	mem, _ := run.procs.mem()
	pt := IdlePoint{Conns: n, ServerRSS: mem.RSS, ServerMem: mem, HeapInuse: v.HeapInuse, Goroutines: v.Goroutines, ServerConns: v.Connections, Kernel: ReadKernel(), ClientRSS: run.f.rss(), At: time.Since(run.start).Seconds()}
	if pt.ServerRSS == 0 { // no smaps_rollup
		pt.ServerRSS = srv.RSS()
	}
	if n > 0 {
		b := r.Base
		per := func(x int64) float64 { return float64(x) / float64(n) }
		pt.UserPerConn = per(pt.ServerRSS - b.ServerRSS)
		pt.PSSPerConn = per(pt.ServerMem.PSS - b.ServerMem.PSS)
		pt.PssAnonPerConn = per(pt.ServerMem.PssAnon - b.ServerMem.PssAnon)
		if pt.HeapInuse >= 0 && b.HeapInuse >= 0 {
			pt.HeapPerConn = per(pt.HeapInuse - b.HeapInuse)
		}
		pt.KernelPerConn = per(pt.Kernel.SlabBytes - b.Kernel.SlabBytes)
		pt.SockMemPerConn = per(pt.Kernel.SockMemBytes - b.Kernel.SockMemBytes)
	}
	return pt
}

// fixedCost reads the memory of each server process before any
// connection: the workers' mean, and the --workers parent apart.
func (run *idleRun) fixedCost() *FixedCost {
	pids := run.procs.pids
	fc := &FixedCost{}
	serving := pids
	if len(pids) > 1 {
		if m, err := ReadProcMem(pids[0]); err == nil {
			fc.Parent = &m
		}
		serving = pids[1:]
	}
	for _, p := range serving {
		m, err := ReadProcMem(p)
		if err != nil {
			continue
		}
		fc.Processes++
		fc.PSS += float64(m.PSS)
		fc.PssAnon += float64(m.PssAnon)
		fc.PssFile += float64(m.PssFile)
		fc.RSS += float64(m.RSS)
	}
	if fc.Processes == 0 {
		return nil
	}
	n := float64(fc.Processes)
	fc.PSS, fc.PssAnon, fc.PssFile, fc.RSS = fc.PSS/n, fc.PssAnon/n, fc.PssFile/n, fc.RSS/n
	return fc
}

// heapProfiles fetches the heap profile of every server process that has
// an admin address, four at a time; nil where it failed.
func (run *idleRun) heapProfiles() ([]*heapProfile, error) {
	out := make([]*heapProfile, len(run.srv.Admin))
	var mu sync.Mutex
	var first error
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i := range run.srv.Admin {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			b, err := run.srv.HeapProfile(i)
			var hp *heapProfile
			if err == nil {
				hp, err = parseHeapProfile(b)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if first == nil {
					first = err
				}
				return
			}
			out[i] = hp
		}()
	}
	wg.Wait()
	return out, first
}

func (run *idleRun) run(ctx context.Context) error {
	f, cfg, r, p, label := run.f, run.cfg, run.r, run.p, run.label
	if err := sleepCtx(ctx, cfg.Settle); err != nil {
		return err
	}
	// The fixed cost first, then the heap profiles (which leave the
	// profiler's buffers behind), then the base the growth per connection
	// is counted from.
	r.Fixed = run.fixedCost()
	var baseHeap []*heapProfile
	var heapErr error
	if cfg.HeapProfile {
		baseHeap, heapErr = run.heapProfiles()
	}
	r.Base = run.measure(0)

	run.smp.mark(PhaseRamp)
	cps := append([]int(nil), cfg.Checkpoints...)
	sort.Ints(cps)
	for len(cps) > 0 && cps[len(cps)-1] >= cfg.Conns {
		cps = cps[:len(cps)-1]
	}
	cps = append(cps, cfg.Conns)
	var dialing time.Duration
	have := 0
	for _, cp := range cps {
		if cp <= have {
			continue
		}
		for i, a := range f {
			if d := share(cp, len(f), i) - share(have, len(f), i); d > 0 {
				a.Dial(d)
			}
		}
		took, err := waitEstablished(ctx, f, int64(cp), cfg.RampTimeout, p, label)
		dialing += took
		have = cp
		if err != nil {
			return run.fail(err)
		}
		if err := sleepCtx(ctx, cfg.Settle); err != nil {
			return err
		}
		c := f.Counters()
		pt := run.measure(c.Open)
		r.Points = append(r.Points, pt)
		p.show(true, "%s: %s open: server RSS %.1f MiB (%.0f B/conn, PSS %.0f B/conn), kernel %.0f B/conn", label, commas(c.Open), float64(pt.ServerRSS)/(1<<20), pt.UserPerConn, pt.PSSPerConn, pt.KernelPerConn)
		p.done()
	}
	r.EstablishSeconds = dialing.Seconds()
	if r.EstablishSeconds > 0 {
		r.EstablishRate = float64(f.Counters().Established) / r.EstablishSeconds
	}

	if err := run.hold(ctx); err != nil {
		return err
	}
	c := f.Counters()
	r.OpenAfterHold = c.Open
	r.AfterHold = run.measure(c.Open)
	if cfg.HeapProfile {
		r.Heap = run.heapBreakdown(baseHeap, heapErr)
	}

	if cfg.Sample > 0 {
		run.smp.mark(PhaseSample)
		if err := run.sample(); err != nil {
			return err
		}
	}

	run.smp.mark(PhaseTeardown)
	beforeTeardown := f.Counters()
	var err error
	if cfg.Teardown == TeardownSIGTERM {
		err = run.teardownSIGTERM(ctx)
	} else {
		err = run.teardownClose()
	}
	f.refresh()
	r.Counters, r.Errors = f.Counters(), f.Errors()
	if err != nil {
		return err
	}
	return run.verdict(beforeTeardown)
}

// fail records the counters of a run that ended early.
func (run *idleRun) fail(err error) error {
	run.r.Counters, run.r.Errors = run.f.Counters(), run.f.Errors()
	run.r.Failures = run.r.Counters.Errors()
	return err
}

// hold holds the connections for cfg.Hold and measures what that cost:
// CPU of the server and the clients, keepalive pings and pongs.
func (run *idleRun) hold(ctx context.Context) error {
	srv, f, cfg, r, p, label := run.srv, run.f, run.cfg, run.r, run.p, run.label
	run.smp.mark(PhaseHold)
	f.refresh()
	c0 := f.Counters()
	v0 := srv.eachVars()
	// CPU is read after the vars at the start and before them at the end,
	// so that the window holds none of the requests for them.
	s0, cl0 := run.procs.cpu(), f.cpu()
	holdStart := time.Now()
	for end := holdStart.Add(cfg.Hold); time.Now().Before(end); {
		if err := sleepCtx(ctx, min(200*time.Millisecond, time.Until(end))); err != nil {
			return err
		}
		c := f.Counters()
		p.show(false, "%s: holding %s open, %d dropped, %d server pings answered, %.0fs of %.0fs", label, commas(c.Open), c.Dropped, c.Pings-c0.Pings, time.Since(holdStart).Seconds(), cfg.Hold.Seconds())
	}
	s1, cl1 := run.procs.cpu(), f.cpu()
	held := time.Since(holdStart)
	v1 := srv.eachVars()
	f.refresh()
	c1 := f.Counters()
	p.done()
	r.Hold, r.HeldSeconds = held, held.Seconds()
	r.HoldServerCPUCores = float64(s1-s0) / float64(held)
	r.HoldClientCPUCores = float64(cl1-cl0) / float64(held)
	r.Keepalive = keepaliveOf(v0, v1, c1.Pings-c0.Pings, c1.Open, s1-s0, cl1-cl0)
	if k := r.Keepalive; k != nil {
		k.Unanswered = run.unanswered(v1)
		p.show(true, "%s: held %.0fs: %s pings sent, %s pongs received, %d unanswered, %.1f per connection; server %.3f cores (%.2f µs/ping), clients %.3f cores",
			label, held.Seconds(), commas(k.PingsSent), commas(k.PongsReceived), k.Unanswered, k.PingsPerConn, r.HoldServerCPUCores, k.ServerCPUPerPing, r.HoldClientCPUCores)
		p.done()
	}
	return nil
}

// keepaliveOf is the keepalive figures of a hold from the server's
// counters at its start (v0) and end (v1), per process, the pings the
// clients answered, the connections open and the CPU both sides used;
// nil when the server publishes no keepalive counts.
func keepaliveOf(v0, v1 []*rawVars, clientPongs, conns int64, serverCPU, clientCPU time.Duration) *Keepalive {
	k := &Keepalive{ClientPongsSent: clientPongs}
	for i := range v1 {
		if i >= len(v0) || v0[i] == nil || v1[i] == nil || v0[i].Megaws == nil || v1[i].Megaws == nil {
			continue
		}
		a, b := v0[i].Megaws, v1[i].Megaws
		if a.PingsSent == nil || b.PingsSent == nil || a.PongsIn == nil || b.PongsIn == nil {
			continue
		}
		k.Processes++
		k.PingsSent += *b.PingsSent - *a.PingsSent
		k.PongsReceived += *b.PongsIn - *a.PongsIn
		k.PingsSentTotal += *b.PingsSent
		k.PongsReceivedTotal += *b.PongsIn
	}
	if k.Processes == 0 {
		return nil
	}
	if conns > 0 {
		k.PingsPerConn = float64(k.PingsSent) / float64(conns)
	}
	if k.PingsSent > 0 {
		k.ServerCPUPerPing = float64(serverCPU.Microseconds()) / float64(k.PingsSent)
	}
	if clientPongs > 0 {
		k.ClientCPUPerPong = float64(clientCPU.Microseconds()) / float64(clientPongs)
	}
	return k
}

// unanswered waits up to 15 s for every server process to have received
// as many pongs as it had sent pings at the end of the hold (v1), and
// returns how many were missing at the last look.
func (run *idleRun) unanswered(v1 []*rawVars) int64 {
	deadline := time.Now().Add(15 * time.Second)
	cur := v1
	for {
		n := missingPongs(v1, cur)
		if n == 0 || time.Now().After(deadline) {
			return n
		}
		time.Sleep(500 * time.Millisecond)
		cur = run.srv.eachVars()
	}
}

// missingPongs sums, over processes, the pings sent by the time of sent
// that had no pong by the time of now (a process that did not answer now
// counts as it stood in sent).
func missingPongs(sent, now []*rawVars) int64 {
	var n int64
	for i, s := range sent {
		if s == nil || s.Megaws == nil || s.Megaws.PingsSent == nil || s.Megaws.PongsIn == nil {
			continue
		}
		pongs := *s.Megaws.PongsIn
		if i < len(now) && now[i] != nil && now[i].Megaws != nil && now[i].Megaws.PongsIn != nil {
			pongs = *now[i].Megaws.PongsIn
		}
		n += max(0, *s.Megaws.PingsSent-pongs)
	}
	return n
}

// heapBreakdown fetches the heap profiles at the hold and compares them
// with those before the first connection, over the processes both exist
// for.
func (run *idleRun) heapBreakdown(base []*heapProfile, baseErr error) *HeapBreakdown {
	hold, err := run.heapProfiles()
	vars := run.srv.eachVars()
	var b, h []*heapProfile
	var conns int64
	for i := range hold {
		if i >= len(base) || base[i] == nil || hold[i] == nil {
			continue
		}
		b, h = append(b, base[i]), append(h, hold[i])
		if i < len(vars) && vars[i] != nil && vars[i].Connections != nil {
			conns += *vars[i].Connections
		}
	}
	hb := newHeapBreakdown(b, h, conns)
	var msgs []string
	for _, e := range []error{baseErr, err} {
		if e != nil {
			msgs = append(msgs, e.Error())
		}
	}
	if len(h) < len(run.srv.Admin) {
		msgs = append(msgs, fmt.Sprintf("profiles of %d of %d processes", len(h), len(run.srv.Admin)))
	}
	hb.Error = strings.Join(msgs, "; ")
	if len(h) > 0 {
		run.p.show(true, "%s: live heap %.0f B/conn over %d processes (%s sampled objects)", run.label, hb.PerConn, hb.Processes, commas(hb.Samples))
		run.p.done()
	}
	return hb
}

func (run *idleRun) sample() error {
	cfg, f, r, p := run.cfg, run.f, run.r, run.p
	var mu sync.Mutex
	s := SampleResult{}
	hist := loadgen.NewHistogram()
	var serr error
	f.each(func(a agent) {
		sr, err := a.Sample(cfg.Sample, 20*time.Second)
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			serr = err
		}
		s.Sampled += sr.Sampled
		s.OK += sr.OK
		s.Failed += sr.Failed
		if sr.Hist != nil {
			hist.Merge(hdrhistogram.Import(sr.Hist))
		}
	})
	s.Latency = LatencyOf(hist)
	r.Sample = &s
	p.show(true, "%s: sample: %d of %d connections echoed a verified message (p50 %d µs, p99 %d µs)", run.label, s.OK, s.Sampled, s.Latency.P50, s.Latency.P99)
	p.done()
	return serr
}

// teardownClose has every client close its connections (1000) and wait
// for the server's answers, counting those that came within
// cfg.CloseWithin.
func (run *idleRun) teardownClose() error {
	f, cfg, r, p := run.f, run.cfg, run.r, run.p
	f.refresh()
	c0 := f.Counters()
	td := &Teardown{Mode: TeardownClose, Conns: c0.Open, ServerConns: run.srv.Vars().Connections, Within: cfg.CloseWithin, ServerExit: 0}
	p.show(true, "%s: closing %s connections", run.label, commas(c0.Open))
	p.done()
	t := time.Now()
	stop := make(chan struct{})
	watched := make(chan int64, 1)
	go func() { // the closes completed by the within mark
		var within int64
		defer func() { watched <- within }()
		mark := time.NewTimer(cfg.CloseWithin)
		defer mark.Stop()
		for {
			select {
			case <-stop:
				return
			case <-mark.C:
				return
			case <-time.After(100 * time.Millisecond):
				within = f.Counters().Closed - c0.Closed
			}
		}
	}()
	f.each(func(a agent) { a.CloseAll(2 * time.Minute) })
	td.Seconds = time.Since(t).Seconds()
	close(stop)
	within := <-watched
	f.refresh()
	c1 := f.Counters()
	td.CloseHandshakesCompleted = c1.Closed - c0.Closed
	td.CloseTimeouts = c1.CloseTimeouts - c0.CloseTimeouts
	td.Source = "client"
	td.WithinCount = within
	if td.Seconds <= cfg.CloseWithin.Seconds() {
		td.WithinCount = td.CloseHandshakesCompleted
	}
	td.Unclean = max(0, td.Conns-td.CloseHandshakesCompleted)
	r.Teardown, r.TeardownSeconds = td, td.Seconds
	r.ServerConnsAfter = run.srv.WaitConns(0, 30*time.Second)
	return nil
}

// teardownSIGTERM sends the server SIGTERM and follows its graceful stop:
// the clients answer its close frames; the server's counters are polled
// every second until it exits, then its "stopped" lines are read.
func (run *idleRun) teardownSIGTERM(ctx context.Context) error {
	srv, f, cfg, r, p := run.srv, run.f, run.cfg, run.r, run.p
	f.refresh()
	c0 := f.Counters()
	base := srv.eachVars()
	td := &Teardown{Mode: TeardownSIGTERM, Conns: c0.Open, ServerConns: sumConns(base), Within: cfg.CloseWithin}
	closes0 := sumMap(f.ServerCloses())
	p.show(true, "%s: SIGTERM to the server with %s connections open", run.label, commas(c0.Open))
	p.done()
	w := newStopWatch(base)
	t0, err := srv.Terminate()
	if err != nil {
		return fmt.Errorf("idle: SIGTERM: %w", err)
	}
	deadline := t0.Add(cfg.StopWait)
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
wait:
	for {
		select {
		case <-srv.Done():
			break wait
		case <-ctx.Done():
			return ctx.Err()
		case <-poll.C:
			if time.Now().After(deadline) {
				break wait
			}
			now := srv.eachVars()
			w.update(now, time.Since(t0) <= cfg.CloseWithin)
			c := f.Counters()
			p.show(false, "%s: stopping: %s close handshakes answered (server), %s connections open (clients), %.0fs", run.label, commas(w.sum(w.answered)), commas(c.Open), time.Since(t0).Seconds())
		}
	}
	p.done()
	if srv.Exited() {
		run.smp.mark(PhaseServerExit)
		td.Seconds = srv.ExitTime().Sub(t0).Seconds()
		td.ServerExit = srv.ExitCode()
	} else {
		td.Seconds = time.Since(t0).Seconds()
		td.ServerExit = -1
	}
	// The clients see the last sockets close right after the server's exit.
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		f.refresh()
		if f.Counters().Open == 0 {
			break
		}
	}
	td.ClientAnswered = sumMap(f.ServerCloses()) - closes0
	stopOutcome(td, t0, srv.StoppedLines(), w, max(len(srv.Admin), 1))
	td.Unclean = max(0, td.Conns-td.CloseHandshakesCompleted)
	r.Teardown, r.TeardownSeconds = td, td.Seconds
	r.ServerConnsAfter = 0
	if !srv.Exited() {
		r.ServerConnsAfter = srv.Vars().Connections
	}
	p.show(true, "%s: stopped in %.1fs (exit status %d): %s of %s close handshakes completed, %s within %s",
		run.label, td.Seconds, td.ServerExit, commas(td.CloseHandshakesCompleted), commas(td.Conns), commas(td.WithinCount), cfg.CloseWithin)
	p.done()
	return nil
}

// verdict decides whether the run failed once it is over: connections
// lost or failed, sampled echoes missing, pings unanswered or too few,
// close handshakes short of cfg.MinCloseHandshakes, a server that did not
// stop cleanly.
func (run *idleRun) verdict(beforeTeardown loop.Counters) error {
	r, cfg := run.r, run.cfg
	c := r.Counters
	if cfg.Teardown == TeardownSIGTERM {
		r.Failures = beforeTeardown.Errors() + (c.Failed - beforeTeardown.Failed) + (c.Aborted - beforeTeardown.Aborted) + (c.ProtocolErrors - beforeTeardown.ProtocolErrors)
	} else {
		r.Failures = c.Errors()
	}
	var errs []string
	if r.Failures > 0 {
		errs = append(errs, (&Failure{Counters: c, Errors: r.Errors}).Error())
	}
	if r.Sample != nil && r.Sample.Failed > 0 {
		errs = append(errs, fmt.Sprintf("%d of %d sampled connections did not echo", r.Sample.Failed, r.Sample.Sampled))
	}
	if k := r.Keepalive; k != nil && k.Unanswered > 0 {
		errs = append(errs, fmt.Sprintf("%d keepalive pings unanswered", k.Unanswered))
	}
	if cfg.MinPingRounds > 0 {
		switch k := r.Keepalive; {
		case k == nil:
			errs = append(errs, "the server published no keepalive counts")
		case k.PingsPerConn < cfg.MinPingRounds:
			errs = append(errs, fmt.Sprintf("%.2f keepalive pings per connection over the hold, want at least %.2f", k.PingsPerConn, cfg.MinPingRounds))
		}
	}
	if td := r.Teardown; td != nil {
		if cfg.MinCloseHandshakes > 0 && td.WithinFraction() < cfg.MinCloseHandshakes {
			errs = append(errs, fmt.Sprintf("%d of %d close handshakes completed within %s (%.2f%%, want %.0f%%)",
				td.WithinCount, td.Conns, td.Within, 100*td.WithinFraction(), 100*cfg.MinCloseHandshakes))
		}
		if td.Mode == TeardownSIGTERM && td.ServerExit != 0 {
			errs = append(errs, fmt.Sprintf("server exit status %d after SIGTERM", td.ServerExit))
		}
	}
	if cfg.Teardown == TeardownClose && c.Closed+c.CloseTimeouts != c.Established && c.Errors() == 0 {
		errs = append(errs, fmt.Sprintf("%d of %d connections closed in order", c.Closed, c.Established))
	}
	if len(errs) > 0 {
		return fmt.Errorf("idle: %s", strings.Join(errs, "; "))
	}
	return nil
}

func sumConns(vs []*rawVars) int64 {
	var n int64 = -1
	for _, v := range vs {
		if v != nil && v.Connections != nil {
			n = max(n, 0) + *v.Connections
		}
	}
	return n
}

func sumMap(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}
