package scenario

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/gobwas/ws"

	"golang.org/x/sys/unix"

	"github.com/megaws/megaws/bench/loadgen"
	"github.com/megaws/megaws/client/loop"
	"github.com/megaws/megaws/codec"
)

// SlowReadersConfig is one slow-readers measurement against a broadcast
// server: Fast connections that read and verify everything (one of them
// publishes Rate messages of Size bytes per second for Duration) and Slow
// connections that complete the handshake and never read again.
type SlowReadersConfig struct {
	Fast     int           `json:"fast"` // the publisher included
	Slow     int           `json:"slow"`
	Size     int           `json:"size"`
	Rate     float64       `json:"rate"`
	Duration time.Duration `json:"duration"`
	// Drain is how long the fast readers are given, after the last
	// publish, to receive everything published.
	Drain time.Duration `json:"drain"`
	// MaxRSS stops the run early when the server's RSS passes it.
	MaxRSS int64 `json:"max_rss"`
	// SlowRcvBuf is the slow readers' SO_RCVBUF (the kernel doubles it);
	// 0 keeps the kernel's default and its autotuning.
	SlowRcvBuf int `json:"slow_rcvbuf,omitempty"`
	// Strict makes a run fail unless the fast readers got every message,
	// in order, with the run complete and under MaxRSS (the CI smoke run).
	// Otherwise only a wrong or missing byte on a fast reader fails it:
	// lost deliveries, dropped fast readers and an early stop are findings.
	Strict bool `json:"strict,omitempty"`
}

// DefaultSlowReadersConfig reproduces a broadcast server meeting clients
// that stop reading, at a scale one machine holds: 2,000 slow readers ×
// 1 KiB × 500/s is 1 GB/s of output nobody reads.
func DefaultSlowReadersConfig() SlowReadersConfig {
	return SlowReadersConfig{Fast: 100, Slow: 2000, Size: 1024, Rate: 500, Duration: 10 * time.Second, Drain: 10 * time.Second, MaxRSS: 4 << 30}
}

// SlowReadersResult is what RunSlowReaders measured. Times are seconds
// since the first publish.
type SlowReadersResult struct {
	Config SlowReadersConfig `json:"config"`
	// Seconds runs from the first publish to the end of the drain or the
	// early stop.
	Seconds float64 `json:"seconds"`
	// StoppedEarly says why the run was cut short (the RSS limit), at
	// StoppedAt; empty when it ran its course.
	StoppedEarly string  `json:"stopped_early,omitempty"`
	StoppedAt    float64 `json:"stopped_at,omitempty"`

	ServerRSSStart   int64   `json:"server_rss_start"` // connections open, before the first publish
	ServerRSSPeak    int64   `json:"server_rss_peak"`  // sampled every 100 ms
	ServerRSSPeakAt  float64 `json:"server_rss_peak_at"`
	ServerRSSFinal   int64   `json:"server_rss_final"` // at the end, before any connection is closed
	ServerCPUSeconds float64 `json:"server_cpu_seconds"`

	Publisher PublisherStats `json:"publisher"`

	// Fast readers.
	Published        int64            `json:"published"`
	Deliveries       int64            `json:"deliveries"`
	Expected         int64            `json:"expected"` // published × fast readers
	DeliveryRatio    float64          `json:"delivery_ratio"`
	DeliveriesPerSec float64          `json:"deliveries_per_sec"`
	Latency          Latency          `json:"latency"` // publish to receipt
	FastLost         int64            `json:"fast_lost"`
	Counters         loop.Counters    `json:"counters"`
	Errors           map[string]int64 `json:"errors,omitempty"`

	Slow SlowOutcome `json:"slow"`
	// KernelBefore and KernelAfter are the machine's TCP sockets and their
	// memory (all processes) before publishing and at the end: under
	// tcp_mem pressure the kernel stops growing send buffers, and more of
	// the unread bytes stay in the server's user space.
	KernelBefore Kernel `json:"kernel_before"`
	KernelAfter  Kernel `json:"kernel_after"`
	// Vars are the server's own counters, when it publishes them.
	Vars     *SlowVars    `json:"vars,omitempty"`
	Timeline []SlowSample `json:"timeline"`
}

