package report

import (
	"fmt"
	"image/color"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/megaws/megaws/bench/scenario"
)

// Chart is a chart written next to the report.
type Chart struct {
	File  string // base name, e.g. echo-throughput-c100.svg
	Title string
}

var chartW, chartH = 7 * vg.Inch, 4 * vg.Inch

// Charts renders the report's charts as SVG files into dir.
func (r *Report) Charts(dir string) ([]Chart, error) {
	g := r.group()
	var out []Chart
	save := func(p *plot.Plot, file, title string) error {
		p.Title.Text = title
		p.Legend.Top = true
		if err := p.Save(chartW, chartH, filepath.Join(dir, file)); err != nil {
			return err
		}
		out = append(out, Chart{File: file, Title: title})
		return nil
	}

	// Echo: throughput and server CPU per message against payload size,
	// one chart per connection count and kind (in flight, text).
	type group struct {
		conns int
		kind  echoKind
	}
	byGroup := map[group][]echoKey{}
	var order []group
	for _, k := range g.echoKeys {
		gr := group{k.Conns, k.kind()}
		if byGroup[gr] == nil {
			order = append(order, gr)
		}
		byGroup[gr] = append(byGroup[gr], k)
	}
	for _, gr := range order {
		keys := byGroup[gr]
		if len(keys) < 2 {
			continue
		}
		n := gr.conns
		suffix, desc := "", ""
		if gr.kind.Text {
			suffix, desc = suffix+"-text", desc+", text"
		}
		if gr.kind.Inflight != 1 {
			suffix, desc = suffix+fmt.Sprintf("-k%d", gr.kind.Inflight), desc+fmt.Sprintf(", %d in flight", gr.kind.Inflight)
		}
		for _, m := range []struct {
			file, title, y string
			f              func(*scenario.EchoResult) float64
		}{
			{fmt.Sprintf("echo-throughput-c%d%s.svg", n, suffix), fmt.Sprintf("Echo round trips/s, %d connections%s (higher is better)", n, desc), "round trips/s",
				func(e *scenario.EchoResult) float64 { return e.RoundTripsPerSec }},
			{fmt.Sprintf("echo-cpu-c%d%s.svg", n, suffix), fmt.Sprintf("Server CPU per echoed message, %d connections%s (lower is better)", n, desc), "server CPU µs/message",
				func(e *scenario.EchoResult) float64 { return e.ServerCPUPerMsg }},
		} {
			p := plot.New()
			p.X.Label.Text = "payload bytes (log scale)"
			p.Y.Label.Text = m.y
			p.X.Scale = plot.LogScale{}
			var ticks []plot.Tick
			for _, k := range keys {
				ticks = append(ticks, plot.Tick{Value: float64(k.Size), Label: bytesLabel(k.Size)})
			}
			p.X.Tick.Marker = plot.ConstantTicks(ticks)
			var lines []any
			for _, t := range g.targets {
				var xys plotter.XYs
				for _, k := range keys {
					if v, ok := med(g.echo[k][t], m.f); ok {
						xys = append(xys, plotter.XY{X: float64(k.Size), Y: v})
					}
				}
				if len(xys) > 0 {
					lines = append(lines, t, xys)
				}
			}
			if len(lines) == 0 {
				continue
			}
			if err := plotutil.AddLinePoints(p, lines...); err != nil {
				return nil, err
			}
			if err := save(p, m.file, m.title); err != nil {
				return nil, err
			}
		}
	}

	// Echo latency percentiles at the configuration with the most
	// connections and the payload nearest 1 KiB.
	if k, ok := latencyKey(g); ok {
		p := plot.New()
		p.Y.Label.Text = "round-trip latency, µs"
		w := vg.Points(12)
		var names []string
		for _, t := range g.targets {
			if len(g.echo[k][t]) > 0 {
				names = append(names, t)
			}
		}
		pcts := []struct {
			name string
			f    func(*scenario.EchoResult) float64
		}{
			{"p50", func(e *scenario.EchoResult) float64 { return float64(e.Latency.P50) }},
			{"p99", func(e *scenario.EchoResult) float64 { return float64(e.Latency.P99) }},
			{"p99.9", func(e *scenario.EchoResult) float64 { return float64(e.Latency.P999) }},
		}
		for i, pc := range pcts {
			var vals plotter.Values
			for _, t := range names {
				v, _ := med(g.echo[k][t], pc.f)
				vals = append(vals, v)
			}
			bars, err := plotter.NewBarChart(vals, w)
			if err != nil {
				return nil, err
			}
			bars.Color = plotutil.Color(i)
			bars.LineStyle.Width = 0
			bars.Offset = w * vg.Length(i-1)
			p.Add(bars)
			p.Legend.Add(pc.name, bars)
		}
		p.NominalX(names...)
		if len(names) > 0 {
			if err := save(p, "echo-latency.svg", fmt.Sprintf("Echo latency percentiles, %s, %d connections, %d in flight (lower is better)", bytesLabel(k.Size), k.Conns, k.Inflight)); err != nil {
				return nil, err
			}
		}
	}

	// Idle: server memory per connection against connection count.
	p := plot.New()
	p.X.Label.Text = "open connections"
	p.Y.Label.Text = "server RSS growth per connection, bytes"
	var lines []any
	for _, t := range g.targets {
		pts := idlePoints(g.idle[t])
		var xys plotter.XYs
		for _, pt := range pts {
			xys = append(xys, plotter.XY{X: float64(pt.Conns), Y: pt.UserPerConn})
		}
		if len(xys) > 0 {
			lines = append(lines, t, xys)
		}
	}
	if len(lines) > 0 {
		if err := plotutil.AddLinePoints(p, lines...); err != nil {
			return nil, err
		}
		p.Y.Min = 0
		if err := save(p, "idle-memory.svg", "Server memory per idle connection (lower is better)"); err != nil {
			return nil, err
		}
	}

	// Broadcast and connect: one bar per target.
	type bars struct {
		file, title, y string
		vals           func(t string) (float64, bool)
	}
	var bcBars []bars
	for _, k := range g.bcKeys {
		bcBars = append(bcBars, bars{fmt.Sprintf("broadcast-cpu-%d-%d.svg", k.Subscribers, k.Size),
			fmt.Sprintf("Broadcast to %d subscribers, %s: server CPU µs per delivery (lower is better)", k.Subscribers, bytesLabel(k.Size)), "µs",
			func(t string) (float64, bool) {
				return med(g.broadcast[k][t], func(c *scenario.BroadcastResult) float64 { return c.ServerCPUPerDel })
			}})
	}
	for _, b := range append([]bars{
		{"connect-rate.svg", "Handshakes per second (higher is better)", "handshakes/s",
			func(t string) (float64, bool) {
				return med(g.connect[t], func(c *scenario.ConnectResult) float64 { return c.HandshakesPerSec })
			}},
	}, bcBars...) {
		var names []string
		var vals plotter.Values
		for _, t := range g.targets {
			if v, ok := b.vals(t); ok {
				names = append(names, t)
				vals = append(vals, v)
			}
		}
		if len(vals) < 2 {
			continue
		}
		p := plot.New()
		p.Y.Label.Text = b.y
		bars, err := plotter.NewBarChart(vals, vg.Points(24))
		if err != nil {
			return nil, err
		}
		bars.Color = color.RGBA{R: 0x2b, G: 0x6c, B: 0xb0, A: 0xff}
		bars.LineStyle.Width = 0
		p.Add(bars)
		p.NominalX(names...)
		if err := save(p, b.file, b.title); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// latencyKey picks the echo configuration the latency chart shows.
func latencyKey(g *groups) (echoKey, bool) {
	var best echoKey
	found := false
	for _, k := range g.echoKeys {
		if k.Text {
			continue
		}
		if !found || k.Inflight < best.Inflight || (k.Inflight == best.Inflight && k.Conns > best.Conns) ||
			(k.Inflight == best.Inflight && k.Conns == best.Conns && absDiff(k.Size, 1024) < absDiff(best.Size, 1024)) {
			best, found = k, true
		}
	}
	return best, found
}

func absDiff(a, b int) int {
	if a > b {
		return a - b
	}
	return b - a
}
