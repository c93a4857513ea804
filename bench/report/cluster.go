package report

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/megaws/megaws/bench/scenario"
)

// clusterRep is one repetition of one server on one node count: its sweep
// points by rate and its low point.
type clusterRep struct {
	sweep []*scenario.ClusterResult
	low   *scenario.ClusterResult
}

// clusterReps are the repetitions of one server on one node count.
type clusterReps map[int]*clusterRep

// clusterGroup is the cluster runs of one load shape (broker, size,
// subscribers, publishers), by server, node count and repetition.
type clusterGroup struct {
	broker            string
	nodes             int // the cluster's node count (the baseline has 1)
	size, subs, pubs  int
	targets           []string
	series            map[string]map[int]clusterReps // target → nodes → repetition
	failed            map[string]map[int][]string
	retried           map[string]int // sweep points run again after a miss
	sweepSecs, lowSec float64
}

func (g *clusterGroup) title() string {
	if g.broker == "none" {
		return fmt.Sprintf("%s × %s subscribers, %d publishers, one node", bytesLabel(g.size), num(float64(g.subs)), g.pubs)
	}
	return fmt.Sprintf("%s × %s subscribers, %d publishers, %d nodes on %s", bytesLabel(g.size), num(float64(g.subs)), g.pubs, g.nodes, brokerName(g.broker))
}

func brokerName(k string) string {
	switch k {
	case scenario.BrokerNATS:
		return "NATS"
	case scenario.BrokerRedis:
		return "Redis"
	}
	return k
}

// clusterGroups collects the cluster runs. Baseline runs (one node, no
// broker) join every group of cluster runs with the same size and load.
func (r *Report) clusterGroups() []*clusterGroup {
	type key struct {
		size, subs, pubs int
	}
	var cluster []*clusterGroup
	byKey := map[key][]*clusterGroup{}
	var baselineKeys []key
	baselines := map[key][]Run{}
	for _, run := range r.Runs {
		c := run.Cluster
		if c == nil {
			continue
		}
		k := key{c.Config.Size, c.Config.Subscribers, c.Config.Publishers}
		if c.Config.Broker == "" {
			if baselines[k] == nil {
				baselineKeys = append(baselineKeys, k)
			}
			baselines[k] = append(baselines[k], run)
			continue
		}
		var g *clusterGroup
		for _, x := range byKey[k] {
			if x.broker == c.Config.Broker && x.nodes == c.Config.Nodes {
				g = x
			}
		}
		if g == nil {
			g = &clusterGroup{broker: c.Config.Broker, nodes: c.Config.Nodes, size: k.size, subs: k.subs, pubs: k.pubs}
			byKey[k] = append(byKey[k], g)
			cluster = append(cluster, g)
		}
		g.add(run)
	}
	for _, k := range baselineKeys {
		gs := byKey[k]
		if len(gs) == 0 {
			g := &clusterGroup{broker: "none", nodes: 1, size: k.size, subs: k.subs, pubs: k.pubs}
			gs = []*clusterGroup{g}
			byKey[k] = gs
			cluster = append(cluster, g)
		}
		for _, g := range gs {
			for _, run := range baselines[k] {
				g.add(run)
			}
		}
	}
	for _, g := range cluster {
		// megaws first, then the order of the run.
		if i := slices.Index(g.targets, "megaws"); i > 0 {
			g.targets = append([]string{"megaws"}, slices.Delete(g.targets, i, i+1)...)
		}
	}
	sort.SliceStable(cluster, func(i, j int) bool {
		a, b := cluster[i], cluster[j]
		if a.broker != b.broker {
			return a.broker > b.broker // redis before nats before none
		}
		return a.size < b.size
	})
	return cluster
}

