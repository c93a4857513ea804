package scenario

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Teardown is how an idle run ended (IdleConfig.Teardown).
type Teardown struct {
	Mode string `json:"mode"` // TeardownClose or TeardownSIGTERM
	// Conns is how many connections were open (client side) when the
	// teardown began; ServerConns how many the server reported.
	Conns       int64 `json:"conns"`
	ServerConns int64 `json:"server_conns"`
	// CloseHandshakesCompleted counts the connections whose close
	// handshake completed: for TeardownClose, the client's close frame
	// answered by the server (counted by the clients); for
	// TeardownSIGTERM, the server's 1001 answered by the client before the
	// server closed the socket (counted by the server: the sum of its
	// processes' "stopped" log lines, or of their /debug/vars counters
	// when a line is missing; Source says which).
	CloseHandshakesCompleted int64  `json:"close_handshakes_completed"`
	Source                   string `json:"source"`
	// Within is IdleConfig.CloseWithin (30 s by default) and WithinCount
	// how many of the handshakes completed within it of the teardown's
	// start (a lower bound when it is read from counters polled every
	// second).
	Within      time.Duration `json:"within"`
	WithinCount int64         `json:"within_count"`
	// Seconds is from the teardown's start to the last connection closed
	// (TeardownSIGTERM: to the server's exit).
	Seconds float64 `json:"seconds"`
	// CloseTimeouts counts the close handshakes that did not complete in
	// time: for TeardownSIGTERM, the server's CloseTimeouts plus the
	// connections it closed at its stop deadline without an answer
	// (Conns - completed - timeouts may be connections whose answer
	// crossed the socket's close); for TeardownClose, the clients'.
	CloseTimeouts int64 `json:"close_timeouts"`
	// ClientAnswered counts the close frames from the server that the
	// clients answered (TeardownSIGTERM), by the clients' count.
	ClientAnswered int64 `json:"client_answered,omitempty"`
	// Unclean counts connections that ended without a completed close
	// handshake: Conns - CloseHandshakesCompleted, never below 0.
	Unclean int64 `json:"unclean"`
	// ServerExit is the server's exit status after SIGTERM, -1 if it did
	// not exit within IdleConfig.StopWait (it is then killed) or was killed
	// by a signal.
	ServerExit int `json:"server_exit"`
	// SlowestStop is the longest graceful stop of one server process, from
	// its "stopped" line (TeardownSIGTERM).
	SlowestStop float64 `json:"slowest_process_seconds,omitempty"`
	// ServerLog holds the server's "stopped" log lines (TeardownSIGTERM).
	ServerLog []string `json:"server_log,omitempty"`
}

// WithinFraction is WithinCount / Conns, 1 when no connection was open.
func (t *Teardown) WithinFraction() float64 {
	if t == nil || t.Conns <= 0 {
		return 1
	}
	return float64(t.WithinCount) / float64(t.Conns)
}

// ResourceSample is one look at the run's processes, taken every
// IdleConfig.SampleEvery. CPU figures are cores: CPU time over the
// interval since the previous sample divided by the interval.
type ResourceSample struct {
	At        float64 `json:"at_seconds"` // since the run began
	Conns     int64   `json:"conns"`      // open on the client side
	ServerCPU float64 `json:"server_cpu_cores"`
	ClientCPU float64 `json:"client_cpu_cores"`
	// ServerRSS, ServerPSS and ServerAnon are summed over the server's
	// processes (smaps_rollup: Rss, Pss, Pss_Anon).
	ServerRSS  int64 `json:"server_rss"`
	ServerPSS  int64 `json:"server_pss"`
	ServerAnon int64 `json:"server_pss_anon"`
	ClientRSS  int64 `json:"client_rss"`
	KernelSlab int64 `json:"kernel_slab,omitempty"`
	// ServerProcesses is how many server processes were alive.
	ServerProcesses int `json:"server_processes"`
}

// PhaseMark is when a phase of the run began (ramp, hold, sample,
// teardown, server exited), for the time-series chart.
type PhaseMark struct {
	Name string  `json:"name"`
	At   float64 `json:"at_seconds"`
}

// The phases RunIdle marks.
const (
	PhaseRamp       = "ramp"
	PhaseHold       = "hold"
	PhaseSample     = "sample"
	PhaseTeardown   = "teardown"
	PhaseServerExit = "server exited"
)

// serverProcs are the server's processes, found once after its start so
// that sampling does not walk /proc: the first is the main process.
type serverProcs struct {
	srv  *Server
	pids []int
}

func newServerProcs(srv *Server) serverProcs { return serverProcs{srv: srv, pids: srv.PIDs()} }

