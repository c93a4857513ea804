package report

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/megaws/megaws/bench/scenario"
)

// Chart is a chart written next to the report.
type Chart struct {
	File  string // base name, e.g. echo-throughput-c100.svg
	Title string // one line, for the Markdown's alt text
}

var chartW, chartH = 7 * vg.Inch, 4 * vg.Inch

// logSpan is the ratio of largest to smallest value above which an axis
// is logarithmic: past it the small values of a linear axis sit flat on
// the floor (64 B–16 KiB echoes against a 256 KiB peak).
const logSpan = 10

// Charts renders the report's charts as SVG files into dir.
func (r *Report) Charts(dir string) ([]Chart, error) {
	figs, err := r.figures()
	if err != nil {
		return nil, err
	}
	var out []Chart
	for _, f := range figs {
		svg, err := f.render()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.file, err)
		}
		if err := os.WriteFile(filepath.Join(dir, f.file), svg, 0o644); err != nil {
			return nil, err
		}
		out = append(out, Chart{File: f.file, Title: f.alt})
	}
	return out, nil
}

// figure is one chart before it is drawn: a plot holding only axes and
// data, and the title, subtitle, axis labels and legend that render
// places around it. The axis labels are drawn outside gonum's plot
// because gonum reserves room for them around the arithmetic middle of
// the axis range, far off-centre on a log axis, and shrinks the data
// area by a third to make it.
type figure struct {
	file, title, subtitle string
	alt                   string // Chart.Title
	p                     *plot.Plot
	legend                []legendEntry
	xLabel, yLabel        string
	// panels, when set, replace p: plots stacked top to bottom over one
	// X axis (timeline.go), on a canvas height tall, with phases marked
	// (in X axis units).
	panels []panel
	height vg.Length
	phases []scenario.PhaseMark
}

type legendEntry struct {
	label  string
	thumbs []plot.Thumbnailer
}

func (r *Report) figures() ([]*figure, error) {
	g := r.group()
	var figs []*figure
	add := func(f *figure, err error) error {
		if f != nil {
			if f.p != nil {
				f.xLabel, f.p.X.Label.Text = f.p.X.Label.Text, ""
				f.yLabel, f.p.Y.Label.Text = f.p.Y.Label.Text, ""
			}
			figs = append(figs, f)
		}
		return err
	}
	if err := add(idleFigure(g)); err != nil {
		return nil, err
	}
	for _, f := range r.timelineFigures() {
		_ = add(f, nil)
	}
	for _, gr := range echoGroups(g) {
		if len(gr.keys) < 2 {
			continue
		}
		if err := add(echoThroughputFigure(g, gr)); err != nil {
			return nil, err
		}
		if err := add(echoCPUFigure(g, gr)); err != nil {
			return nil, err
		}
	}
	if err := add(latencyFigure(g)); err != nil {
		return nil, err
	}
	if err := add(connectFigure(g)); err != nil {
		return nil, err
	}
	return figs, add(broadcastFigure(g))
}

// echoGroup is the echo configurations of one chart: one connection count
// and kind (in flight, text), every payload size.
type echoGroup struct {
	conns int
	kind  echoKind
	keys  []echoKey
}

func echoGroups(g *groups) []echoGroup {
	type id struct {
		conns int
		kind  echoKind
	}
	var out []echoGroup
	idx := map[id]int{}
	for _, k := range g.echoKeys {
		i, ok := idx[id{k.Conns, k.kind()}]
		if !ok {
			i = len(out)
			idx[id{k.Conns, k.kind()}] = i
			out = append(out, echoGroup{conns: k.Conns, kind: k.kind()})
		}
		out[i].keys = append(out[i].keys, k)
	}
	return out
}

// names returns the file suffix and the description of a group.
func (gr echoGroup) names() (suffix, desc string) {
	desc = num(float64(gr.conns)) + " connections"
	if gr.kind.Text {
		suffix, desc = suffix+"-text", desc+", text"
	}
	if gr.kind.Inflight != 1 {
		suffix, desc = suffix+fmt.Sprintf("-k%d", gr.kind.Inflight), desc+fmt.Sprintf(", %d in flight", gr.kind.Inflight)
	}
	return fmt.Sprintf("-c%d%s", gr.conns, suffix), desc
}