func (g *clusterGroup) add(run Run) {
	c := run.Cluster
	t, n := run.Target, c.Config.Nodes
	if g.series == nil {
		g.series = map[string]map[int]clusterReps{}
		g.failed = map[string]map[int][]string{}
		g.retried = map[string]int{}
	}
	if g.series[t] == nil {
		g.series[t] = map[int]clusterReps{}
		g.failed[t] = map[int][]string{}
		g.targets = append(g.targets, t)
	}
	if run.Error != "" && c.Published == 0 {
		g.failed[t][n] = append(g.failed[t][n], run.Error)
		return
	}
	if g.series[t][n] == nil {
		g.series[t][n] = clusterReps{}
	}
	rp := g.series[t][n][run.Rep]
	if rp == nil {
		rp = &clusterRep{}
		g.series[t][n][run.Rep] = rp
	}
	switch c.Config.Phase {
	case scenario.PhaseRetried:
		g.retried[t]++
		return
	case scenario.PhaseLow:
		rp.low = c
		g.lowSec = c.Config.Duration.Seconds()
	default:
		rp.sweep = append(rp.sweep, c)
		g.sweepSecs = c.Config.Duration.Seconds()
	}
	if run.Error != "" {
		g.failed[t][n] = append(g.failed[t][n], fmt.Sprintf("%s/s: %s", num(c.Config.Rate), run.Error))
	}
}

func (g *clusterGroup) topologies() []int {
	if g.nodes == 1 {
		return []int{1}
	}
	return []int{1, g.nodes}
}

// sats are the saturations of rs's repetitions, by repetition.
func (rs clusterReps) sats() map[int]float64 {
	m := map[int]float64{}
	for k, rp := range rs {
		if s := scenario.SaturationOf(rp.sweep); s > 0 {
			m[k] = s
		}
	}
	return m
}

func (rs clusterReps) lows() []*scenario.ClusterResult {
	var l []*scenario.ClusterResult
	for _, k := range sortedKeys(rs) {
		if rs[k].low != nil {
			l = append(l, rs[k].low)
		}
	}
	return l
}

// neverOverloaded: every sweep point of every repetition kept up, so the
// saturation is a lower bound.
func (rs clusterReps) neverOverloaded() bool {
	for _, rp := range rs {
		for _, p := range rp.sweep {
			if !p.KeptUp {
				return false
			}
		}
	}
	return true
}

// at returns the sweep points of every repetition at rate.
func (rs clusterReps) at(rate float64) []*scenario.ClusterResult {
	var ps []*scenario.ClusterResult
	for _, k := range sortedKeys(rs) {
		if p := pointAt(rs[k].sweep, rate); p != nil {
			ps = append(ps, p)
		}
	}
	return ps
}

func values(m map[int]float64) []float64 {
	var v []float64
	for _, k := range sortedKeys(m) {
		v = append(v, m[k])
	}
	return v
}

// spread formats the median of xs, and their range when there are several.
func spread(xs []float64, f func(float64) string) string {
	if len(xs) == 0 {
		return "–"
	}
	s := f(scenario.Median(xs))
	if len(xs) > 1 {
		s += fmt.Sprintf(" (%s–%s)", f(slices.Min(xs)), f(slices.Max(xs)))
	}
	return s
}

func medOf(ps []*scenario.ClusterResult, f func(*scenario.ClusterResult) float64) float64 {
	v, _ := med(ps, f)
	return v
}

func (r *Report) clusterSection(b *strings.Builder) {
	groups := r.clusterGroups()
	if len(groups) == 0 {
		return
	}
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("## Cluster\n\n")
	w("Subscribers are spread evenly over the nodes; publishers (subscribers too, at least one per node) publish on every node at a total offered rate; the servers send every message to every connection of every node (megaws `serve --mode broadcast --broker URL`; Centrifugo client-side publish to one channel every client subscribed to; Socket.IO `io.emit` of every event through `@socket.io/redis-adapter`). The one-node baseline is the same load on one node without a broker. Every payload is ASCII with its send time and sequence number (publisher, message number); every byte is verified, and per publisher every subscriber must receive every message once and in order. Latency runs from the publisher's send to the subscriber's receipt, on this machine's clock; *across the broker* counts only deliveries from a publisher on another node. A point *keeps up* when nothing was lost, duplicated or reordered, no connection was dropped, and deliveries/s reached 95%% of the offered rate; the sweep raises the rate until a point does not, then tries halfway between. **Saturation** is the highest deliveries/s of a sweep point without loss or errors (≥ when no point of the sweep was overloaded). CPU is utime+stime from `/proc` over the measured window (publishing plus drain): nodes summed, the broker alone; deliveries per CPU-second count the nodes and the broker together. Nodes, broker and load generator share %d cores: the load generator's CPU is in `report.json` (`load_cpu_seconds`).", r.Meta.Machine.Cores)
	if r.Meta.Repetitions > 1 {
		w(" Figures are medians of %d repetitions (run one after the other: every server and topology once per repetition), with their range in parentheses where it matters; the vs-1-node ratio is the median of each repetition's ratio.", r.Meta.Repetitions)
	}
	w("\n\n")
	baselineShown := map[[3]int]bool{}
	for _, g := range groups {
		w("### %s\n\n", g.title())
		g.headline(b)
		g.latencyByPath(b)
		g.sweepTable(b)
		// The one-node comparison is the same in every group of a load.
		k := [3]int{g.size, g.subs, g.pubs}
		g.perCPU(b, !baselineShown[k])
		baselineShown[k] = true
		g.megawsCounters(b)
		for _, t := range g.targets {
			for _, n := range sortedKeys(g.failed[t]) {
				for _, e := range g.failed[t][n] {
					w("- %s on %d node(s): %s\n", t, n, mdEscape(e))
				}
			}
		}
		w("\n")
	}
}