// cpu returns the CPU time of the server's processes, the workers that
// exited and were waited for by the main process included (their time has
// moved to its cutime), so that it does not fall back during a graceful
// stop; after the main process exited, its rusage.
func (p serverProcs) cpu() time.Duration {
	if d, ok := p.srv.ExitCPU(); ok {
		return d
	}
	var d time.Duration
	for _, pid := range p.pids {
		c, _ := ProcCPU(pid)
		d += c
	}
	if len(p.pids) > 0 {
		c, _ := ProcChildrenCPU(p.pids[0])
		d += c
	}
	return d
}

// mem returns the memory of the live server processes, summed, and how
// many there were.
func (p serverProcs) mem() (ProcMem, int) {
	var total ProcMem
	n := 0
	for _, pid := range p.pids {
		m, err := ReadProcMem(pid)
		if err != nil || m.RSS == 0 { // gone, or a zombie
			continue
		}
		total.Add(m)
		n++
	}
	return total, n
}

// cpu returns the CPU time of the load generator's processes (this process
// for an in-process agent).
func (f fleet) cpu() time.Duration {
	var d time.Duration
	self := false
	for _, a := range f {
		if a.PID() == 0 {
			self = true
			continue
		}
		c, _ := ProcCPU(a.PID())
		d += c
	}
	if self {
		d += SelfCPU()
	}
	return d
}

// sampler takes a ResourceSample every interval until stopped, and keeps
// the phase marks.
type sampler struct {
	procs serverProcs
	f     fleet
	start time.Time
	every time.Duration

	mu      sync.Mutex
	samples []ResourceSample
	phases  []PhaseMark

	stop, done chan struct{}
	lastT      time.Time
	lastS      time.Duration
	lastC      time.Duration
}

func startSampler(procs serverProcs, f fleet, start time.Time, every time.Duration) *sampler {
	s := &sampler{procs: procs, f: f, start: start, every: every, stop: make(chan struct{}), done: make(chan struct{})}
	s.lastT, s.lastS, s.lastC = time.Now(), procs.cpu(), f.cpu()
	s.take()
	go s.run()
	return s
}

func (s *sampler) run() {
	defer close(s.done)
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.take()
		}
	}
}

func (s *sampler) take() {
	now := time.Now()
	sc, cc := s.procs.cpu(), s.f.cpu()
	m, n := s.procs.mem()
	rs := ResourceSample{
		At: now.Sub(s.start).Seconds(), Conns: s.f.Counters().Open,
		ServerRSS: m.RSS, ServerPSS: m.PSS, ServerAnon: m.PssAnon, ServerProcesses: n,
		ClientRSS: s.f.rss(), KernelSlab: ReadKernel().SlabBytes,
	}
	if dt := now.Sub(s.lastT); dt > 0 {
		rs.ServerCPU = max(0, float64(sc-s.lastS)/float64(dt))
		rs.ClientCPU = max(0, float64(cc-s.lastC)/float64(dt))
	}
	s.lastT, s.lastS, s.lastC = now, sc, cc
	s.mu.Lock()
	s.samples = append(s.samples, rs)
	s.mu.Unlock()
}

// mark records that phase name begins now.
func (s *sampler) mark(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.phases = append(s.phases, PhaseMark{Name: name, At: time.Since(s.start).Seconds()})
}

// finish stops sampling after one last sample and returns what was taken.
func (s *sampler) finish() ([]ResourceSample, []PhaseMark) {
	select {
	case <-s.stop:
	default:
		close(s.stop)
		<-s.done
		s.take()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ResourceSample(nil), s.samples...), append([]PhaseMark(nil), s.phases...)
}

// StopLine is one "stopped" line megaws serve logs at the end of a
// graceful stop: the connections it had, the close handshakes they
// completed, those that timed out, and how long it took.
type StopLine struct {
	Conns    int64
	Answered int64
	Timeouts int64
	Seconds  float64
	// At is when the line was logged (its time field, millisecond
	// precision); zero when it has none.
	At time.Time
}

// ParseStopLine reads a slog text line such as
//
//	time=... level=INFO msg=stopped conns=17000 close_handshakes_answered=16990 close_timeouts=10 seconds=2.5
func ParseStopLine(line string) (StopLine, error) {
	var l StopLine
	kv := logfmt(line)
	if kv["msg"] != "stopped" {
		return l, fmt.Errorf("not a stopped line: %q", line)
	}
	var err error
	geti := func(k string) int64 {
		n, e := strconv.ParseInt(kv[k], 10, 64)
		if e != nil && err == nil {
			err = fmt.Errorf("stopped line: %s=%q", k, kv[k])
		}
		return n
	}
	l.Conns, l.Answered, l.Timeouts = geti("conns"), geti("close_handshakes_answered"), geti("close_timeouts")
	if l.Seconds, _ = strconv.ParseFloat(kv["seconds"], 64); kv["seconds"] == "" {
		err = fmt.Errorf("stopped line without seconds: %q", line)
	}
	l.At, _ = time.Parse(time.RFC3339Nano, kv["time"])
	return l, err
}

