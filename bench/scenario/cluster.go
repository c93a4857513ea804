package scenario

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/megaws/megaws/bench/loadgen"
	"github.com/megaws/megaws/client/loop"
)

// ClusterConfig is one cluster measurement: Subscribers connections spread
// evenly over Nodes server nodes joined by Broker ("" for one node on its
// own), Publishers of them (spread over the nodes too) publishing Rate
// messages of Size bytes per second in all for Duration. The servers send
// every message to every connection of every node, publishers included.
type ClusterConfig struct {
	Nodes       int           `json:"nodes"`
	Broker      string        `json:"broker,omitempty"`
	Subscribers int           `json:"subscribers"`
	Publishers  int           `json:"publishers"`
	Size        int           `json:"size"`
	Rate        float64       `json:"rate"`
	Duration    time.Duration `json:"duration"`
	// ClientLoops is the load generator's event loops in all, shared by
	// the nodes' connection pools (at least one per node).
	ClientLoops int `json:"client_loops"`
	// Phase is "sweep" for a point of the rate sweep, "low" for the point at
	// LowFraction of the sweep's saturation, "retried" for a sweep point
	// that did not keep up and was run again (the second run counts).
	Phase string `json:"phase"`
	// MaxRSS stops publishing early when the nodes and the broker together
	// use more memory (0: no limit).
	MaxRSS int64 `json:"max_rss,omitempty"`
	// Drain bounds the wait for deliveries after publishing (default 10 s,
	// at most 3 s without progress).
	Drain time.Duration `json:"drain"`
}

// Phases of ClusterConfig.
const (
	PhaseSweep   = "sweep"
	PhaseLow     = "low"
	PhaseRetried = "retried"
)

// ClusterNodeCounters are the megaws Stats counters of one node the report
// shows (growth over the measured window).
type ClusterNodeCounters struct {
	MessagesIn   uint64 `json:"messages_in"`
	MessagesOut  uint64 `json:"messages_out"`
	ClusterOut   uint64 `json:"cluster_out"`
	ClusterIn    uint64 `json:"cluster_in"`
	ClusterDrops uint64 `json:"cluster_drops"`
	QueueDrops   uint64 `json:"queue_drops"`
	BudgetDrops  uint64 `json:"budget_drops"`
}

// ClusterNode is one node's share of a point.
type ClusterNode struct {
	Addr       string  `json:"addr"`
	Conns      int     `json:"conns"`
	CPUSeconds float64 `json:"cpu_seconds"`
	RSSPeak    int64   `json:"rss_peak"`
	// Megaws holds the megaws counters (megaws nodes only).
	Megaws *ClusterNodeCounters `json:"megaws,omitempty"`
}

// ClusterResult is what RunClusterPoint measured. Latency runs from the
// publisher's send (stamped in the payload) to each subscriber's receipt.
type ClusterResult struct {
	Config ClusterConfig `json:"config"`
	// BrokerVersion is what the broker binary says its version is.
	BrokerVersion string `json:"broker_version,omitempty"`
	// PublishSeconds is the publishing window, Seconds that plus the
	// drain until the last delivery arrived (or the drain gave up).
	PublishSeconds float64 `json:"publish_seconds"`
	Seconds        float64 `json:"seconds"`
	Published      int64   `json:"published"`
	Expected       int64   `json:"expected"`
	Deliveries     int64   `json:"deliveries"`
	// Lost are expected deliveries that never came, Late deliveries older
	// than one already received from the same publisher (duplicates or
	// reordered), Gaps messages skipped in a publisher's sequence when a
	// later one arrived.
	Lost int64 `json:"lost"`
	Late int64 `json:"late"`
	Gaps int64 `json:"gaps"`
	// OfferedPerSec is Published × Subscribers per publishing second,
	// DeliveriesPerSec what arrived per second of Seconds.
	OfferedPerSec    float64 `json:"offered_per_sec"`
	DeliveriesPerSec float64 `json:"deliveries_per_sec"`
	// KeptUp is true when every message reached every subscriber and the
	// delivery rate was at least 95% of the offered rate.
	KeptUp  bool    `json:"kept_up"`
	Latency Latency `json:"latency"`
	// LatencyLocal covers deliveries from a publisher on the subscriber's
	// own node, LatencyRemote those that crossed the broker (more than one
	// node only).
	LatencyLocal  *Latency `json:"latency_local,omitempty"`
	LatencyRemote *Latency `json:"latency_remote,omitempty"`
	// CPU seconds over Seconds: the nodes summed, the broker, this load
	// generator.
	ServerCPUSeconds float64 `json:"server_cpu_seconds"`
	BrokerCPUSeconds float64 `json:"broker_cpu_seconds"`
	LoadCPUSeconds   float64 `json:"load_cpu_seconds"`
	// Per delivery, in microseconds.
	ServerCPUPerDel float64 `json:"server_cpu_per_delivery_us"`
	BrokerCPUPerDel float64 `json:"broker_cpu_per_delivery_us"`
	// DeliveriesPerCPUSec is Deliveries per CPU second of the nodes and the
	// broker together.
	DeliveriesPerCPUSec float64       `json:"deliveries_per_cpu_second"`
	ServerRSSPeak       int64         `json:"server_rss_peak"`
	BrokerRSSPeak       int64         `json:"broker_rss_peak"`
	Nodes               []ClusterNode `json:"nodes"`
	// SaturationPerSec is, for a low point, the sweep's saturation it is a
	// fraction of.
	SaturationPerSec float64          `json:"saturation_per_sec,omitempty"`
	StoppedEarly     string           `json:"stopped_early,omitempty"`
	Counters         loop.Counters    `json:"counters"`
	Errors           map[string]int64 `json:"errors,omitempty"`
}