// headline: saturation on one node and on the cluster, latency at the low
// point, CPU per delivery there.
func (g *clusterGroup) headline(b *strings.Builder) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("| server | nodes | saturation, deliveries/s | vs 1 node | low point: msg/s → deliveries/s | p50 | p99 | server CPU µs/delivery | broker CPU µs/delivery | deliveries per CPU-second |\n")
	w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	fraction := []float64{}
	for _, t := range g.targets {
		sat1 := g.series[t][1].sats()
		for _, n := range g.topologies() {
			rs := g.series[t][n]
			if len(rs) == 0 {
				continue
			}
			sats := rs.sats()
			satS := spread(values(sats), num)
			if len(sats) > 0 && rs.neverOverloaded() {
				satS = "≥ " + satS
			}
			vs := "–"
			if n > 1 {
				var ratios []float64
				for k, s := range sats {
					if s1 := sat1[k]; s1 > 0 {
						ratios = append(ratios, s/s1)
					}
				}
				vs = spread(ratios, func(f float64) string { return fmt.Sprintf("%.2f", f) })
			}
			w("| %s | %d | %s | %s |", t, n, satS, vs)
			lows := rs.lows()
			if len(lows) == 0 {
				w(" – | – | – | – | – | – |\n")
				continue
			}
			missed := 0
			for _, l := range lows {
				if !l.KeptUp {
					missed++
				}
				if l.SaturationPerSec > 0 {
					fraction = append(fraction, l.Config.Rate*float64(g.subs)/l.SaturationPerSec)
				}
			}
			mark := ""
			switch {
			case missed == len(lows):
				mark = " (did not keep up)"
			case missed > 0:
				mark = fmt.Sprintf(" (%d of %d did not keep up)", missed, len(lows))
			}
			m := func(f func(*scenario.ClusterResult) float64) float64 { return medOf(lows, f) }
			broker := "–"
			if n > 1 {
				broker = fmt.Sprintf("%.3f", m(func(l *scenario.ClusterResult) float64 { return l.BrokerCPUPerDel }))
			}
			w(" %s → %s%s | %s | %s | %.2f | %s | %s |\n",
				num(m(func(l *scenario.ClusterResult) float64 { return l.Config.Rate })), num(m(func(l *scenario.ClusterResult) float64 { return l.DeliveriesPerSec })), mark,
				usF(m(func(l *scenario.ClusterResult) float64 { return float64(l.Latency.P50) })),
				spread(lowP99s(lows), usF),
				m(func(l *scenario.ClusterResult) float64 { return l.ServerCPUPerDel }), broker,
				num(m(func(l *scenario.ClusterResult) float64 { return l.DeliveriesPerCPUSec })))
		}
	}
	w("\n")
	if g.lowSec > 0 && len(fraction) > 0 {
		w("The low point publishes for %.0f s at ≈%.0f%% of the saturation of the same server, node count and repetition (whole messages per second); the sweep points for %.0f s each.\n\n",
			g.lowSec, 100*scenario.Median(fraction), g.sweepSecs)
	}
}