// PublisherStats says whether the server kept taking the publisher's
// messages. A message is taken once the publisher's kernel has transmitted
// it: it is then in the server's socket receive buffer, not necessarily
// processed (megaws's MessagesIn counts those). It waits before that only
// when the server's receive window is shut: the server has not been
// reading.
type PublisherStats struct {
	AskedRate    float64 `json:"asked_rate"`
	Queued       int64   `json:"queued"` // messages generated on schedule
	Taken        int64   `json:"taken"`  // by the end of the publishing window
	AchievedRate float64 `json:"achieved_rate"`
	TakenAtEnd   int64   `json:"taken_at_end"` // by the end of the run
	// MaxStall is the longest time, from the first publish to the end of
	// the run, that bytes were waiting and nothing was taken.
	MaxStallSeconds float64 `json:"max_stall_seconds"`
	MaxBacklogBytes int64   `json:"max_backlog_bytes"`
	BacklogAtEnd    int64   `json:"backlog_at_end_bytes"`
	// MaxTickGap is the longest the publisher's own loop went without
	// running: the load generator's lateness, not the server's.
	MaxTickGapSeconds float64 `json:"max_tick_gap_seconds"`
}

// SlowOutcome is what became of the slow readers.
type SlowOutcome struct {
	Readers int `json:"readers"`
	// Disconnected counts the slow readers the server let go, seen from
	// either end.
	Disconnected int `json:"disconnected"`
	// ClientSaw counts how each ended as the client saw it: "close 1008"
	// (the server's close frame), "eof", "reset", or "nothing" when the
	// server closed but its FIN sits behind bytes the client never read.
	ClientSaw map[string]int `json:"client_saw,omitempty"`
	// ServerStates counts the server's ends at the last scan:
	// ESTABLISHED (still served), FIN_WAIT1 (closed, FIN queued behind
	// unsent bytes), gone, ...
	ServerStates map[string]int `json:"server_states,omitempty"`
	// First, median and last disconnection; -1 when none.
	FirstAt  float64 `json:"first_at"`
	MedianAt float64 `json:"median_at"`
	LastAt   float64 `json:"last_at"`
	// KernelQueuedBytes is what the kernel held for the slow readers at the
	// last scan: the server's send queues plus the readers' receive queues.
	KernelQueuedBytes int64 `json:"kernel_queued_bytes"`
	// ScanSeconds is the interval of the server-side scans, and so the
	// resolution of the times of disconnections only the server saw.
	ScanSeconds float64 `json:"scan_seconds"`
}

// SlowVars are the server's /debug/vars figures over the run.
type SlowVars struct {
	ConnsBefore int64 `json:"conns_before"`
	ConnsAfter  int64 `json:"conns_after"`
	HeapInuse   int64 `json:"heap_inuse"` // at the end; -1 if not published
	HeapPeak    int64 `json:"heap_peak"`  // of the samples
	// Megaws are the megaws counters (Stats, "megaws" in /debug/vars),
	// growth over the run; nil for other servers.
	Megaws *MegawsCounters `json:"megaws,omitempty"`
}

// MegawsCounters are megaws's server.Stats growth over the run.
type MegawsCounters struct {
	QueueDrops  uint64            `json:"queue_drops"`
	MessagesIn  uint64            `json:"messages_in"`
	MessagesOut uint64            `json:"messages_out"`
	BytesOut    uint64            `json:"bytes_out"`
	ReadPauses  uint64            `json:"read_pauses"`
	CloseCodes  map[string]uint64 `json:"close_codes,omitempty"` // since the server started
	// FirstDropAt and LastDropAt are when QueueDrops first and last grew,
	// to the vars sampling interval; -1 when it never did.
	FirstDropAt float64 `json:"first_drop_at"`
	LastDropAt  float64 `json:"last_drop_at"`
}

// SlowSample is one point of the run's timeline.
type SlowSample struct {
	T          float64 `json:"t"`
	RSS        int64   `json:"rss"`
	Taken      int64   `json:"taken"`       // publisher messages the server has taken
	Delivered  int64   `json:"delivered"`   // fast-reader deliveries
	Conns      int64   `json:"conns"`       // server's count; -1 if not published
	QueueDrops int64   `json:"queue_drops"` // megaws; -1 otherwise
}