// Cluster is a running set of nodes of one target and, for more than one
// node, the broker joining them.
type Cluster struct {
	Target Target
	Nodes  []*Proc
	Broker *BrokerProc
	dir    string
}

// StartCluster starts a broker of kind (none when kind is "") and nodes
// nodes of t on it. Stop it with Stop, also after an error.
func (e *Env) StartCluster(ctx context.Context, t Target, nodes int, kind string) (*Cluster, error) {
	dir, err := os.MkdirTemp("", "megaws-cluster-")
	if err != nil {
		return nil, err
	}
	cl := &Cluster{Target: t, dir: dir}
	if kind != "" {
		if cl.Broker, err = StartBroker(ctx, kind, dir); err != nil {
			cl.Stop()
			return nil, err
		}
	}
	for i := range nodes {
		n, err := e.startClusterNode(ctx, t, i, cl.Broker, dir)
		if err != nil {
			cl.Stop()
			return nil, fmt.Errorf("%s node %d: %w", t.Name, i, err)
		}
		cl.Nodes = append(cl.Nodes, n)
	}
	return cl, nil
}

// Stop stops every node, then the broker, and removes the working files.
func (cl *Cluster) Stop() {
	for _, n := range cl.Nodes {
		n.Stop()
	}
	if cl.Broker != nil {
		cl.Broker.Stop()
	}
	_ = os.RemoveAll(cl.dir)
}

// Exited names the processes of cl that are no longer running, with the
// tail of their output.
func (cl *Cluster) Exited() string {
	var s []string
	for i, n := range cl.Nodes {
		if n.Exited() {
			s = append(s, fmt.Sprintf("node %d exited: %s", i, n.Stderr()))
		}
	}
	if cl.Broker != nil && cl.Broker.Exited() {
		s = append(s, "broker exited: "+cl.Broker.Stderr())
	}
	return strings.Join(s, "; ")
}

func (cl *Cluster) cpu() (nodes []time.Duration, broker time.Duration) {
	for _, n := range cl.Nodes {
		c, _ := ProcCPU(n.PID())
		nodes = append(nodes, c)
	}
	if cl.Broker != nil {
		broker, _ = ProcCPU(cl.Broker.PID())
	}
	return nodes, broker
}

// clusterLoad is the load generator of one point: a pool per node.
type clusterLoad struct {
	closed bool
	pools  []*loop.Pool
	loops  []*clusterLoop
	conns  []int // per node
}

func (ld *clusterLoad) sum(f func(*clusterLoop) int64) int64 {
	var n int64
	for _, h := range ld.loops {
		n += f(h)
	}
	return n
}

func (ld *clusterLoad) counters() loop.Counters {
	var c loop.Counters
	for _, p := range ld.pools {
		c.Add(p.Counters())
	}
	return c
}

func (ld *clusterLoad) errors() map[string]int64 {
	m := map[string]int64{}
	for _, p := range ld.pools {
		for k, v := range p.Errors() {
			m[k] += v
		}
	}
	return m
}