// latencyByPath splits the cluster's low-point latency into deliveries from
// a publisher on the subscriber's node and those that crossed the broker.
func (g *clusterGroup) latencyByPath(b *strings.Builder) {
	if g.nodes < 2 {
		return
	}
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	header := false
	for _, t := range g.targets {
		var lows []*scenario.ClusterResult
		for _, l := range g.series[t][g.nodes].lows() {
			if l.LatencyLocal != nil && l.LatencyRemote != nil {
				lows = append(lows, l)
			}
		}
		if len(lows) == 0 {
			continue
		}
		if !header {
			w("Latency at the low point on %d nodes by path: from a publisher on the subscriber's node, and across the broker (from a publisher on another node):\n\n", g.nodes)
			w("| server | same node p50 | same node p99 | across the broker p50 | across the broker p99 | across the broker p99.9 |\n|---|---:|---:|---:|---:|---:|\n")
			header = true
		}
		m := func(f func(*scenario.ClusterResult) int64) string {
			return usF(medOf(lows, func(l *scenario.ClusterResult) float64 { return float64(f(l)) }))
		}
		w("| %s | %s | %s | %s | %s | %s |\n", t,
			m(func(l *scenario.ClusterResult) int64 { return l.LatencyLocal.P50 }), m(func(l *scenario.ClusterResult) int64 { return l.LatencyLocal.P99 }),
			m(func(l *scenario.ClusterResult) int64 { return l.LatencyRemote.P50 }), m(func(l *scenario.ClusterResult) int64 { return l.LatencyRemote.P99 }),
			m(func(l *scenario.ClusterResult) int64 { return l.LatencyRemote.P999 }))
	}
	if header {
		w("\n")
	}
}

func lowP99s(lows []*scenario.ClusterResult) []float64 {
	var v []float64
	for _, l := range lows {
		v = append(v, float64(l.Latency.P99))
	}
	return v
}

// sweepTable: every sweep rate, one node and the cluster side by side,
// medians over the repetitions that ran that rate.
func (g *clusterGroup) sweepTable(b *strings.Builder) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	for _, t := range g.targets {
		rates := map[float64]bool{}
		var topos []int
		for _, n := range g.topologies() {
			if len(g.series[t][n]) == 0 {
				continue
			}
			topos = append(topos, n)
			for _, rp := range g.series[t][n] {
				for _, p := range rp.sweep {
					rates[p.Config.Rate] = true
				}
			}
		}
		if len(rates) == 0 {
			continue
		}
		rs := sortedFloats(rates)
		w("%s, rate sweep (✗: did not keep up, in how many repetitions):\n\n", t)
		w("| msg/s | offered/s |")
		for _, n := range topos {
			w(" %d node(s): delivered/s | p50 | p99 | lost | server µs/del |", n)
			if n > 1 {
				w(" broker µs/del | del/CPU-s |")
			}
		}
		if len(topos) > 1 {
			w(" %d nodes / 1 node |", g.nodes)
		}
		w("\n|---:|---:|")
		for _, n := range topos {
			w("---:|---:|---:|---:|---:|")
			if n > 1 {
				w("---:|---:|")
			}
		}
		if len(topos) > 1 {
			w("---:|")
		}
		w("\n")
		for _, rate := range rs {
			w("| %s | %s |", num(rate), num(float64(g.subs)*rate))
			perRep := map[int]map[int]float64{} // nodes → rep → deliveries/s
			for _, n := range topos {
				ps := g.series[t][n].at(rate)
				if len(ps) == 0 {
					w(" – | – | – | – | – |")
					if n > 1 {
						w(" – | – |")
					}
					continue
				}
				perRep[n] = map[int]float64{}
				for k, rp := range g.series[t][n] {
					if p := pointAt(rp.sweep, rate); p != nil {
						perRep[n][k] = p.DeliveriesPerSec
					}
				}
				missed := 0
				var lost int64
				for _, p := range ps {
					if !p.KeptUp {
						missed++
					}
					lost += p.Lost
				}
				mark := ""
				if missed > 0 {
					mark = " ✗"
					if len(ps) > 1 {
						mark += fmt.Sprintf(" %d/%d", missed, len(ps))
					}
				}
				m := func(f func(*scenario.ClusterResult) float64) float64 { return medOf(ps, f) }
				w(" %s%s | %s | %s | %s | %.2f |", num(m(func(p *scenario.ClusterResult) float64 { return p.DeliveriesPerSec })), mark,
					usF(m(func(p *scenario.ClusterResult) float64 { return float64(p.Latency.P50) })),
					usF(m(func(p *scenario.ClusterResult) float64 { return float64(p.Latency.P99) })),
					sweepLost(ps, lost), m(func(p *scenario.ClusterResult) float64 { return p.ServerCPUPerDel }))
				if n > 1 {
					w(" %.3f | %s |", m(func(p *scenario.ClusterResult) float64 { return p.BrokerCPUPerDel }),
						num(m(func(p *scenario.ClusterResult) float64 { return p.DeliveriesPerCPUSec })))
				}
			}
			if len(topos) > 1 {
				var ratios []float64
				for k, d := range perRep[g.nodes] {
					if d1 := perRep[1][k]; d1 > 0 && d > 0 {
						ratios = append(ratios, d/d1)
					}
				}
				if len(ratios) > 0 {
					w(" %.2f |", scenario.Median(ratios))
				} else {
					w(" – |")
				}
			}
			w("\n")
		}
		w("\n")
		if k := g.retried[t]; k > 0 {
			w("%s: %d sweep point(s) did not keep up at the first try and were run again; the table shows the second run (both are in `report.json`, the first with phase `retried`).\n\n", t, k)
		}
	}
}

