package scenario

import (
	"context"
	"fmt"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/megaws/megaws/bench/loadgen"
	"github.com/megaws/megaws/client/loop"
)

// ConnectConfig is a burst of Conns handshakes, at most Pending in flight
// per loop, followed by an orderly close of all of them.
type ConnectConfig struct {
	Conns   int `json:"conns"`
	Pending int `json:"pending"`
}

// ConnectResult is what RunConnect measured. Handshake latency runs from
// connect(2) to the verified 101 response.
type ConnectResult struct {
	Config           ConnectConfig    `json:"config"`
	Established      int64            `json:"established"`
	Failed           int64            `json:"failed"`
	Seconds          float64          `json:"seconds"`
	HandshakesPerSec float64          `json:"handshakes_per_sec"`
	Handshake        Latency          `json:"handshake_latency"`
	CloseSeconds     float64          `json:"close_seconds"`
	Closed           int64            `json:"closed"`
	ServerCPUSeconds float64          `json:"server_cpu_seconds"`
	ServerCPUPerConn float64          `json:"server_cpu_per_conn_us"` // handshake, hold and close
	Counters         loop.Counters    `json:"counters"`
	Errors           map[string]int64 `json:"errors,omitempty"`
}

// handshakes records the handshake latency of each connection of a loop
// (connect(2) to the verified 101, µs).
type handshakes struct {
	loop.NopHandler
	hist *hdrhistogram.Histogram
}

func (h *handshakes) OnOpen(c *loop.Conn) {
	_ = h.hist.RecordValue(c.HandshakeDuration().Microseconds())
}

// RunConnect runs one connect burst against srv.
func RunConnect(ctx context.Context, srv *Server, cfg ConnectConfig, lo Load) (*ConnectResult, error) {
	if cfg.Pending > 0 {
		lo.MaxPending = cfg.Pending
	}
	var hs []*handshakes
	cl, err := loop.New(lo.config(srv.Addr), func(*loop.Loop) loop.Handler {
		h := &handshakes{hist: loadgen.NewHistogram()}
		hs = append(hs, h)
		return h
	})
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	p := newProgress(lo.Progress)
	cpu0 := srv.CPU()
	cl.Dial(cfg.Conns)
	took, err := waitEstablished(ctx, cl, int64(cfg.Conns), 120*time.Second, p, fmt.Sprintf("connect %s n=%d", srv.Target.Name, cfg.Conns))
	if err != nil {
		return nil, err
	}
	c := cl.Counters()
	hist := loadgen.NewHistogram()
	cl.Each(func(l *loop.Loop) { hist.Merge(hs[l.Index()].hist) })
	closeTook := closeClient(cl, 30*time.Second)
	srv.WaitConns(0, 5*time.Second)
	final := cl.Counters()
	r := &ConnectResult{
		Config:           cfg,
		Established:      c.Established,
		Failed:           c.Failed,
		Seconds:          took.Seconds(),
		HandshakesPerSec: float64(c.Established) / took.Seconds(),
		Handshake:        LatencyOf(hist),
		CloseSeconds:     closeTook.Seconds(),
		Closed:           final.Closed,
		ServerCPUSeconds: (srv.CPU() - cpu0).Seconds(),
		Counters:         final,
		Errors:           cl.Errors(),
	}
	if c.Established > 0 {
		r.ServerCPUPerConn = r.ServerCPUSeconds * 1e6 / float64(c.Established)
	}
	if final.Closed+final.CloseTimeouts != c.Established && final.Errors() == 0 {
		return r, fmt.Errorf("connect: %d of %d connections closed in order", final.Closed, c.Established)
	}
	return r, check(final, r.Errors)
}

// ChurnConfig is Cycles rounds of opening Conns connections and closing them.
type ChurnConfig struct {
	Conns  int `json:"conns"`
	Cycles int `json:"cycles"`
}