// logfmt splits a slog text line into its keys and values (values may be
// quoted).
func logfmt(line string) map[string]string {
	m := map[string]string{}
	s := strings.TrimSpace(line)
	for s != "" {
		k, rest, ok := strings.Cut(s, "=")
		if !ok {
			break
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := 1
			for end < len(rest) && (rest[end] != '"' || rest[end-1] == '\\') {
				end++
			}
			if u, err := strconv.Unquote(rest[:min(end+1, len(rest))]); err == nil {
				v = u
			} else {
				v = strings.Trim(rest[:min(end+1, len(rest))], `"`)
			}
			rest = rest[min(end+1, len(rest)):]
		} else {
			v, rest, _ = strings.Cut(rest, " ")
		}
		m[strings.TrimSpace(k)] = v
		s = strings.TrimSpace(rest)
	}
	return m
}

// stopWatch follows a graceful stop through each server process's
// /debug/vars: the close handshakes answered and timed out since the stop
// began, the last figure read from each process (it stops answering when
// it exits), and the figures as they stood at the within mark.
type stopWatch struct {
	base     []*rawVars // at the stop's start, per admin address
	answered []int64    // last read, since base
	timeouts []int64
	atWithin int64 // sum of answered as read last before the within mark
	reads    int
}

func newStopWatch(base []*rawVars) *stopWatch {
	return &stopWatch{base: base, answered: make([]int64, len(base)), timeouts: make([]int64, len(base))}
}

// update takes one read of every process (nil where it did not answer);
// inWindow tells whether the read finished before the within mark.
func (w *stopWatch) update(now []*rawVars, inWindow bool) {
	for i, r := range now {
		if i >= len(w.base) || r == nil || r.Megaws == nil || w.base[i] == nil || w.base[i].Megaws == nil {
			continue
		}
		b, m := w.base[i].Megaws, r.Megaws
		if m.ClosesAnswered != nil && b.ClosesAnswered != nil {
			w.answered[i] = *m.ClosesAnswered - *b.ClosesAnswered
		}
		if m.CloseTimeouts != nil && b.CloseTimeouts != nil {
			w.timeouts[i] = *m.CloseTimeouts - *b.CloseTimeouts
		}
	}
	w.reads++
	if inWindow {
		w.atWithin = w.sum(w.answered)
	}
}

func (w *stopWatch) sum(xs []int64) int64 {
	var n int64
	for _, x := range xs {
		n += x
	}
	return n
}

// stopOutcome combines what the server logged and what was read of its
// counters into t: the handshakes completed, those within t.Within of t0
// (when SIGTERM was sent), the timeouts. serving is how many processes
// held connections.
func stopOutcome(t *Teardown, t0 time.Time, lines []string, w *stopWatch, serving int) {
	t.ServerLog = lines
	var sl []StopLine
	for _, line := range lines {
		if l, err := ParseStopLine(line); err == nil {
			sl = append(sl, l)
		}
	}
	if len(sl) >= serving && serving > 0 {
		var answered, timeouts int64
		slowest := 0.0
		inTime := true
		for _, l := range sl {
			answered += l.Answered
			timeouts += l.Timeouts
			slowest = max(slowest, l.Seconds)
			// The line is logged when the process's stop ended; without a
			// time, its stop's own length (it began when the parent
			// forwarded the signal, milliseconds after t0) has to do.
			if l.At.IsZero() {
				inTime = inTime && l.Seconds <= t.Within.Seconds()
			} else {
				inTime = inTime && !l.At.After(t0.Add(t.Within))
			}
		}
		t.CloseHandshakesCompleted, t.CloseTimeouts, t.SlowestStop, t.Source = answered, timeouts, slowest, "server log"
		// Every process ended its stop within the mark: all of them count;
		// otherwise the counters as read before the mark.
		if inTime {
			t.WithinCount = answered
		} else if w != nil {
			t.WithinCount = min(w.atWithin, answered)
		}
		return
	}
	if w != nil && w.reads > 0 {
		t.CloseHandshakesCompleted, t.CloseTimeouts, t.Source = w.sum(w.answered), w.sum(w.timeouts), "server vars"
		t.WithinCount = w.atWithin
		if t.Seconds <= t.Within.Seconds() {
			t.WithinCount = t.CloseHandshakesCompleted
		}
		return
	}
	// A server that publishes nothing: the clients' count of close frames
	// answered, each counted when written, is what there is.
	t.CloseHandshakesCompleted, t.Source = t.ClientAnswered, "client"
	if t.Seconds <= t.Within.Seconds() {
		t.WithinCount = t.ClientAnswered
	}
}