// each runs fn on every loop's goroutine, one call at a time (the calls
// gather into shared results).
func (ld *clusterLoad) each(fn func(h *clusterLoop)) {
	var mu sync.Mutex
	for _, p := range ld.pools {
		p.Each(func(l *loop.Loop) {
			for _, h := range ld.loops {
				if h.l == l {
					mu.Lock()
					fn(h)
					mu.Unlock()
				}
			}
		})
	}
}

func (ld *clusterLoad) close() {
	if ld.closed {
		return
	}
	ld.closed = true
	for _, p := range ld.pools {
		p.CloseAll()
	}
	deadline := time.Now().Add(10 * time.Second)
	for ld.counters().Open > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	for _, p := range ld.pools {
		p.Close()
	}
}

// RunClusterPoint opens cfg.Subscribers connections spread over cl's nodes,
// waits until a probe from every publisher has reached every connection (so
// that every node's broker subscription is in place), publishes for
// cfg.Duration, waits for the deliveries, and closes the connections.
func RunClusterPoint(ctx context.Context, cl *Cluster, cfg ClusterConfig, lo Load) (*ClusterResult, error) {
	nodes := len(cl.Nodes)
	switch {
	case cfg.Size < loadgen.TextPayloadHeader:
		return nil, fmt.Errorf("cluster: payload size %d is below the %d-byte verifiable minimum", cfg.Size, loadgen.TextPayloadHeader)
	case cfg.Publishers < nodes || cfg.Publishers > MaxClusterPublishers:
		return nil, fmt.Errorf("cluster: %d publishers: want one per node at least (%d) and at most %d", cfg.Publishers, nodes, MaxClusterPublishers)
	case cfg.Subscribers < cfg.Publishers:
		return nil, fmt.Errorf("cluster: %d subscribers for %d publishers (publishers are subscribers too)", cfg.Subscribers, cfg.Publishers)
	case cfg.Rate <= 0 || cfg.Duration <= 0:
		return nil, errors.New("cluster: rate and duration must be positive")
	}
	proto, err := protoFor(cl.Target.Name)
	if err != nil {
		return nil, err
	}
	if cfg.Drain <= 0 {
		cfg.Drain = 10 * time.Second
	}
	perNode := max(cfg.ClientLoops/nodes, 1)
	t0 := time.Now().UnixNano()
	ld := &clusterLoad{}
	defer ld.close()
	for i, n := range cl.Nodes {
		c := lo.config(n.Addr)
		c.Loops, c.Path = perNode, proto.path()
		c.SourceOffset = 31 * i
		pool, err := loop.New(c, func(l *loop.Loop) loop.Handler {
			h := newClusterLoop(l, proto, cfg.Size, cfg.Publishers, t0, i, nodes)
			ld.loops = append(ld.loops, h)
			return h
		})
		if err != nil {
			return nil, err
		}
		ld.pools = append(ld.pools, pool)
		share := cfg.Subscribers / nodes
		if i < cfg.Subscribers%nodes {
			share++
		}
		ld.conns = append(ld.conns, share)
	}
	p := newProgress(lo.Progress)
	label := fmt.Sprintf("cluster %s %d node(s) n=%d %dB@%.0f/s", cl.Target.Name, nodes, cfg.Subscribers, cfg.Size, cfg.Rate)
	for i, pool := range ld.pools {
		pool.Dial(ld.conns[i])
	}
	total := int64(cfg.Subscribers)
	if err := waitCluster(ctx, ld, func() bool { return ld.sum(func(h *clusterLoop) int64 { return h.ready.Load() }) >= total }, 60*time.Second, p, label+": subscribing"); err != nil {
		return nil, err
	}
	// Publisher i is on node i mod nodes, on that pool's loops in turn.
	for i := range cfg.Publishers {
		pool := ld.pools[i%nodes]
		l := pool.Loops()[(i/nodes)%perNode]
		ok := false
		l.Do(func() {
			for _, h := range ld.loops {
				if h.l == l {
					ok = h.addPublisher(i, cfg.Rate/float64(cfg.Publishers))
				}
			}
		})
		if !ok {
			return nil, fmt.Errorf("cluster: no connection left for publisher %d on node %d", i, i%nodes)
		}
	}
	ld.each(func(h *clusterLoop) { h.phase.Store(phaseProbe) })
	err = waitCluster(ctx, ld, func() bool { return ld.sum(func(h *clusterLoop) int64 { return h.probed.Load() }) >= total }, 30*time.Second, p, label+": probing every path")
	ld.each(func(h *clusterLoop) { h.phase.Store(phaseIdle) })
	if err != nil {
		return nil, err
	}
	// Probes still in flight are told apart by their sequence numbers; let
	// them arrive before the CPU counters start.
	if err := sleepCtx(ctx, 300*time.Millisecond); err != nil {
		return nil, err
	}

	r := &ClusterResult{Config: cfg}
	if cl.Broker != nil {
		r.BrokerVersion = cl.Broker.Version
	}
	megaws0 := make([]ClusterNodeCounters, nodes)
	for i, n := range cl.Nodes {
		megaws0[i], _ = clusterNodeStats(n.Admin)
	}
	nodeCPU0, brokerCPU0 := cl.cpu()
	self0, _ := ProcCPU(os.Getpid())
	c0 := ld.counters()
	t1 := time.Now()
	ld.each(func(h *clusterLoop) {
		now := time.Now()
		for _, pb := range h.pubs {
			pb.start = now
		}
		h.phase.Store(phasePublish)
	})
	rss := func() {
		var sum int64
		for i, n := range cl.Nodes {
			v := n.RSS()
			sum += v
			if len(r.Nodes) > i {
				r.Nodes[i].RSSPeak = max(r.Nodes[i].RSSPeak, v)
			}
		}
		r.ServerRSSPeak = max(r.ServerRSSPeak, sum)
		if cl.Broker != nil {
			b := cl.Broker.RSS()
			r.BrokerRSSPeak = max(r.BrokerRSSPeak, b)
			sum += b
		}
		if cfg.MaxRSS > 0 && sum > cfg.MaxRSS && r.StoppedEarly == "" {
			r.StoppedEarly = fmt.Sprintf("nodes and broker used %.0f MiB, over the %.0f MiB limit, after %.1f s", float64(sum)/(1<<20), float64(cfg.MaxRSS)/(1<<20), time.Since(t1).Seconds())
		}
	}
	for i, n := range cl.Nodes {
		r.Nodes = append(r.Nodes, ClusterNode{Addr: n.Addr, Conns: ld.conns[i]})
	}
	lastRSS := time.Time{}
	for end := t1.Add(cfg.Duration); time.Now().Before(end) && r.StoppedEarly == ""; {
		if err := sleepCtx(ctx, min(50*time.Millisecond, time.Until(end))); err != nil {
			return nil, err
		}
		if time.Since(lastRSS) >= 250*time.Millisecond {
			rss()
			lastRSS = time.Now()
		}
		if x := cl.Exited(); x != "" {
			return nil, errors.New(x)
		}
		el := time.Since(t1).Seconds()
		p.show(false, "%s: %.0f deliveries/s, %d errors, %.1fs", label, float64(ld.sum(func(h *clusterLoop) int64 { return h.deliveries.Load() }))/el, ld.counters().Errors()-c0.Errors(), el)
	}
	ld.each(func(h *clusterLoop) {
		h.phase.Store(phaseIdle)
		for _, pb := range h.pubs {
			r.Published += pb.sent
		}
	})
	r.PublishSeconds = time.Since(t1).Seconds()
	r.Expected = r.Published * total
	delivered := func() int64 { return ld.sum(func(h *clusterLoop) int64 { return h.deliveries.Load() }) }
	// Drain: until everything arrived, nothing arrived for 3 s, or cfg.Drain.
	prev, prevT := delivered(), time.Now()
	for deadline := time.Now().Add(cfg.Drain); time.Now().Before(deadline); {
		d := delivered()
		if d >= r.Expected || ld.counters().Errors() > c0.Errors() {
			break
		}
		if d != prev {
			prev, prevT = d, time.Now()
		} else if time.Since(prevT) > 3*time.Second {
			break
		}
		if time.Since(lastRSS) >= 250*time.Millisecond {
			rss()
			lastRSS = time.Now()
		}
		if err := sleepCtx(ctx, 2*time.Millisecond); err != nil {
			return nil, err
		}
	}
	t2 := time.Now()
	nodeCPU1, brokerCPU1 := cl.cpu()
	self1, _ := ProcCPU(os.Getpid())
	rss()
	p.done()
	for i, n := range cl.Nodes {
		r.Nodes[i].CPUSeconds = (nodeCPU1[i] - nodeCPU0[i]).Seconds()
		r.ServerCPUSeconds += r.Nodes[i].CPUSeconds
		if m1, ok := clusterNodeStats(n.Admin); ok {
			m0 := megaws0[i]
			r.Nodes[i].Megaws = &ClusterNodeCounters{
				MessagesIn: m1.MessagesIn - m0.MessagesIn, MessagesOut: m1.MessagesOut - m0.MessagesOut,
				ClusterOut: m1.ClusterOut - m0.ClusterOut, ClusterIn: m1.ClusterIn - m0.ClusterIn,
				ClusterDrops: m1.ClusterDrops - m0.ClusterDrops, QueueDrops: m1.QueueDrops - m0.QueueDrops,
				BudgetDrops: m1.BudgetDrops - m0.BudgetDrops,
			}
		}
	}
	r.BrokerCPUSeconds = (brokerCPU1 - brokerCPU0).Seconds()
	r.LoadCPUSeconds = (self1 - self0).Seconds()
	hist, local, remote := loadgen.NewHistogram(), loadgen.NewHistogram(), loadgen.NewHistogram()
	ld.each(func(h *clusterLoop) {
		hist.Merge(h.hist)
		local.Merge(h.local)
		remote.Merge(h.remote)
	})
	r.Latency = LatencyOf(hist)
	if nodes > 1 {
		ll, lr := LatencyOf(local), LatencyOf(remote)
		r.LatencyLocal, r.LatencyRemote = &ll, &lr
	}
	r.Deliveries = delivered()
	r.Late = ld.sum(func(h *clusterLoop) int64 { return h.late.Load() })
	r.Gaps = ld.sum(func(h *clusterLoop) int64 { return h.gaps.Load() })
	r.Lost = max(r.Expected-(r.Deliveries-r.Late), 0)
	r.Seconds = t2.Sub(t1).Seconds()
	if r.PublishSeconds > 0 {
		r.OfferedPerSec = float64(r.Expected) / r.PublishSeconds
	}
	if r.Seconds > 0 {
		r.DeliveriesPerSec = float64(r.Deliveries) / r.Seconds
	}
	if r.Deliveries > 0 {
		r.ServerCPUPerDel = r.ServerCPUSeconds * 1e6 / float64(r.Deliveries)
		r.BrokerCPUPerDel = r.BrokerCPUSeconds * 1e6 / float64(r.Deliveries)
	}
	if cpu := r.ServerCPUSeconds + r.BrokerCPUSeconds; cpu > 0 {
		r.DeliveriesPerCPUSec = float64(r.Deliveries) / cpu
	}
	ld.close()
	r.Counters = ld.counters()
	r.Errors = ld.errors()
	r.KeptUp = r.Lost == 0 && r.Late == 0 && r.StoppedEarly == "" && r.Counters.Errors() == 0 &&
		r.DeliveriesPerSec >= 0.95*r.OfferedPerSec
	if r.Published == 0 {
		return r, errors.New("cluster: nothing was published")
	}
	if x := cl.Exited(); x != "" {
		return r, errors.New(x)
	}
	// Past saturation, servers drop connections that cannot keep up and
	// messages get lost: that is a measurement (KeptUp false, the counters
	// say what happened). Wrong bytes and protocol violations are not.
	if c := r.Counters; c.Aborted > 0 || c.ProtocolErrors > 0 || c.Failed > 0 {
		return r, &Failure{Counters: c, Errors: r.Errors}
	}
	return r, nil
}

