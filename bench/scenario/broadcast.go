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

// BroadcastConfig is one broadcast measurement: Subscribers connections, one
// of which also publishes Rate messages of Size bytes per second for
// Duration. A broadcast server sends each to every connection, the
// publisher included.
type BroadcastConfig struct {
	Subscribers int           `json:"subscribers"`
	Size        int           `json:"size"`
	Rate        float64       `json:"rate"`
	Duration    time.Duration `json:"duration"`
}

// BroadcastResult is what RunBroadcast measured. Latency runs from the
// publisher's send to each subscriber's receipt.
type BroadcastResult struct {
	Config           BroadcastConfig `json:"config"`
	Seconds          float64         `json:"seconds"`
	Published        int64           `json:"published"`
	Deliveries       int64           `json:"deliveries"`
	Expected         int64           `json:"expected"`
	DeliveriesPerSec float64         `json:"deliveries_per_sec"`
	Latency          Latency         `json:"latency"`
	ServerCPUSeconds float64         `json:"server_cpu_seconds"`
	ServerCPUPerDel  float64         `json:"server_cpu_per_delivery_us"`
	// ServerAllocsPerDel is the growth of the server's
	// runtime.MemStats.Mallocs while publishing and draining, divided by
	// the deliveries (Go servers with an admin endpoint; -1 otherwise).
	ServerAllocsPerDel float64          `json:"server_allocs_per_delivery"`
	Counters           loop.Counters    `json:"counters"`
	Errors             map[string]int64 `json:"errors,omitempty"`
}

type broadcastHandler struct {
	loop.NopHandler
	l         *loop.Loop
	size      int
	rate      float64
	pub       *loop.Conn // on loop 0 only
	start     time.Time
	published int64
	publish   bool
	hist      *hdrhistogram.Histogram
	buf       []byte
	t0        int64
}

func (h *broadcastHandler) OnTick(now time.Time) {
	if !h.publish || h.pub == nil || !h.pub.IsOpen() {
		return
	}
	due := int64(now.Sub(h.start).Seconds()*h.rate) - h.published
	for i := int64(0); i < due && i < 10_000; i++ {
		loadgen.FillPayload(h.buf, uint64(h.published), time.Now().UnixNano())
		h.published++
		h.pub.Send(ws.OpBinary, h.buf)
	}
}

func (h *broadcastHandler) OnMessage(c *loop.Conn, op ws.OpCode, p []byte) {
	if op == ws.OpPong {
		return
	}
	st := loadgen.StateOf(c)
	seq, stamp, _ := loadgen.PayloadInfo(p)
	now := time.Now().UnixNano()
	if err := loadgen.CheckPayload(p, h.size, st.Next, stamp); err != nil {
		loadgen.VerifyFailed(c, err)
		return
	}
	if stamp < h.t0 || stamp > now {
		loadgen.VerifyFailed(c, fmt.Errorf("verify: send time of message %d out of range", seq))
		return
	}
	st.Next++
	_ = h.hist.RecordValue((now - stamp) / 1e3)
}

// RunBroadcast opens the subscribers to srv (a broadcast server), publishes
// and counts deliveries, and closes the connections in order.
func RunBroadcast(ctx context.Context, srv *Server, cfg BroadcastConfig, lo Load) (*BroadcastResult, error) {
	if cfg.Size < loadgen.PayloadHeader {
		return nil, fmt.Errorf("broadcast: payload size %d is below the %d-byte verifiable minimum", cfg.Size, loadgen.PayloadHeader)
	}
	t0 := time.Now().UnixNano()
	var hs []*broadcastHandler
	cl, err := loop.New(lo.config(srv.Addr), func(l *loop.Loop) loop.Handler {
		h := &broadcastHandler{l: l, size: cfg.Size, rate: cfg.Rate, hist: loadgen.NewHistogram(), buf: make([]byte, cfg.Size), t0: t0}
		hs = append(hs, h)
		return h
	})
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	p := newProgress(lo.Progress)
	label := fmt.Sprintf("broadcast %s n=%d %dB@%.0f/s", srv.Target.Name, cfg.Subscribers, cfg.Size, cfg.Rate)
	if err := openAll(ctx, cl, cfg.Subscribers, p, label); err != nil {
		return nil, err
	}
	// Servers register a connection after the handshake; wait until all are in.
	srv.WaitConns(int64(cfg.Subscribers), 5*time.Second)
	v0 := srv.Vars()
	c0, cpu0, t1 := cl.Counters(), srv.CPU(), time.Now()
	pub := hs[0]
	cl.Loops()[0].Do(func() {
		open := pub.l.Open()
		if len(open) > 0 {
			pub.pub, pub.start, pub.publish = open[0], time.Now(), true
		}
	})
	for end := t1.Add(cfg.Duration); time.Now().Before(end); {
		if err := sleepCtx(ctx, min(100*time.Millisecond, time.Until(end))); err != nil {
			return nil, err
		}
		c := cl.Counters()
		el := time.Since(t1).Seconds()
		p.show(false, "%s: %.0f deliveries/s, %d errors, %.1fs", label, float64(c.Recv-c0.Recv)/el, c.Errors(), el)
	}
	var published int64
	cl.Loops()[0].Do(func() { pub.publish = false; published = pub.published })
	expected := published * int64(cfg.Subscribers)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if c := cl.Counters(); c.Recv-c0.Recv >= expected || c.Errors() > 0 {
			break
		}
	}
	t2, cpu1 := time.Now(), srv.CPU()
	v1 := srv.Vars()
	p.done()
	hist := loadgen.NewHistogram()
	cl.Each(func(l *loop.Loop) { hist.Merge(hs[l.Index()].hist) })
	got := cl.Counters().Recv - c0.Recv
	closeClient(cl, 10*time.Second)
	final := cl.Counters()
	secs := t2.Sub(t1).Seconds()
	r := &BroadcastResult{
		Config:           cfg,
		Seconds:          secs,
		Published:        published,
		Deliveries:       got,
		Expected:         expected,
		DeliveriesPerSec: float64(got) / secs,
		Latency:          LatencyOf(hist),
		ServerCPUSeconds: (cpu1 - cpu0).Seconds(),
		Counters:         final,
		Errors:           cl.Errors(),
	}
	r.ServerAllocsPerDel = -1
	if got > 0 {
		r.ServerCPUPerDel = r.ServerCPUSeconds * 1e6 / float64(got)
		if v0.Mallocs >= 0 && v1.Mallocs >= v0.Mallocs {
			r.ServerAllocsPerDel = float64(v1.Mallocs-v0.Mallocs) / float64(got)
		}
	}
	if published == 0 {
		return r, fmt.Errorf("broadcast: nothing was published")
	}
	if got != expected && final.Errors() == 0 {
		return r, fmt.Errorf("broadcast: %d deliveries of %d expected", got, expected)
	}
	return r, check(final, r.Errors)
}