func pointAt(pts []*scenario.ClusterResult, rate float64) *scenario.ClusterResult {
	for _, p := range pts {
		if p.Config.Rate == rate {
			return p
		}
	}
	return nil
}

// sweepLost is the lost deliveries of ps summed, with what else went wrong.
func sweepLost(ps []*scenario.ClusterResult, lost int64) string {
	s := num(float64(lost))
	var late, dropped int64
	stopped := false
	for _, p := range ps {
		late += p.Late
		dropped += p.Counters.Dropped
		stopped = stopped || p.StoppedEarly != ""
	}
	if late > 0 {
		s += fmt.Sprintf(" (+%s late)", num(float64(late)))
	}
	if dropped > 0 {
		s += fmt.Sprintf(", %s conns dropped", num(float64(dropped)))
	}
	if stopped {
		s += ", stopped: RSS"
	}
	return s
}

// perCPU compares megaws with each peer at the sweep rates both kept up
// with (in at least one repetition), on one node (when oneNode) and on the
// cluster: deliveries per CPU-second of the nodes and the broker, the
// median over the repetitions that kept up.
func (g *clusterGroup) perCPU(b *strings.Builder, oneNode bool) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	kept := func(t string, n int, rate float64) []*scenario.ClusterResult {
		var ps []*scenario.ClusterResult
		for _, p := range g.series[t][n].at(rate) {
			if p.KeptUp {
				ps = append(ps, p)
			}
		}
		return ps
	}
	perCPU := func(p *scenario.ClusterResult) float64 { return p.DeliveriesPerCPUSec }
	for _, n := range g.topologies() {
		if n == 1 && !oneNode && g.nodes > 1 {
			continue
		}
		var peers []string
		for _, t := range g.targets {
			if t != "megaws" && len(g.series[t][n]) > 0 {
				peers = append(peers, t)
			}
		}
		if len(g.series["megaws"][n]) == 0 || len(peers) == 0 {
			continue
		}
		rates := map[float64]bool{}
		for _, rp := range g.series["megaws"][n] {
			for _, p := range rp.sweep {
				if len(kept("megaws", n, p.Config.Rate)) == 0 {
					continue
				}
				for _, t := range peers {
					if len(kept(t, n, p.Config.Rate)) > 0 {
						rates[p.Config.Rate] = true
					}
				}
			}
		}
		where := "one node"
		if n > 1 {
			where = fmt.Sprintf("%d nodes on %s (nodes + broker)", n, brokerName(g.broker))
		}
		w("Deliveries per CPU-second, %s, at the sweep rates megaws and a peer both kept up with (–: that peer did not)", where)
		if len(rates) == 0 {
			w(": none.\n\n")
			continue
		}
		w(":\n\n| msg/s | megaws |")
		for _, t := range peers {
			w(" %s |", t)
		}
		for _, t := range peers {
			w(" megaws/%s |", t)
		}
		w("\n|---:|---:|%s%s\n", strings.Repeat("---:|", len(peers)), strings.Repeat("---:|", len(peers)))
		for _, rate := range sortedFloats(rates) {
			mv := medOf(kept("megaws", n, rate), perCPU)
			w("| %s | %s |", num(rate), num(mv))
			var ratios []string
			for _, t := range peers {
				ps := kept(t, n, rate)
				if len(ps) == 0 {
					w(" – |")
					ratios = append(ratios, "–")
					continue
				}
				v := medOf(ps, perCPU)
				w(" %s |", num(v))
				ratios = append(ratios, fmt.Sprintf("%.2f", mv/v))
			}
			w(" %s |\n", strings.Join(ratios, " | "))
		}
		w("\n")
	}
}

