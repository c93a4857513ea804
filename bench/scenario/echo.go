package scenario

import (
	"context"
	"fmt"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/gobwas/ws"

	"github.com/megaws/megaws/bench/loadgen"
	"github.com/megaws/megaws/client/loop"
)

// EchoConfig is one echo measurement: Conns connections each keeping
// Inflight messages of Size bytes in flight for Duration after Warmup;
// text messages (printable ASCII, which the server validates as UTF-8)
// when Text is set, binary otherwise.
type EchoConfig struct {
	Conns    int           `json:"conns"`
	Size     int           `json:"size"`
	Inflight int           `json:"inflight"`
	Text     bool          `json:"text,omitempty"`
	Duration time.Duration `json:"duration"`
	Warmup   time.Duration `json:"warmup"`
}

// EchoResult is what RunEcho measured. Rates count echoed messages (round
// trips) over the measured window; MB/s is payload bytes echoed per second
// in one direction.
type EchoResult struct {
	Config           EchoConfig `json:"config"`
	Seconds          float64    `json:"seconds"`
	RoundTrips       int64      `json:"round_trips"`
	RoundTripsPerSec float64    `json:"round_trips_per_sec"`
	MBPerSec         float64    `json:"mb_per_sec"`
	Latency          Latency    `json:"latency"`
	ServerCPUSeconds float64    `json:"server_cpu_seconds"`
	ServerCPUPerMsg  float64    `json:"server_cpu_per_msg_us"` // server user+sys µs per echoed message
	ClientCPUSeconds float64    `json:"client_cpu_seconds"`
	// ServerAllocsPerMsg is the growth of the server's runtime.MemStats.Mallocs
	// over the measured window divided by the messages echoed (Go servers
	// with an admin endpoint; -1 otherwise). It includes the two /debug/vars
	// reads that bracket the window.
	ServerAllocsPerMsg float64 `json:"server_allocs_per_msg"`
	// PeakRSS is the largest server RSS (summed over its processes) sampled
	// every 100 ms during the measured window.
	PeakRSS  int64            `json:"peak_rss"`
	Counters loop.Counters    `json:"counters"`
	Errors   map[string]int64 `json:"errors,omitempty"`
}

type echoHandler struct {
	loop.NopHandler
	l        *loop.Loop
	size     int
	inflight int
	op       ws.OpCode
	running  bool
	record   bool
	hist     *hdrhistogram.Histogram
	buf      []byte
}

func (h *echoHandler) start() {
	h.running = true
	for _, c := range h.l.Open() {
		st := loadgen.StateOf(c)
		st.Stamps = make([]int64, h.inflight)
		for range h.inflight {
			h.send(c, st)
		}
	}
}

func (h *echoHandler) send(c *loop.Conn, st *loadgen.State) {
	stamp := time.Now().UnixNano()
	st.Stamps[st.Seq%uint64(len(st.Stamps))] = stamp
	if h.op == ws.OpText {
		loadgen.FillTextPayload(h.buf, st.Seq, stamp)
	} else {
		loadgen.FillPayload(h.buf, st.Seq, stamp)
	}
	st.Seq++
	c.Send(h.op, h.buf)
}

func (h *echoHandler) OnMessage(c *loop.Conn, op ws.OpCode, p []byte) {
	if op == ws.OpPong {
		return
	}
	st, _ := c.Context().(*loadgen.State)
	if st == nil || len(st.Stamps) == 0 {
		return
	}
	stamp := st.Stamps[st.Next%uint64(len(st.Stamps))]
	check := loadgen.CheckPayload
	if h.op == ws.OpText {
		check = loadgen.CheckTextPayload
	}
	if op != h.op {
		loadgen.VerifyFailed(c, fmt.Errorf("verify: echo has opcode %d, sent %d", op, h.op))
		return
	}
	if err := check(p, h.size, st.Next, stamp); err != nil {
		loadgen.VerifyFailed(c, err)
		return
	}
	st.Next++
	if h.record {
		_ = h.hist.RecordValue((time.Now().UnixNano() - stamp) / 1e3)
	}
	if h.running {
		h.send(c, st)
	}
}