// publisher publishes on schedule from its own loop and watches whether the
// server takes what it sends.
type publisher struct {
	c     *loop.Conn
	rate  float64
	frame int64 // bytes of one masked frame
	buf   []byte
	start time.Time
	on    bool // publishing
	watch bool // watching the backlog: from the first publish to the end of the run

	queued, taken          int64
	takenA                 atomic.Int64 // taken, for other goroutines
	backlog, maxBacklog    int64
	lastTick, lastProgress time.Time
	maxStall, maxTickGap   time.Duration
}

func (p *publisher) tick(now time.Time) {
	if !p.watch || p.c == nil || !p.c.IsOpen() {
		return
	}
	if gap := now.Sub(p.lastTick); gap > p.maxTickGap {
		p.maxTickGap = gap
	}
	p.lastTick = now
	p.observe(now)
	if !p.on {
		return
	}
	due := int64(now.Sub(p.start).Seconds()*p.rate) - p.queued
	for i := int64(0); i < due && i < 10_000; i++ {
		loadgen.FillPayload(p.buf, uint64(p.queued), time.Now().UnixNano())
		p.queued++
		p.c.Send(ws.OpBinary, p.buf)
	}
}

// observe updates the taken count from the bytes still waiting.
func (p *publisher) observe(now time.Time) {
	buffered, unsent := p.c.Backlog()
	b := int64(buffered + unsent)
	p.backlog = b
	p.maxBacklog = max(p.maxBacklog, b)
	taken := p.queued - (b+p.frame-1)/p.frame
	if taken > p.taken || b == 0 {
		p.lastProgress = now
	} else if s := now.Sub(p.lastProgress); s > p.maxStall {
		p.maxStall = s
	}
	p.taken = max(p.taken, taken)
	p.takenA.Store(p.taken)
}

type slowReadersHandler struct {
	loop.NopHandler
	l    *loop.Loop
	size int
	t0   int64
	hist *hdrhistogram.Histogram
	pub  *publisher // on the publisher's loop only
}

func (h *slowReadersHandler) OnTick(now time.Time) {
	if h.pub != nil {
		h.pub.tick(now)
	}
}