func sortedFloats(m map[float64]bool) []float64 {
	v := make([]float64, 0, len(m))
	for f := range m {
		v = append(v, f)
	}
	sort.Float64s(v)
	return v
}

// megawsCounters sums what megaws's nodes counted over the cluster's
// points: messages handed to the broker, received from it, dropped on the
// way out, and connections closed for a full write queue.
func (g *clusterGroup) megawsCounters(b *strings.Builder) {
	if g.nodes < 2 {
		return
	}
	var tot scenario.ClusterNodeCounters
	seen := false
	for _, rp := range g.series["megaws"][g.nodes] {
		for _, p := range append(append([]*scenario.ClusterResult(nil), rp.sweep...), rp.low) {
			if p == nil {
				continue
			}
			for _, n := range p.Nodes {
				if m := n.Megaws; m != nil {
					seen = true
					tot.ClusterOut += m.ClusterOut
					tot.ClusterIn += m.ClusterIn
					tot.ClusterDrops += m.ClusterDrops
					tot.QueueDrops += m.QueueDrops
					tot.BudgetDrops += m.BudgetDrops
				}
			}
		}
	}
	if seen {
		fmt.Fprintf(b, "megaws nodes over these points: %s messages to the broker, %s from it, %s dropped before the broker (`ClusterDrops`), %s connections closed for a full write queue, %s for the output budget.\n\n",
			num(float64(tot.ClusterOut)), num(float64(tot.ClusterIn)), num(float64(tot.ClusterDrops)), num(float64(tot.QueueDrops)), num(float64(tot.BudgetDrops)))
	}
}

// clusterSummary is the one-line summary of a cluster point.
func clusterSummary(c *scenario.ClusterResult) string {
	cfg := c.Config
	topo := fmt.Sprintf("%d node", cfg.Nodes)
	if cfg.Broker != "" {
		topo = fmt.Sprintf("%d nodes/%s", cfg.Nodes, cfg.Broker)
	}
	kept := "kept up"
	if !c.KeptUp {
		kept = "DID NOT KEEP UP"
	}
	remote := ""
	if c.LatencyRemote != nil {
		remote = fmt.Sprintf(" (across the broker p99 %s)", us(c.LatencyRemote.P99))
	}
	return fmt.Sprintf("%s %s n=%d p=%d %s@%s/s: offered %s/s, delivered %s/s (%s), lost %d, late %d, latency p50 %s p99 %s p99.9 %s%s, server %.2f µs CPU/delivery, broker %.3f, %s deliveries/CPU-s, load generator %.1f CPU-s, %d errors",
		cfg.Phase, topo, cfg.Subscribers, cfg.Publishers, bytesLabel(cfg.Size), num(cfg.Rate), num(c.OfferedPerSec), num(c.DeliveriesPerSec), kept, c.Lost, c.Late,
		us(c.Latency.P50), us(c.Latency.P99), us(c.Latency.P999), remote, c.ServerCPUPerDel, c.BrokerCPUPerDel, num(c.DeliveriesPerCPUSec), c.LoadCPUSeconds, c.Counters.Errors())
}