// echoLines plots f against payload size, one line per target.
func echoLines(g *groups, gr echoGroup, f func(*scenario.EchoResult) float64, format func(float64) string) (*plot.Plot, []legendEntry, error) {
	p := newPlot()
	p.X.Label.Text = "payload size (log scale)"
	p.X.Scale = plot.LogScale{}
	var ticks []plot.Tick
	for _, k := range gr.keys {
		ticks = append(ticks, plot.Tick{Value: float64(k.Size), Label: bytesLabel(k.Size)})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	var series []lineSeries
	for _, t := range g.targets {
		var xys plotter.XYs
		for _, k := range gr.keys {
			if v, ok := med(g.echo[k][t], f); ok && v >= 0 {
				xys = append(xys, plotter.XY{X: float64(k.Size), Y: v})
			}
		}
		if len(xys) > 0 {
			series = append(series, lineSeries{t, xys})
		}
	}
	if len(series) == 0 {
		return nil, nil, nil
	}
	legend, err := addLines(p, g, series)
	if err != nil {
		return nil, nil, err
	}
	lo, hi := float64(gr.keys[0].Size), float64(gr.keys[len(gr.keys)-1].Size)
	p.X.Min, p.X.Max = lo/1.6, hi*1.6
	yAxis(p, series, format)
	return p, legend, nil
}

// echoThroughputFigure plots absolute round trips/s: how each server falls
// off with payload size is the point, and 64 B to 256 KiB spans 20–50x,
// so the Y axis is usually logarithmic.
func echoThroughputFigure(g *groups, gr echoGroup) (*figure, error) {
	p, legend, err := echoLines(g, gr, func(e *scenario.EchoResult) float64 { return e.RoundTripsPerSec }, siLabel)
	if p == nil || err != nil {
		return nil, err
	}
	suffix, desc := gr.names()
	p.Y.Label.Text = "round trips/s" + scaleNote(p.Y)
	return &figure{
		file: "echo-throughput" + suffix + ".svg", p: p, legend: legend,
		title: "Echo round trips per second", subtitle: desc + " · higher is better",
		alt: "Echo round trips/s, " + desc + " (higher is better)",
	}, nil
}

// echoCPUFigure shows server CPU per message as megaws/peer ratios grouped
// by payload size, the ratio the tables print: absolute CPU per message
// is within a few µs for every server at 64 B–16 KiB, so the comparison
// the chart exists for drowns even on a log axis. Without megaws it falls
// back to absolute lines.
func echoCPUFigure(g *groups, gr echoGroup) (*figure, error) {
	suffix, desc := gr.names()
	file := "echo-cpu" + suffix + ".svg"
	cpu := func(e *scenario.EchoResult) float64 { return e.ServerCPUPerMsg }
	peers := peersOf(g)
	if len(peers) > 0 {
		var labels []string
		vals := make([][]float64, len(peers))
		found := false
		for _, k := range gr.keys {
			labels = append(labels, bytesLabel(k.Size))
			mv, mok := med(g.echo[k]["megaws"], cpu)
			for i, peer := range peers {
				pv, pok := med(g.echo[k][peer], cpu)
				v := math.NaN()
				if mok && pok && mv > 0 && pv > 0 {
					v, found = mv/pv, true
				}
				vals[i] = append(vals[i], v)
			}
		}
		if found {
			p := newPlot()
			p.X.Label.Text = "payload size"
			p.Y.Label.Text = "megaws ÷ peer (log scale)"
			legend := addBars(p, g, peers, labels, vals, 1)
			setY(p, slices.Concat(vals...), short, true)
			p.Add(refLine{1})
			return &figure{
				file: file, p: p, legend: legend,
				title:    "Server CPU per echoed message: megaws ÷ peer",
				subtitle: desc + " · below 1: megaws spends less CPU",
				alt:      "Server CPU per echoed message, megaws ÷ peer by payload size, " + desc + " (below 1: megaws spends less CPU)",
			}, nil
		}
	}
	p, legend, err := echoLines(g, gr, cpu, usLabel)
	if p == nil || err != nil {
		return nil, err
	}
	p.Y.Label.Text = "CPU per message" + scaleNote(p.Y)
	return &figure{
		file: file, p: p, legend: legend,
		title: "Server CPU per echoed message", subtitle: desc + " · lower is better",
		alt: "Server CPU per echoed message, " + desc + " (lower is better)",
	}, nil
}

// latencyFigure plots p50, p99 and p99.9 of each server at the echo
// configuration latencyKey picks, as a marker per percentile on a line
// from p50 to p99.9: bars would mean nothing on a log axis, which tails
// 10x the median need.
func latencyFigure(g *groups) (*figure, error) {
	k, ok := latencyKey(g)
	if !ok {
		return nil, nil
	}
	pcts := []func(*scenario.EchoResult) float64{
		func(e *scenario.EchoResult) float64 { return float64(e.Latency.P50) },
		func(e *scenario.EchoResult) float64 { return float64(e.Latency.P99) },
		func(e *scenario.EchoResult) float64 { return float64(e.Latency.P999) },
	}
	l := &ladders{}
	var names []string
	var all []float64
	for _, t := range g.targets {
		if len(g.echo[k][t]) == 0 {
			continue
		}
		var v [3]float64
		for i, f := range pcts {
			v[i], _ = med(g.echo[k][t], f)
			all = append(all, v[i])
		}
		names = append(names, t)
		l.vals = append(l.vals, v)
		l.styles = append(l.styles, styleOf(g, t))
	}
	if len(names) == 0 {
		return nil, nil
	}
	p := newPlot()
	p.Add(l)
	p.NominalX(names...)
	setY(p, all, usLabel, false)
	p.Y.Label.Text = "round-trip latency" + scaleNote(p.Y)
	var legend []legendEntry
	for i, name := range []string{"p50", "p99", "p99.9"} {
		legend = append(legend, legendEntry{name, []plot.Thumbnailer{glyphThumb{percentileGlyph(i)}}})
	}
	desc := fmt.Sprintf("%s, %s connections, %d in flight", bytesLabel(k.Size), num(float64(k.Conns)), k.Inflight)
	return &figure{
		file: "echo-latency.svg", p: p, legend: legend,
		title: "Echo round-trip latency", subtitle: desc + " · lower is better",
		alt: "Echo latency percentiles, " + desc + " (lower is better)",
	}, nil
}

// idleFigure plots server memory per idle connection against connections.
func idleFigure(g *groups) (*figure, error) {
	p := newPlot()
	p.X.Label.Text = "open connections"
	var series []lineSeries
	var xs []float64
	for _, t := range g.targets {
		var xys plotter.XYs
		for _, pt := range idlePoints(g.idle[t]) {
			xys = append(xys, plotter.XY{X: float64(pt.Conns), Y: pt.UserPerConn})
			xs = append(xs, float64(pt.Conns))
		}
		if len(xys) > 0 {
			series = append(series, lineSeries{t, xys})
		}
	}
	if len(series) == 0 {
		return nil, nil
	}
	legend, err := addLines(p, g, series)
	if err != nil {
		return nil, err
	}
	var ticks []plot.Tick
	for _, x := range sortedUnique(xs) {
		ticks = append(ticks, plot.Tick{Value: x, Label: siLabel(x)})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	lo, hi := minMax(xs)
	if useLog(xs) {
		p.X.Scale = plot.LogScale{}
		p.X.Min, p.X.Max = lo/1.25, hi*1.25
		p.X.Label.Text += " (log scale)"
	} else {
		pad := (hi - lo) * 0.04
		p.X.Min, p.X.Max = lo-pad, hi+pad
	}
	subtitle := "RSS growth over the idle server ÷ open connections · lower is better"
	yLabel := "RSS per connection"
	if len(series) == 1 {
		// One server: its name goes in the subtitle, the legend would
		// only take room from the data, unless PSS joins RSS.
		subtitle = series[0].name + ": " + subtitle
		rssThumbs := legend[0].thumbs
		legend = nil
		var pss plotter.XYs
		for _, pt := range idlePoints(g.idle[series[0].name]) {
			if pt.PSSPerConn != 0 {
				pss = append(pss, plotter.XY{X: float64(pt.Conns), Y: pt.PSSPerConn})
			}
		}
		if len(pss) == len(series[0].xys) {
			l, pts, err := plotter.NewLinePoints(pss)
			if err != nil {
				return nil, err
			}
			l.LineStyle, pts.GlyphStyle = pssLine, draw.GlyphStyle{Color: pssLine.Color, Radius: 3.2, Shape: draw.BoxGlyph{}}
			p.Add(l, pts)
			series = append(series, lineSeries{"PSS", pss})
			legend = []legendEntry{
				{"RSS", rssThumbs},
				{"PSS", []plot.Thumbnailer{l, pts}},
			}
			subtitle = series[0].name + ": growth over the idle server ÷ open connections · lower is better"
			yLabel = "memory per connection"
		}
	}
	yAxis(p, series, bytesTick)
	p.Y.Label.Text = yLabel + scaleNote(p.Y)
	return &figure{
		file: "idle-memory.svg", p: p, legend: legend,
		title: "Server memory per idle connection", subtitle: subtitle,
		alt: "Server memory per idle connection (lower is better)",
	}, nil
}

// connectFigure plots handshakes/s, one labelled bar per server.
func connectFigure(g *groups) (*figure, error) {
	var names []string
	var vals []float64
	var conns []float64
	for _, t := range g.targets {
		if v, ok := med(g.connect[t], func(c *scenario.ConnectResult) float64 { return c.HandshakesPerSec }); ok {
			names = append(names, t)
			vals = append(vals, v)
			n, _ := med(g.connect[t], func(c *scenario.ConnectResult) float64 { return float64(c.Config.Conns) })
			conns = append(conns, n)
		}
	}
	if len(vals) < 2 {
		return nil, nil
	}
	p := newPlot()
	p.Y.Label.Text = "handshakes/s"
	b := &bars{vals: [][]float64{vals}, groups: len(names), width: vg.Points(28), single: true, valueLabel: siLabel}
	for _, t := range names {
		b.styles = append(b.styles, styleOf(g, t))
	}
	p.Add(b)
	p.NominalX(names...)
	setY(p, append(vals, 0), siLabel, false)
	subtitle := "higher is better"
	if lo, _ := minMax(conns); lo > 0 {
		subtitle = num(lo) + " connections · " + subtitle
	}
	return &figure{
		file: "connect-rate.svg", p: p,
		title: "Connect burst: handshakes per second", subtitle: subtitle,
		alt: "Handshakes per second (higher is better)",
	}, nil
}

// broadcastFigure puts every broadcast configuration in one chart, a group
// of bars per configuration: CPU per delivery spans 2–11 µs, so a linear
// axis from zero compares the configurations side by side.
func broadcastFigure(g *groups) (*figure, error) {
	if len(g.bcKeys) == 0 {
		return nil, nil
	}
	var labels []string
	rates := map[float64]bool{}
	for _, k := range g.bcKeys {
		rates[k.Rate] = true
	}
	for _, k := range g.bcKeys {
		l := fmt.Sprintf("%s subs\n%s", siLabel(float64(k.Subscribers)), bytesLabel(k.Size))
		if len(rates) > 1 {
			l += ", " + siLabel(k.Rate) + "/s"
		}
		labels = append(labels, l)
	}
	var names []string
	var vals [][]float64
	var all []float64
	for _, t := range g.targets {
		s := make([]float64, len(g.bcKeys))
		found := false
		for i, k := range g.bcKeys {
			s[i] = math.NaN()
			if v, ok := med(g.broadcast[k][t], func(c *scenario.BroadcastResult) float64 { return c.ServerCPUPerDel }); ok {
				s[i], found = v, true
				all = append(all, v)
			}
		}
		if found {
			names = append(names, t)
			vals = append(vals, s)
		}
	}
	if len(names) < 2 {
		return nil, nil
	}
	p := newPlot()
	p.Y.Label.Text = "CPU per delivery"
	p.X.Label.Text = "subscribers, payload, publishes/s"
	legend := addBars(p, g, names, labels, vals, 0)
	setY(p, append(all, 0), usLabel, false)
	subtitle := "lower is better"
	if slices.ContainsFunc(slices.Concat(vals...), math.IsNaN) {
		subtitle += " · n/a: no successful run"
	}
	if len(rates) == 1 {
		p.X.Label.Text = "subscribers, payload"
		subtitle = fmt.Sprintf("%s publishes/s · %s", num(g.bcKeys[0].Rate), subtitle)
	}
	return &figure{
		file: "broadcast-cpu.svg", p: p, legend: legend,
		title: "Broadcast: server CPU per delivery", subtitle: subtitle,
		alt: "Broadcast: server CPU µs per delivery by subscribers and payload (lower is better)",
	}, nil
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

// peersOf returns the targets compared with megaws, nil when megaws is
// not the first target (the tables print ratios under the same rule).
func peersOf(g *groups) []string {
	if len(g.targets) > 1 && g.targets[0] == "megaws" {
		return g.targets[1:]
	}
	return nil
}

// Styles.

var (
	sans     = font.Font{Typeface: "Liberation", Variant: "Sans"}
	ink      = color.Gray{Y: 0x20}
	softInk  = color.Gray{Y: 0x55}
	gridInk  = color.Gray{Y: 0xdd}
	tickFont = font.From(sans, 10)
)

func textFor(size vg.Length, c color.Color) text.Style {
	return text.Style{Color: c, Font: font.From(sans, size), Handler: plot.DefaultTextHandler}
}

// serverStyle is how one server looks in every chart of a report: a
// colour-blind-safe colour (Okabe–Ito), and a dash pattern and marker
// that tell the servers apart in grayscale.
type serverStyle struct {
	color  color.Color
	dashes []vg.Length
	glyph  draw.GlyphDrawer
	width  vg.Length
}

var serverStyles = []serverStyle{
	{color.RGBA{0x00, 0x00, 0x00, 0xff}, nil, draw.CircleGlyph{}, 2.4},
	{color.RGBA{0xe6, 0x9f, 0x00, 0xff}, []vg.Length{6, 3}, draw.BoxGlyph{}, 1.5},
	{color.RGBA{0x56, 0xb4, 0xe9, 0xff}, []vg.Length{2, 2}, draw.TriangleGlyph{}, 1.5},
	{color.RGBA{0x00, 0x9e, 0x73, 0xff}, []vg.Length{8, 2, 2, 2}, draw.CrossGlyph{}, 1.5},
	{color.RGBA{0x00, 0x72, 0xb2, 0xff}, []vg.Length{4, 2}, draw.RingGlyph{}, 1.5},
	{color.RGBA{0xd5, 0x5e, 0x00, 0xff}, []vg.Length{10, 3}, draw.SquareGlyph{}, 1.5},
	{color.RGBA{0xcc, 0x79, 0xa7, 0xff}, []vg.Length{6, 2, 1, 2, 1, 2}, draw.PyramidGlyph{}, 1.5},
	{color.RGBA{0x99, 0x99, 0x99, 0xff}, []vg.Length{1, 3}, draw.PlusGlyph{}, 1.5},
}

// styleOf returns target's style, fixed by its place in the report's
// target list so a server keeps its look when it lacks a data point.
func styleOf(g *groups, target string) serverStyle {
	for i, t := range g.targets {
		if t == target {
			return serverStyles[i%len(serverStyles)]
		}
	}
	return serverStyles[len(serverStyles)-1]
}

func (s serverStyle) line() draw.LineStyle {
	return draw.LineStyle{Color: s.color, Width: s.width, Dashes: s.dashes}
}

func (s serverStyle) marker() draw.GlyphStyle {
	return draw.GlyphStyle{Color: s.color, Radius: 3.2, Shape: s.glyph}
}

func percentileGlyph(i int) draw.GlyphStyle {
	shapes := []draw.GlyphDrawer{draw.CircleGlyph{}, draw.TriangleGlyph{}, draw.BoxGlyph{}}
	return draw.GlyphStyle{Color: ink, Radius: 3.5, Shape: shapes[i]}
}

// newPlot returns a plot in the report's fonts with light horizontal
// grid lines and no title or legend: render draws those outside it.
func newPlot() *plot.Plot {
	p := plot.New()
	p.BackgroundColor = nil
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Tick.Label.Font = tickFont
		a.Tick.Label.Color = ink
		a.Color = softInk
		a.Tick.Color = softInk
	}
	grid := plotter.NewGrid()
	grid.Vertical.Color = nil
	grid.Horizontal = draw.LineStyle{Color: gridInk, Width: 0.5}
	p.Add(grid)
	return p
}

type lineSeries struct {
	name string
	xys  plotter.XYs
}

// addLines adds a line with markers per series and returns the legend.
func addLines(p *plot.Plot, g *groups, series []lineSeries) ([]legendEntry, error) {
	var legend []legendEntry
	for _, s := range series {
		l, pts, err := plotter.NewLinePoints(s.xys)
		if err != nil {
			return nil, err
		}
		st := styleOf(g, s.name)
		l.LineStyle = st.line()
		pts.GlyphStyle = st.marker()
		p.Add(l, pts)
		legend = append(legend, legendEntry{s.name, []plot.Thumbnailer{l, pts}})
	}
	return legend, nil
}

// yAxis sets the Y range and scale from the values of series.
func yAxis(p *plot.Plot, series []lineSeries, format func(float64) string) {
	var ys []float64
	for _, s := range series {
		for _, xy := range s.xys {
			ys = append(ys, xy.Y)
		}
	}
	setY(p, ys, format, false)
}

// setY sets the Y axis over vals: logarithmic when they span more than
// logSpan (or always, for ratios), otherwise linear from zero so bar and
// line heights stay proportional to the values.
func setY(p *plot.Plot, vals []float64, format func(float64) string, ratio bool) {
	lo, hi := minMax(vals)
	if ratio || useLog(vals) {
		if ratio {
			lo, hi = math.Min(lo, 1), math.Max(hi, 1)
		}
		pad := math.Max(math.Pow(hi/lo, 0.06), 1.12)
		p.Y.Scale = plot.LogScale{}
		p.Y.Min, p.Y.Max = lo/pad, hi*pad
		p.Y.Tick.Marker = logTicks{format}
		return
	}
	p.Y.Scale = plot.LinearScale{}
	p.Y.Min, p.Y.Max = 0, hi*1.08
	if hi <= 0 {
		p.Y.Max = 1
	}
	p.Y.Tick.Marker = linearTicks{format}
}

func scaleNote(a plot.Axis) string {
	if _, ok := a.Scale.(plot.LogScale); ok {
		return " (log scale)"
	}
	return ""
}

// useLog reports whether vals, all positive, span more than logSpan.
func useLog(vals []float64) bool {
	lo, hi := minMax(vals)
	return lo > 0 && hi/lo > logSpan
}

func minMax(vals []float64) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, v := range vals {
		if math.IsNaN(v) {
			continue
		}
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	if math.IsInf(lo, 1) {
		return 0, 0
	}
	return lo, hi
}

func sortedUnique(xs []float64) []float64 {
	out := slices.Clone(xs)
	slices.Sort(out)
	return slices.Compact(out)
}

// Ticks and their labels.

// linearTicks labels at most seven round values (1, 2 or 5 times a power
// of ten apart) in format, with a minor tick between each two.
type linearTicks struct{ format func(float64) string }

func (t linearTicks) Ticks(lo, hi float64) []plot.Tick {
	if hi <= lo {
		return []plot.Tick{{Value: lo, Label: t.format(lo)}}
	}
	e := math.Pow10(int(math.Floor(math.Log10((hi - lo) / 5))))
	step := 10 * e
	for _, m := range []float64{1, 2, 5} {
		if (hi-lo)/(m*e) <= 6 {
			step = m * e
			break
		}
	}
	var ticks []plot.Tick
	for i := math.Ceil(lo / step * 2); i/2*step <= hi*(1+1e-9); i++ {
		tk := plot.Tick{Value: i / 2 * step}
		if math.Mod(i, 2) == 0 {
			tk.Label = t.format(tk.Value)
		}
		ticks = append(ticks, tk)
	}
	return ticks
}

// logTicks labels the powers of ten in range, then 2 and 5 times them,
// then 3, 4, 6 and 8 times them, each only where it keeps a seventh of
// the range from the labels already chosen; minor ticks mark the integer
// multiples (only the powers of ten over more than three decades).
type logTicks struct{ format func(float64) string }

func (t logTicks) Ticks(lo, hi float64) []plot.Tick {
	decades := math.Log10(hi / lo)
	gap := decades / 7
	in := func(v float64) bool { return v >= lo*(1-1e-9) && v <= hi*(1+1e-9) }
	e0, e1 := int(math.Floor(math.Log10(lo))), int(math.Ceil(math.Log10(hi)))
	var labelled []float64
	for _, tier := range [][]float64{{1}, {2, 5}, {3, 4, 6, 8}} {
		if decades > 3 && tier[0] != 1 {
			break
		}
		for e := e0; e <= e1; e++ {
			for _, m := range tier {
				v := m * math.Pow10(e)
				if in(v) && !slices.ContainsFunc(labelled, func(l float64) bool { return math.Abs(math.Log10(v/l)) < gap }) {
					labelled = append(labelled, v)
				}
			}
		}
	}
	if len(labelled) < 2 {
		return linearTicks(t).Ticks(lo, hi)
	}
	var ticks []plot.Tick
	for e := e0; e <= e1; e++ {
		for m := 1; m <= 9; m++ {
			v := float64(m) * math.Pow10(e)
			if !in(v) || (decades > 3 && m != 1) {
				continue
			}
			tk := plot.Tick{Value: v}
			if slices.ContainsFunc(labelled, func(l float64) bool { return math.Abs(v/l-1) < 1e-9 }) {
				tk.Label = t.format(v)
			}
			ticks = append(ticks, tk)
		}
	}
	return ticks
}

// siLabel formats a count with k and M suffixes: 950, 1.5k, 18k, 1M.
func siLabel(v float64) string {
	switch a := math.Abs(v); {
	case a == 0:
		return "0"
	case a >= 1e6:
		return short(v/1e6) + "M"
	case a >= 1e3:
		return short(v/1e3) + "k"
	}
	return short(v)
}

// bytesTick formats a byte count in decimal units, as the tables do.
func bytesTick(v float64) string {
	switch a := math.Abs(v); {
	case a == 0:
		return "0"
	case a >= 1e9:
		return short(v/1e9) + " GB"
	case a >= 1e6:
		return short(v/1e6) + " MB"
	case a >= 1e3:
		return short(v/1e3) + " KB"
	}
	return short(v) + " B"
}

// usLabel formats microseconds: 0.5 µs, 250 µs, 2.5 ms, 1.2 s.
func usLabel(v float64) string {
	switch a := math.Abs(v); {
	case a == 0:
		return "0"
	case a >= 1e6:
		return short(v/1e6) + " s"
	case a >= 1e3:
		return short(v/1e3) + " ms"
	}
	return short(v) + " µs"
}

// short formats v with at most three significant digits and no trailing
// zeros.
func short(v float64) string {
	if v == 0 {
		return "0"
	}
	s := strconv.FormatFloat(v, 'f', max(0, 2-int(math.Floor(math.Log10(math.Abs(v))))), 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// Plotters.

// bars draws, for each group on the X axis, one bar per series from base
// to the value, outlined, with the series' marker past the bar's end so
// a bar is identified without colour. NaN is no value: "n/a" is written
// at its place.
type bars struct {
	vals   [][]float64   // [series][group]
	styles []serverStyle // per series, or per group when single
	groups int
	base   float64
	width  vg.Length
	// single: one series, a bar per server centred on its group, in the
	// server's colour and without a marker (the axis names the server).
	single     bool
	valueLabel func(float64) string // nil: no value above the bar
}

// addBars adds grouped bars from base to vals (one series per name, one
// group per label) and returns the legend; the caller sets the Y axis.
func addBars(p *plot.Plot, g *groups, names, labels []string, vals [][]float64, base float64) []legendEntry {
	b := &bars{vals: vals, groups: len(labels), base: base}
	// At most 14 pt a bar; narrower when many share the ~330 pt a plot
	// beside its legend has.
	b.width = vg.Points(math.Min(14, 300/float64(len(labels)*len(names))))
	var legend []legendEntry
	for _, n := range names {
		st := styleOf(g, n)
		b.styles = append(b.styles, st)
		legend = append(legend, legendEntry{n, []plot.Thumbnailer{barThumb{st}}})
	}
	p.Add(b)
	p.NominalX(labels...)
	p.X.Min, p.X.Max = -0.5, float64(len(labels))-0.5
	return legend
}

func (b *bars) DataRange() (xmin, xmax, ymin, ymax float64) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range b.vals {
		l, h := minMax(s)
		lo, hi = math.Min(lo, l), math.Max(hi, h)
	}
	return -0.5, float64(b.groups) - 0.5, math.Min(lo, b.base), math.Max(hi, b.base)
}

func (b *bars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	base := trY(b.base)
	n := len(b.vals)
	na := textFor(8, softInk)
	na.XAlign, na.YAlign = draw.XCenter, draw.YCenter
	na.Rotation = math.Pi / 2
	vl := textFor(9, ink)
	vl.XAlign, vl.YAlign = draw.XCenter, draw.YBottom
	for si, s := range b.vals {
		for gi, v := range s {
			st := b.styles[si]
			x := trX(float64(gi)) + (vg.Length(si)-vg.Length(n-1)/2)*b.width
			if b.single {
				st, x = b.styles[gi], trX(float64(gi))
			}
			if math.IsNaN(v) {
				c.FillText(na, vg.Point{X: x, Y: base + 12}, "n/a")
				continue
			}
			y := trY(v)
			r := vg.Rectangle{Min: vg.Point{X: x - b.width/2 + 0.5, Y: min(base, y)}, Max: vg.Point{X: x + b.width/2 - 0.5, Y: max(base, y)}}
			c.SetColor(st.color)
			c.Fill(r.Path())
			c.SetLineStyle(draw.LineStyle{Color: ink, Width: 0.4})
			c.Stroke(r.Path())
			if b.single {
				if b.valueLabel != nil {
					c.FillText(vl, vg.Point{X: x, Y: y + 3}, b.valueLabel(v))
				}
				continue
			}
			m := st.marker()
			m.Color, m.Radius = ink, min(3, b.width/2)
			off := m.Radius + 1.5
			if y < base {
				off = -off
			}
			c.DrawGlyphNoClip(m, vg.Point{X: x, Y: y + off})
		}
	}
}

// barThumb is a bar's legend entry: its fill and marker.
type barThumb struct{ st serverStyle }

func (t barThumb) Thumbnail(c *draw.Canvas) {
	r := vg.Rectangle{Min: vg.Point{X: c.Min.X, Y: c.Min.Y + 1}, Max: vg.Point{X: c.Min.X + 11, Y: c.Max.Y - 1}}
	c.SetColor(t.st.color)
	c.Fill(r.Path())
	c.SetLineStyle(draw.LineStyle{Color: ink, Width: 0.4})
	c.Stroke(r.Path())
	m := t.st.marker()
	m.Color, m.Radius = ink, 3
	c.DrawGlyphNoClip(m, vg.Point{X: c.Min.X + 17, Y: (c.Min.Y + c.Max.Y) / 2})
}

// glyphThumb is a marker's legend entry.
type glyphThumb struct{ st draw.GlyphStyle }

func (t glyphThumb) Thumbnail(c *draw.Canvas) { c.DrawGlyphNoClip(t.st, c.Center()) }

// refLine is a horizontal line at Y, the "megaws = 1" of a ratio chart.
type refLine struct{ y float64 }

func (l refLine) Plot(c draw.Canvas, p *plot.Plot) {
	_, trY := p.Transforms(&c)
	c.StrokeLine2(draw.LineStyle{Color: ink, Width: 1}, c.Min.X, trY(l.y), c.Max.X, trY(l.y))
}

// ladders draws each server's p50, p99 and p99.9 as markers on a line in
// the server's colour.
type ladders struct {
	vals   [][3]float64
	styles []serverStyle
}

func (l *ladders) DataRange() (xmin, xmax, ymin, ymax float64) {
	var all []float64
	for _, v := range l.vals {
		all = append(all, v[:]...)
	}
	lo, hi := minMax(all)
	return -0.5, float64(len(l.vals)) - 0.5, lo, hi
}

func (l *ladders) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	for i, v := range l.vals {
		x := trX(float64(i))
		lo, hi := minMax(v[:])
		c.StrokeLine2(draw.LineStyle{Color: l.styles[i].color, Width: 3}, x, trY(lo), x, trY(hi))
		for j, y := range v {
			c.DrawGlyph(percentileGlyph(j), vg.Point{X: x, Y: trY(y)})
		}
	}
}

// Layout and rendering.

// chartLayout is where render puts the parts of a figure on its canvas.
type chartLayout struct {
	title  []string // title lines, then subtitle lines
	nTitle int      // how many of title are the title proper
	plot   vg.Rectangle
	// data is the plot's data area, inside plot: the axes and tick
	// labels lie between the two.
	data   vg.Rectangle
	xLabel vg.Point     // centre of the X axis label's baseline
	yLabel vg.Point     // centre of the Y axis label, turned a quarter left
	legend vg.Rectangle // empty when the figure has no legend
	entryH vg.Length
}

const (
	margin    = 8
	thumbW    = 24
	legendGap = 14
)

var (
	titleStyle     = textFor(13, ink)
	axisLabelStyle = textFor(11, ink)
	subtitleStyle  = textFor(10.5, softInk)
	legendStyle    = textFor(10.5, ink)
)

// layout places the title and subtitle across the top, wrapped to the
// canvas width, the legend in a column right of the plot with its top
// level with the data area's, and the plot in what remains.
func (f *figure) layout(c draw.Canvas) chartLayout {
	var l chartLayout
	width := c.Max.X - c.Min.X - 2*margin
	l.title = wrap(titleStyle, f.title, width)
	l.nTitle = len(l.title)
	l.title = append(l.title, wrap(subtitleStyle, f.subtitle, width)...)
	top := c.Max.Y - margin
	for i, s := range l.title {
		top -= lineStyle(l, i).Height(s)
	}
	l.plot = vg.Rectangle{Min: vg.Point{X: c.Min.X + margin, Y: c.Min.Y + margin}, Max: vg.Point{X: c.Max.X - margin, Y: top - 6}}
	if f.xLabel != "" {
		l.plot.Min.Y += axisLabelStyle.Height(f.xLabel) + 2
	}
	if f.yLabel != "" {
		l.plot.Min.X += axisLabelStyle.Height(f.yLabel) + 4
	}
	var lw vg.Length
	if len(f.legend) > 0 {
		for _, e := range f.legend {
			lw = max(lw, legendStyle.Width(e.label))
		}
		lw += thumbW + 5
		l.entryH = legendStyle.Height("M") + 4
		l.plot.Max.X = c.Max.X - margin - lw - legendGap
	}
	l.data = f.p.DataCanvas(draw.Canvas{Canvas: c.Canvas, Rectangle: l.plot}).Rectangle
	l.xLabel = vg.Point{X: (l.data.Min.X + l.data.Max.X) / 2, Y: c.Min.Y + margin}
	l.yLabel = vg.Point{X: c.Min.X + margin + axisLabelStyle.Height(f.yLabel)/2, Y: (l.data.Min.Y + l.data.Max.Y) / 2}
	if len(f.legend) > 0 {
		l.legend = vg.Rectangle{
			Min: vg.Point{X: c.Max.X - margin - lw, Y: l.data.Max.Y - vg.Length(len(f.legend))*l.entryH},
			Max: vg.Point{X: c.Max.X - margin, Y: l.data.Max.Y},
		}
	}
	return l
}

func lineStyle(l chartLayout, i int) text.Style {
	if i < l.nTitle {
		return titleStyle
	}
	return subtitleStyle
}

// wrap splits s into lines no wider than w, breaking at spaces.
func wrap(sty text.Style, s string, w vg.Length) []string {
	var lines []string
	cur := ""
	for _, word := range strings.Fields(s) {
		next := word
		if cur != "" {
			next = cur + " " + word
		}
		if cur != "" && sty.Width(next) > w {
			lines = append(lines, cur)
			next = word
		}
		cur = next
	}
	if cur != "" {
		lines = append(lines, cur)
	}
	return lines
}

// render draws the figure as an SVG document.
func (f *figure) render() ([]byte, error) {
	if len(f.panels) > 0 {
		return f.renderPanels()
	}
	cv := vgsvg.New(chartW, chartH)
	c := draw.New(cv)
	c.SetColor(color.White)
	c.Fill(c.Rectangle.Path())
	l := f.layout(c)
	y := c.Max.Y - margin
	for i, s := range l.title {
		sty := lineStyle(l, i)
		sty.XAlign, sty.YAlign = draw.XCenter, draw.YTop
		c.FillText(sty, vg.Point{X: (c.Min.X + c.Max.X) / 2, Y: y}, s)
		y -= sty.Height(s)
	}
	f.p.Draw(draw.Canvas{Canvas: cv, Rectangle: l.plot})
	xl := axisLabelStyle
	xl.XAlign, xl.YAlign = draw.XCenter, draw.YBottom
	c.FillText(xl, l.xLabel, f.xLabel)
	yl := axisLabelStyle
	yl.XAlign, yl.YAlign, yl.Rotation = draw.XCenter, draw.YCenter, math.Pi/2
	c.FillText(yl, l.yLabel, f.yLabel)
	for i, e := range f.legend {
		top := l.legend.Max.Y - vg.Length(i)*l.entryH
		icon := draw.Canvas{Canvas: cv, Rectangle: vg.Rectangle{
			Min: vg.Point{X: l.legend.Min.X, Y: top - l.entryH + 2},
			Max: vg.Point{X: l.legend.Min.X + thumbW, Y: top - 2},
		}}
		for _, t := range e.thumbs {
			t.Thumbnail(&icon)
		}
		sty := legendStyle
		sty.YAlign = draw.YCenter
		c.FillText(sty, vg.Point{X: l.legend.Min.X + thumbW + 5, Y: top - l.entryH/2}, e.label)
	}
	var buf bytes.Buffer
	if _, err := cv.WriteTo(&buf); err != nil {
		return nil, err
	}
	// Liberation Sans has Arial's metrics: a viewer without it lays the
	// text out in the widths gonum measured.
	return bytes.ReplaceAll(buf.Bytes(), []byte("font-family:Liberation Sans;"), []byte("font-family:Liberation Sans,Arial,Helvetica,sans-serif;")), nil
}
