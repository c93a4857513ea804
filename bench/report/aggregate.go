package report

import (
	"sort"

	"github.com/megaws/megaws/bench/scenario"
)

type echoKey struct {
	Conns, Size, Inflight int
	Text                  bool
}

// kind groups echo configurations that differ only in size and connections.
type echoKind struct {
	Inflight int
	Text     bool
}

func (k echoKey) kind() echoKind { return echoKind{k.Inflight, k.Text} }

type broadcastKey struct {
	Subscribers, Size int
	Rate              float64
}

// groups holds the successful runs by scenario, configuration and target.
type groups struct {
	targets   []string
	echo      map[echoKey]map[string][]*scenario.EchoResult
	echoKeys  []echoKey
	idle      map[string][]*scenario.IdleResult
	broadcast map[broadcastKey]map[string][]*scenario.BroadcastResult
	bcKeys    []broadcastKey
	connect   map[string][]*scenario.ConnectResult
	churn     map[string][]*scenario.ChurnResult
}

func (r *Report) group() *groups {
	g := &groups{
		echo:      map[echoKey]map[string][]*scenario.EchoResult{},
		idle:      map[string][]*scenario.IdleResult{},
		broadcast: map[broadcastKey]map[string][]*scenario.BroadcastResult{},
		connect:   map[string][]*scenario.ConnectResult{},
		churn:     map[string][]*scenario.ChurnResult{},
	}
	seen := map[string]bool{}
	for _, t := range r.Meta.Targets {
		g.targets = append(g.targets, t.Name)
		seen[t.Name] = true
	}
	for _, run := range r.Runs {
		if !seen[run.Target] {
			seen[run.Target] = true
			g.targets = append(g.targets, run.Target)
		}
		if run.Error != "" {
			continue
		}
		switch {
		case run.Echo != nil:
			c := run.Echo.Config
			k := echoKey{c.Conns, c.Size, c.Inflight, c.Text}
			if g.echo[k] == nil {
				g.echo[k] = map[string][]*scenario.EchoResult{}
				g.echoKeys = append(g.echoKeys, k)
			}
			g.echo[k][run.Target] = append(g.echo[k][run.Target], run.Echo)
		case run.Idle != nil:
			g.idle[run.Target] = append(g.idle[run.Target], run.Idle)
		case run.Broadcast != nil:
			c := run.Broadcast.Config
			k := broadcastKey{c.Subscribers, c.Size, c.Rate}
			if g.broadcast[k] == nil {
				g.broadcast[k] = map[string][]*scenario.BroadcastResult{}
				g.bcKeys = append(g.bcKeys, k)
			}
			g.broadcast[k][run.Target] = append(g.broadcast[k][run.Target], run.Broadcast)
		case run.Connect != nil:
			g.connect[run.Target] = append(g.connect[run.Target], run.Connect)
		case run.Churn != nil:
			g.churn[run.Target] = append(g.churn[run.Target], run.Churn)
		}
	}
	sort.Slice(g.echoKeys, func(i, j int) bool {
		a, b := g.echoKeys[i], g.echoKeys[j]
		if a.Inflight != b.Inflight {
			return a.Inflight < b.Inflight
		}
		if a.Text != b.Text {
			return !a.Text
		}
		if a.Conns != b.Conns {
			return a.Conns < b.Conns
		}
		return a.Size < b.Size
	})
	sort.Slice(g.bcKeys, func(i, j int) bool {
		a, b := g.bcKeys[i], g.bcKeys[j]
		if a.Subscribers != b.Subscribers {
			return a.Subscribers < b.Subscribers
		}
		if a.Size != b.Size {
			return a.Size < b.Size
		}
		return a.Rate < b.Rate
	})
	return g
}

// med is the median of f over xs, and false when xs is empty.
func med[T any](xs []T, f func(T) float64) (float64, bool) {
	if len(xs) == 0 {
		return 0, false
	}
	v := make([]float64, len(xs))
	for i, x := range xs {
		v[i] = f(x)
	}
	return scenario.Median(v), true
}

// idlePoints returns, for one target, the median figures at each connection
// count reached in every repetition.
func idlePoints(runs []*scenario.IdleResult) []scenario.IdlePoint {
	by := map[int64][]scenario.IdlePoint{}
	for _, r := range runs {
		for _, p := range r.Points {
			// Round to the checkpoint asked for: a dropped connection or two
			// must not split the group.
			by[roundConns(p.Conns, r)] = append(by[roundConns(p.Conns, r)], p)
		}
	}
	var out []scenario.IdlePoint
	for _, n := range sortedKeys(intKeys(by)) {
		ps := by[int64(n)]
		m := func(f func(scenario.IdlePoint) float64) float64 { v, _ := med(ps, f); return v }
		out = append(out, scenario.IdlePoint{
			Conns:          int64(n),
			ServerRSS:      int64(m(func(p scenario.IdlePoint) float64 { return float64(p.ServerRSS) })),
			HeapInuse:      int64(m(func(p scenario.IdlePoint) float64 { return float64(p.HeapInuse) })),
			Goroutines:     int64(m(func(p scenario.IdlePoint) float64 { return float64(p.Goroutines) })),
			UserPerConn:    m(func(p scenario.IdlePoint) float64 { return p.UserPerConn }),
			PSSPerConn:     m(func(p scenario.IdlePoint) float64 { return p.PSSPerConn }),
			PssAnonPerConn: m(func(p scenario.IdlePoint) float64 { return p.PssAnonPerConn }),
			HeapPerConn:    m(func(p scenario.IdlePoint) float64 { return p.HeapPerConn }),
			KernelPerConn:  m(func(p scenario.IdlePoint) float64 { return p.KernelPerConn }),
			SockMemPerConn: m(func(p scenario.IdlePoint) float64 { return p.SockMemPerConn }),
			ClientRSS:      int64(m(func(p scenario.IdlePoint) float64 { return float64(p.ClientRSS) })),
		})
	}
	return out
}

func roundConns(n int64, r *scenario.IdleResult) int64 {
	cps := append(append([]int(nil), r.Config.Checkpoints...), r.Config.Conns)
	for _, c := range cps {
		if n <= int64(c) && n >= int64(c)-int64(c)/100 {
			return int64(c)
		}
	}
	return n
}

func intKeys[V any](m map[int64]V) map[int]bool {
	out := map[int]bool{}
	for k := range m {
		out[int(k)] = true
	}
	return out
}
