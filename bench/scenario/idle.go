package scenario

import (
	"context"
	"fmt"
	"sort"
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
// Sample fraction of the connections, then close them all in order.
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
}

// IdlePoint is the server's memory with Conns idle connections open.
type IdlePoint struct {
	Conns          int64   `json:"conns"`
	ServerRSS      int64   `json:"server_rss"`
	HeapInuse      int64   `json:"heap_inuse"` // -1 when the server does not publish it
	Goroutines     int64   `json:"goroutines"` // -1 when the server does not publish it
	ServerConns    int64   `json:"server_conns"`
	Kernel         Kernel  `json:"kernel"`
	ClientRSS      int64   `json:"client_rss"`
	UserPerConn    float64 `json:"user_bytes_per_conn"`   // server RSS growth / Conns
	HeapPerConn    float64 `json:"heap_bytes_per_conn"`   // heap-in-use growth / Conns
	KernelPerConn  float64 `json:"kernel_bytes_per_conn"` // Slab growth / Conns: both sockets of a loopback connection, client side included
	SockMemPerConn float64 `json:"sockmem_bytes_per_conn"`
	At             float64 `json:"at_seconds"`
}

// IdleResult is what RunIdle measured.
type IdleResult struct {
	Config           IdleConfig       `json:"config"`
	Processes        int              `json:"client_processes"`
	ServerProcesses  int              `json:"server_processes"`
	Base             IdlePoint        `json:"base"`
	Points           []IdlePoint      `json:"points"`
	AfterHold        IdlePoint        `json:"after_hold"`
	EstablishSeconds float64          `json:"establish_seconds"`
	EstablishRate    float64          `json:"establish_rate"`
	HeldSeconds      float64          `json:"held_seconds"`
	OpenAfterHold    int64            `json:"open_after_hold"`
	Sample           *SampleResult    `json:"sample,omitempty"`
	TeardownSeconds  float64          `json:"teardown_seconds"`
	ServerConnsAfter int64            `json:"server_conns_after_teardown"`
	Counters         loop.Counters    `json:"counters"`
	Errors           map[string]int64 `json:"errors,omitempty"`
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

// RunIdle runs an idle scenario against srv (an echo server).
func RunIdle(ctx context.Context, srv *Server, cfg IdleConfig, opt IdleOptions) (*IdleResult, error) {
	if cfg.RampTimeout <= 0 {
		cfg.RampTimeout = 10 * time.Minute
	}
	procs := cfg.Processes
	if procs <= 0 && cfg.Conns > MaxConnsPerProcess {
		procs = (cfg.Conns + MaxConnsPerProcess - 1) / MaxConnsPerProcess
	}
	var f fleet
	defer func() { f.each(func(a agent) { a.Stop() }) }()
	if procs <= 0 {
		a, err := NewAgent(srv.Addr, opt.Load)
		if err != nil {
			return nil, err
		}
		f = fleet{a}
	} else {
		if len(opt.Self) == 0 {
			return nil, fmt.Errorf("idle: %d connections need agent processes, and no command to start them", cfg.Conns)
		}
		for i := range procs {
			a, err := startRemoteAgent(opt.Self, srv.Addr, i*37, opt.Load, opt.AgentCPUs)
			if err != nil {
				return nil, fmt.Errorf("idle: start agent %d: %w", i, err)
			}
			f = append(f, a)
		}
	}
	r := &IdleResult{Config: cfg, Processes: max(procs, 0), ServerProcesses: len(srv.PIDs())}
	p := newProgress(opt.Progress)
	measure := func(n int64, t0 time.Time) IdlePoint {
		v := srv.Vars()
		pt := IdlePoint{Conns: n, ServerRSS: srv.RSS(), HeapInuse: v.HeapInuse, Goroutines: v.Goroutines, ServerConns: v.Connections, Kernel: ReadKernel(), ClientRSS: f.rss(), At: time.Since(t0).Seconds()}
		if n > 0 {
			b := r.Base
			pt.UserPerConn = float64(pt.ServerRSS-b.ServerRSS) / float64(n)
			if pt.HeapInuse >= 0 && b.HeapInuse >= 0 {
				pt.HeapPerConn = float64(pt.HeapInuse-b.HeapInuse) / float64(n)
			}
			pt.KernelPerConn = float64(pt.Kernel.SlabBytes-b.Kernel.SlabBytes) / float64(n)
			pt.SockMemPerConn = float64(pt.Kernel.SockMemBytes-b.Kernel.SockMemBytes) / float64(n)
		}
		return pt
	}
	start := time.Now()
	if err := sleepCtx(ctx, cfg.Settle); err != nil {
		return r, err
	}
	r.Base = measure(0, start)

	cps := append([]int(nil), cfg.Checkpoints...)
	sort.Ints(cps)
	for len(cps) > 0 && cps[len(cps)-1] >= cfg.Conns {
		cps = cps[:len(cps)-1]
	}
	cps = append(cps, cfg.Conns)
	var dialing time.Duration
	have := 0
	label := fmt.Sprintf("idle %s", srv.Target.Name)
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
			r.Counters, r.Errors = f.Counters(), f.Errors()
			return r, err
		}
		if err := sleepCtx(ctx, cfg.Settle); err != nil {
			return r, err
		}
		c := f.Counters()
		pt := measure(c.Open, start)
		r.Points = append(r.Points, pt)
		p.show(true, "%s: %s open: server RSS %.1f MiB (%.0f B/conn), kernel %.0f B/conn", label, commas(c.Open), float64(pt.ServerRSS)/(1<<20), pt.UserPerConn, pt.KernelPerConn)
		p.done()
	}
	r.EstablishSeconds = dialing.Seconds()
	if r.EstablishSeconds > 0 {
		r.EstablishRate = float64(f.Counters().Established) / r.EstablishSeconds
	}

	holdStart := time.Now()
	for end := holdStart.Add(cfg.Hold); time.Now().Before(end); {
		if err := sleepCtx(ctx, min(200*time.Millisecond, time.Until(end))); err != nil {
			return r, err
		}
		c := f.Counters()
		p.show(false, "%s: holding %s open, %d dropped, %d server pings answered, %.0fs of %.0fs", label, commas(c.Open), c.Dropped, c.Pings, time.Since(holdStart).Seconds(), cfg.Hold.Seconds())
	}
	p.done()
	r.HeldSeconds = time.Since(holdStart).Seconds()
	c := f.Counters()
	r.OpenAfterHold = c.Open
	r.AfterHold = measure(c.Open, start)

	if cfg.Sample > 0 {
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
		p.show(true, "%s: sample: %d of %d connections echoed a verified message (p50 %d µs, p99 %d µs)", label, s.OK, s.Sampled, s.Latency.P50, s.Latency.P99)
		p.done()
		if serr != nil {
			return r, serr
		}
	}

	t := time.Now()
	p.show(true, "%s: closing %s connections", label, commas(f.Counters().Open))
	p.done()
	f.each(func(a agent) { a.CloseAll(2 * time.Minute) })
	r.TeardownSeconds = time.Since(t).Seconds()
	r.ServerConnsAfter = srv.WaitConns(0, 30*time.Second)
	r.Counters, r.Errors = f.Counters(), f.Errors()
	if r.Sample != nil && r.Sample.Failed > 0 {
		return r, fmt.Errorf("idle: %d of %d sampled connections did not echo", r.Sample.Failed, r.Sample.Sampled)
	}
	if r.Counters.Closed+r.Counters.CloseTimeouts != r.Counters.Established && r.Counters.Errors() == 0 {
		return r, fmt.Errorf("idle: %d of %d connections closed in order", r.Counters.Closed, r.Counters.Established)
	}
	return r, check(r.Counters, r.Errors)
}