// waitCluster waits until done reports true, for at most timeout, failing
// early when a connection fails.
func waitCluster(ctx context.Context, ld *clusterLoad, done func() bool, timeout time.Duration, p *progress, label string) error {
	deadline := time.Now().Add(timeout)
	for !done() {
		c := ld.counters()
		if c.Errors() > 0 {
			p.done()
			return fmt.Errorf("%s: %w", label, &Failure{Counters: c, Errors: ld.errors()})
		}
		if time.Now().After(deadline) {
			p.done()
			return fmt.Errorf("%s: not done after %s (%d established, %d subscribed, %d probed)", label, timeout,
				c.Established, ld.sum(func(h *clusterLoop) int64 { return h.ready.Load() }), ld.sum(func(h *clusterLoop) int64 { return h.probed.Load() }))
		}
		p.show(false, "%s: %d established, %d subscribed, %d probed", label, c.Established,
			ld.sum(func(h *clusterLoop) int64 { return h.ready.Load() }), ld.sum(func(h *clusterLoop) int64 { return h.probed.Load() }))
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
	p.done()
	return nil
}

// ClusterSweep is the rate sweep of one target and topology: rates from
// Start, each Factor times the last, until a point does not keep up (or
// Max is passed), then one point halfway between the last rate that kept
// up and the first that did not; then a point at LowFraction of the
// saturation (the highest delivery rate of a sweep point without errors)
// for LowDuration. When the first rate does not keep up, the sweep goes
// down the ladder instead (three steps at most). A point that does not
// keep up is run once more before the sweep believes it: on a shared
// machine one stall of a few hundred milliseconds sinks a point of a few
// seconds.
type ClusterSweep struct {
	Start, Max, Factor float64
	// Rates, when set, replaces the geometric ladder.
	Rates       []float64
	LowFraction float64
	LowDuration time.Duration
}

// SaturationOf returns the highest deliveries/s among rs's error-free
// points.
func SaturationOf(rs []*ClusterResult) float64 {
	best := 0.0
	for _, r := range rs {
		if r != nil && r.Counters.Errors() == 0 && r.Lost == 0 {
			best = math.Max(best, r.DeliveriesPerSec)
		}
	}
	return best
}

// RunClusterSweep runs sw's points on cl with base's other settings and
// hands every result (or error) to emit as it comes. It returns the
// saturation found.
func RunClusterSweep(ctx context.Context, cl *Cluster, base ClusterConfig, sw ClusterSweep, lo Load, emit func(*ClusterResult, error)) float64 {
	run := func(cfg ClusterConfig) (*ClusterResult, error) { return RunClusterPoint(ctx, cl, cfg, lo) }
	stop := func() bool { return ctx.Err() != nil || cl.Exited() != "" }
	return sweep(base, sw, run, stop, emit)
}

// sweep is RunClusterSweep with the measurement (run) and the reason to
// stop early (stop) passed in.
func sweep(base ClusterConfig, sw ClusterSweep, run func(ClusterConfig) (*ClusterResult, error), stop func() bool, emit func(*ClusterResult, error)) float64 {
	var results []*ClusterResult
	point := func(rate float64) (bool, error) {
		cfg := base
		cfg.Rate, cfg.Phase = rate, PhaseSweep
		for try := 0; ; try++ {
			r, err := run(cfg)
			ok := err == nil && r.KeptUp
			if !ok && try == 0 && r != nil && !stop() {
				r.Config.Phase = PhaseRetried
				emit(r, err)
				continue
			}
			emit(r, err)
			results = append(results, r)
			return ok, err
		}
	}
	if len(sw.Rates) > 0 {
		for _, rate := range sw.Rates {
			if ok, _ := point(rate); !ok || stop() {
				break
			}
		}
	} else {
		good, bad := 0.0, 0.0
		for rate := sw.Start; rate <= sw.Max; rate *= sw.Factor {
			ok, _ := point(rate)
			if stop() {
				return SaturationOf(results)
			}
			if !ok {
				bad = rate
				break
			}
			good = rate
		}
		// The first rate was already too much: go down the ladder (three
		// steps at most) to a rate that keeps up.
		for step := 0; good == 0 && bad > 1 && step < 3; step++ {
			rate := math.Max(1, math.Round(bad/sw.Factor))
			ok, _ := point(rate)
			if stop() {
				return SaturationOf(results)
			}
			if ok {
				good = rate
			} else {
				bad = rate
			}
		}
		if good > 0 && bad > 0 && bad-good > 1 {
			// Its outcome only adds a point: SaturationOf reads them all.
			if _, _ = point(math.Round((good + bad) / 2)); stop() {
				return SaturationOf(results)
			}
		}
	}
	sat := SaturationOf(results)
	if sat > 0 && sw.LowFraction > 0 && !stop() {
		cfg := base
		cfg.Phase, cfg.Duration = PhaseLow, sw.LowDuration
		cfg.Rate = math.Max(1, math.Round(sw.LowFraction*sat/float64(base.Subscribers)))
		// Not keeping up here is a measurement (KeptUp, the report says
		// so), not a failed run.
		r, err := run(cfg)
		if r != nil {
			r.SaturationPerSec = sat
		}
		emit(r, err)
	}
	return sat
}