func (h *slowReadersHandler) OnMessage(c *loop.Conn, op ws.OpCode, p []byte) {
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

// Sampling intervals.
const (
	rssEvery      = 100 * time.Millisecond
	timelineEvery = 250 * time.Millisecond
	varsEvery     = 250 * time.Millisecond
	minScanEvery  = time.Second
)

// RunSlowReaders opens cfg.Fast fast readers and cfg.Slow slow readers to
// srv (a broadcast server), publishes from one fast reader, and watches the
// server's memory, the fast readers' deliveries and what becomes of the slow
// readers. It stops early, and says so in the result, if the server's RSS
// passes cfg.MaxRSS; the run never lasts longer than Duration + Drain once
// publishing starts. Every socket is closed before it returns.
func RunSlowReaders(ctx context.Context, srv *Server, cfg SlowReadersConfig, lo Load) (*SlowReadersResult, error) {
	if err := cfg.check(srv); err != nil {
		return nil, err
	}
	t0 := time.Now().UnixNano()
	frame := int64(codec.HeaderSize(cfg.Size, true) + cfg.Size)
	var (
		hsMu sync.Mutex
		hs   []*slowReadersHandler
	)
	mk := func(pub *publisher) func(l *loop.Loop) loop.Handler {
		return func(l *loop.Loop) loop.Handler {
			h := &slowReadersHandler{l: l, size: cfg.Size, t0: t0, hist: loadgen.NewHistogram(), pub: pub}
			hsMu.Lock()
			hs = append(hs, h)
			hsMu.Unlock()
			return h
		}
	}
	p := newProgress(lo.Progress)
	label := fmt.Sprintf("slowreaders %s fast=%d slow=%d %s@%.0f/s", srv.Target.Name, cfg.Fast, cfg.Slow, sizeLabel(cfg.Size), cfg.Rate)

	pub := &publisher{rate: cfg.Rate, frame: frame, buf: make([]byte, cfg.Size)}
	pcfg := lo.config(srv.Addr)
	pcfg.Loops, pcfg.SourceOffset = 1, 50
	pubCl, err := loop.New(pcfg, mk(pub))
	if err != nil {
		return nil, err
	}
	defer pubCl.Close()
	var fast *loop.Pool
	if cfg.Fast > 1 {
		if fast, err = loop.New(lo.config(srv.Addr), mk(nil)); err != nil {
			return nil, err
		}
		defer fast.Close()
		if err := openAll(ctx, fast, cfg.Fast-1, p, label+": fast readers"); err != nil {
			return nil, err
		}
	}
	if err := openAll(ctx, pubCl, 1, p, label+": publisher"); err != nil {
		return nil, err
	}
	src := lo.Sources
	if src == nil {
		src = DefaultSources()
	}
	hsTimeout := lo.HandshakeTimeout
	if hsTimeout <= 0 {
		hsTimeout = 10 * time.Second
	}
	p.show(true, "%s: opening %d slow readers", label, cfg.Slow)
	pool, err := newSlowPool(srv.Addr, cfg.Slow, cfg.SlowRcvBuf, src, 100, hsTimeout)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	srv.WaitConns(int64(cfg.Fast+cfg.Slow), 10*time.Second)

	run := &slowRun{cfg: cfg, srv: srv, pool: pool, pids: srv.PIDs()}
	r := &SlowReadersResult{Config: cfg}
	r.ServerRSSStart = run.rss()
	v0 := fetchSlowVars(srv.Admin)
	cpu0 := srv.CPU()
	r.KernelBefore = ReadKernel()

	counts := func() (taken, delivered int64) {
		c := pubCl.Counters()
		if fast != nil {
			c.Add(fast.Counters())
		}
		return pub.takenA.Load(), c.Recv
	}
	start := time.Now()
	pool.Start(start)
	run.start = start
	pubCl.Loops()[0].Do(func() {
		if open := pubCl.Loops()[0].Open(); len(open) > 0 {
			pub.c, pub.start, pub.lastTick, pub.lastProgress = open[0], start, start, start
			pub.on, pub.watch = true, true
		}
	})
	run.startSamplers()
	defer run.stopSamplers()

	stopPublishing := func() {
		pubCl.Loops()[0].Do(func() {
			if pub.c != nil && pub.on {
				pub.observe(time.Now())
			}
			pub.on = false
			r.Publisher.AskedRate, r.Publisher.Queued, r.Publisher.Taken = cfg.Rate, pub.queued, pub.taken
		})
	}
	stopWatching := func() {
		pubCl.Loops()[0].Do(func() {
			if pub.c != nil && pub.watch {
				pub.observe(time.Now())
			}
			pub.watch = false
			r.Publisher.TakenAtEnd, r.Publisher.BacklogAtEnd = pub.taken, pub.backlog
			r.Publisher.MaxStallSeconds, r.Publisher.MaxBacklogBytes = pub.maxStall.Seconds(), pub.maxBacklog
			r.Publisher.MaxTickGapSeconds = pub.maxTickGap.Seconds()
		})
	}
	pubEnd, deadline := start.Add(cfg.Duration), start.Add(cfg.Duration+cfg.Drain)
	publishing := true
	tick := time.NewTicker(rssEvery)
	defer tick.Stop()
	var lastSample time.Time
	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			runErr = ctx.Err()
			break loop
		case now := <-tick.C:
			rss := run.rss()
			if rss > r.ServerRSSPeak {
				r.ServerRSSPeak, r.ServerRSSPeakAt = rss, now.Sub(start).Seconds()
			}
			taken, delivered := counts()
			if now.Sub(lastSample) >= timelineEvery {
				lastSample = now
				run.sample(now, rss, taken, delivered)
			}
			if srv.Exited() {
				runErr = errors.New("slowreaders: the server exited")
				break loop
			}
			if cfg.MaxRSS > 0 && rss > cfg.MaxRSS {
				r.StoppedEarly = fmt.Sprintf("server RSS %s passed --max-rss %s", gib(rss), gib(cfg.MaxRSS))
				r.StoppedAt = now.Sub(start).Seconds()
				break loop
			}
			if publishing && !now.Before(pubEnd) {
				stopPublishing()
				publishing = false
			}
			if !publishing {
				if _, d := counts(); d >= r.Publisher.Queued*int64(cfg.Fast) || now.After(deadline) {
					break loop
				}
			}
			p.show(false, "%s: %.1fs, server RSS %s (peak %s), %.0f deliveries/s, %d published, %d slow readers disconnected",
				label, now.Sub(start).Seconds(), gib(rss), gib(r.ServerRSSPeak), float64(delivered)/max(now.Sub(start).Seconds(), 1e-3), taken, run.disconnected())
		}
	}
	if publishing {
		stopPublishing()
	}
	stopWatching()
	end := time.Now()
	p.done()
	r.Seconds = end.Sub(start).Seconds()
	r.ServerRSSFinal = run.rss()
	r.ServerRSSPeak = max(r.ServerRSSPeak, r.ServerRSSFinal)
	r.ServerCPUSeconds = (srv.CPU() - cpu0).Seconds()
	r.KernelAfter = ReadKernel()
	run.stopSamplers()
	v1 := fetchSlowVars(srv.Admin)
	run.scan(end) // the server's ends, before the client's close resets them
	r.Vars = run.varsResult(v0, v1)
	r.Timeline = run.timeline()

	// Each histogram is merged on its own loop's goroutine.
	hist := loadgen.NewHistogram()
	merge := func(cl *loop.Pool) {
		cl.Each(func(l *loop.Loop) {
			hsMu.Lock()
			defer hsMu.Unlock()
			for _, h := range hs {
				if h.l == l {
					hist.Merge(h.hist)
				}
			}
		})
	}
	merge(pubCl)
	if fast != nil {
		merge(fast)
	}
	_, delivered := counts()
	r.Published = r.Publisher.Queued
	r.Deliveries = delivered
	r.Expected = r.Published * int64(cfg.Fast)
	if r.Expected > 0 {
		r.DeliveryRatio = float64(r.Deliveries) / float64(r.Expected)
	}
	if r.Seconds > 0 {
		r.DeliveriesPerSec = float64(r.Deliveries) / r.Seconds
	}
	if cfg.Duration > 0 {
		r.Publisher.AchievedRate = float64(r.Publisher.Taken) / min(cfg.Duration.Seconds(), r.Seconds)
	}
	r.Latency = LatencyOf(hist)
	r.Slow = run.outcome()

	// Slow readers first: their reset frees what the server holds for them
	// (and unblocks a server whose writes block), then an orderly close of
	// the fast readers.
	pool.Close()
	closeClient(pubCl, 10*time.Second)
	if fast != nil {
		closeClient(fast, 10*time.Second)
	}
	c := pubCl.Counters()
	r.Errors = pubCl.Errors()
	if fast != nil {
		c.Add(fast.Counters())
		for k, v := range fast.Errors() {
			r.Errors[k] += v
		}
	}
	r.Counters = c
	r.FastLost = c.Dropped
	if runErr != nil {
		return r, runErr
	}
	return r, r.verdict()
}