// ChurnCycle is one round of a churn run.
type ChurnCycle struct {
	Established  int64   `json:"established"`
	Closed       int64   `json:"closed"`
	Seconds      float64 `json:"seconds"`
	ServerRSS    int64   `json:"server_rss"`
	ServerFDs    int     `json:"server_fds"`
	ServerConns  int64   `json:"server_conns"`
	ServerGorout int64   `json:"server_goroutines"`
}

// ChurnResult is what RunChurn measured: the server's memory, descriptors
// and goroutines before the first cycle and after each.
type ChurnResult struct {
	Config       ChurnConfig      `json:"config"`
	Before       ChurnCycle       `json:"before"`
	Cycles       []ChurnCycle     `json:"cycles"`
	Seconds      float64          `json:"seconds"`
	ConnsPerSec  float64          `json:"conns_per_sec"` // connections opened and closed per second
	RSSGrowth    int64            `json:"rss_growth"`    // last cycle minus first cycle
	FDLeak       int              `json:"fd_leak"`       // after all cycles minus before
	GoroutineGap int64            `json:"goroutine_gap"` // after all cycles minus before
	Counters     loop.Counters    `json:"counters"`
	Errors       map[string]int64 `json:"errors,omitempty"`
}

func churnSnapshot(srv *Server) ChurnCycle {
	v := srv.Vars()
	return ChurnCycle{ServerRSS: srv.RSS(), ServerFDs: srv.FDs(), ServerConns: v.Connections, ServerGorout: v.Goroutines}
}

// RunChurn runs the cycles against srv.
func RunChurn(ctx context.Context, srv *Server, cfg ChurnConfig, lo Load) (*ChurnResult, error) {
	cl, err := loop.New(lo.config(srv.Addr), func(*loop.Loop) loop.Handler { return loop.NopHandler{} })
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	p := newProgress(lo.Progress)
	r := &ChurnResult{Config: cfg, Before: churnSnapshot(srv)}
	start := time.Now()
	for i := range cfg.Cycles {
		c0 := cl.Counters()
		t0 := time.Now()
		cl.Dial(cfg.Conns)
		if _, err := waitEstablished(ctx, cl, c0.Established+c0.Failed+int64(cfg.Conns), 60*time.Second, p, fmt.Sprintf("churn %s cycle %d/%d", srv.Target.Name, i+1, cfg.Cycles)); err != nil {
			return r, err
		}
		closeClient(cl, 30*time.Second)
		srv.WaitConns(0, 5*time.Second)
		c1 := cl.Counters()
		cy := churnSnapshot(srv)
		cy.Established, cy.Closed, cy.Seconds = c1.Established-c0.Established, c1.Closed-c0.Closed, time.Since(t0).Seconds()
		r.Cycles = append(r.Cycles, cy)
		if c1.Errors() > 0 {
			break
		}
	}
	r.Seconds = time.Since(start).Seconds()
	r.Counters, r.Errors = cl.Counters(), cl.Errors()
	r.ConnsPerSec = float64(r.Counters.Closed) / r.Seconds
	if n := len(r.Cycles); n > 0 {
		last := r.Cycles[n-1]
		r.RSSGrowth = last.ServerRSS - r.Cycles[0].ServerRSS
		r.FDLeak = last.ServerFDs - r.Before.ServerFDs
		r.GoroutineGap = last.ServerGorout - r.Before.ServerGorout
		if last.ServerConns > 0 {
			return r, fmt.Errorf("churn: server still reports %d connections after every close", last.ServerConns)
		}
	}
	if r.Counters.Closed+r.Counters.CloseTimeouts != int64(cfg.Conns*cfg.Cycles) && r.Counters.Errors() == 0 {
		return r, fmt.Errorf("churn: %d of %d connections closed in order", r.Counters.Closed, cfg.Conns*cfg.Cycles)
	}
	return r, check(r.Counters, r.Errors)
}