// RunEcho opens cfg.Conns connections to srv (an echo server), runs the echo
// load and closes the connections in order.
func RunEcho(ctx context.Context, srv *Server, cfg EchoConfig, lo Load) (*EchoResult, error) {
	if hs := loadgen.HeaderSize(cfg.Text); cfg.Size < hs {
		return nil, fmt.Errorf("echo: payload size %d is below the %d-byte verifiable minimum", cfg.Size, hs)
	}
	if cfg.Inflight < 1 {
		cfg.Inflight = 1
	}
	op := ws.OpBinary
	if cfg.Text {
		op = ws.OpText
	}
	var hs []*echoHandler
	cl, err := loop.New(lo.config(srv.Addr), func(l *loop.Loop) loop.Handler {
		h := &echoHandler{l: l, size: cfg.Size, inflight: cfg.Inflight, op: op, hist: loadgen.NewHistogram(), buf: make([]byte, cfg.Size)}
		hs = append(hs, h)
		return h
	})
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	p := newProgress(lo.Progress)
	label := fmt.Sprintf("echo %s %dB%s×%d c=%d", srv.Target.Name, cfg.Size, map[bool]string{true: " text"}[cfg.Text], cfg.Inflight, cfg.Conns)
	if err := openAll(ctx, cl, cfg.Conns, p, label); err != nil {
		return nil, err
	}
	handlerOf := func(l *loop.Loop) *echoHandler { return hs[l.Index()] }
	cl.Each(func(l *loop.Loop) { handlerOf(l).start() })
	if err := sleepCtx(ctx, cfg.Warmup); err != nil {
		return nil, err
	}
	cl.Each(func(l *loop.Loop) { h := handlerOf(l); h.hist.Reset(); h.record = true })
	v0 := srv.Vars()
	c0, cpu0, self0, t0 := cl.Counters(), srv.CPU(), SelfCPU(), time.Now()
	peak := srv.RSS()
	for end := t0.Add(cfg.Duration); time.Now().Before(end); {
		if err := sleepCtx(ctx, min(100*time.Millisecond, time.Until(end))); err != nil {
			return nil, err
		}
		peak = max(peak, srv.RSS())
		c := cl.Counters()
		el := time.Since(t0).Seconds()
		p.show(false, "%s: %.0f msg/s, %d errors, %.1fs", label, float64(c.Recv-c0.Recv)/el, c.Errors(), el)
	}
	c1, cpu1, self1, t1 := cl.Counters(), srv.CPU(), SelfCPU(), time.Now()
	v1 := srv.Vars()
	p.done()
	hist := loadgen.NewHistogram()
	cl.Each(func(l *loop.Loop) { h := handlerOf(l); h.running, h.record = false, false; hist.Merge(h.hist) })
	// Let the messages in flight come back, so every one is verified.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if c := cl.Counters(); c.Recv >= c.Sent || c.Errors() > 0 {
			break
		}
	}
	closeClient(cl, 10*time.Second)
	final := cl.Counters()
	secs := t1.Sub(t0).Seconds()
	rt := c1.Recv - c0.Recv
	r := &EchoResult{
		Config:           cfg,
		Seconds:          secs,
		RoundTrips:       rt,
		RoundTripsPerSec: float64(rt) / secs,
		MBPerSec:         float64(c1.BytesRecv-c0.BytesRecv) / secs / 1e6,
		Latency:          LatencyOf(hist),
		ServerCPUSeconds: (cpu1 - cpu0).Seconds(),
		ClientCPUSeconds: (self1 - self0).Seconds(),
		Counters:         final,
		Errors:           cl.Errors(),
		PeakRSS:          peak,
	}
	r.ServerAllocsPerMsg = -1
	if rt > 0 {
		r.ServerCPUPerMsg = r.ServerCPUSeconds * 1e6 / float64(rt)
		if v0.Mallocs >= 0 && v1.Mallocs >= v0.Mallocs {
			r.ServerAllocsPerMsg = float64(v1.Mallocs-v0.Mallocs) / float64(rt)
		}
	}
	if final.Recv < final.Sent && final.Errors() == 0 {
		return r, fmt.Errorf("echo: %d messages sent were never echoed", final.Sent-final.Recv)
	}
	return r, check(final, r.Errors)
}