func (cfg SlowReadersConfig) check(srv *Server) error {
	switch {
	case cfg.Size < loadgen.PayloadHeader:
		return fmt.Errorf("slowreaders: payload size %d is below the %d-byte verifiable minimum", cfg.Size, loadgen.PayloadHeader)
	case cfg.Fast < 1:
		return errors.New("slowreaders: at least one fast reader (the publisher) is needed")
	case cfg.Slow < 0 || cfg.Rate <= 0 || cfg.Duration <= 0:
		return errors.New("slowreaders: --slow, --rate and --duration must be positive")
	case len(srv.Admin) > 1:
		// Each megaws worker broadcasts to its own connections only.
		return errors.New("slowreaders: a broadcast reaches every reader only with one server process (--workers 1)")
	}
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil && uint64(cfg.Fast+cfg.Slow+256) > rl.Cur {
		return fmt.Errorf("slowreaders: %d fast + %d slow readers need more descriptors than this process may open (%d); lower --fast or --slow", cfg.Fast, cfg.Slow, rl.Cur)
	}
	return nil
}

// verdict fails a run whose fast readers saw a wrong or missing byte, and in
// strict mode anything short of a complete run.
func (r *SlowReadersResult) verdict() error {
	c := r.Counters
	if c.Aborted > 0 || c.ProtocolErrors > 0 {
		return &Failure{Counters: c, Errors: r.Errors}
	}
	if !r.Config.Strict {
		return nil
	}
	switch {
	case r.StoppedEarly != "":
		return fmt.Errorf("slowreaders: stopped early: %s", r.StoppedEarly)
	case r.Published == 0:
		return errors.New("slowreaders: nothing was published")
	case c.Errors() > 0:
		return &Failure{Counters: c, Errors: r.Errors}
	case r.Deliveries != r.Expected:
		return fmt.Errorf("slowreaders: the fast readers got %d of %d messages within %s of the last publish", r.Deliveries, r.Expected, r.Config.Drain)
	}
	return nil
}
