package report

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/megaws/megaws/bench/scenario"
)

// The timeline of an idle run: open connections, server memory and CPU
// of both sides against time, stacked panels sharing the time axis, the
// run's phases as dotted lines across them.

// panel is one of a stacked figure's plots, with its own Y axis label and
// legend; the figure's X axis label goes under the last one.
type panel struct {
	p      *plot.Plot
	yLabel string
	legend []legendEntry
}

var timelineH = 6.2 * vg.Inch

// timelineFile names the timeline chart of run: one idle run with
// samples gets idle-timeline.svg, several get the target and repetition
// in the name.
func timelineFile(r *Report, run Run) string {
	n := 0
	for _, x := range r.detailRuns() {
		if len(x.Idle.Resources) >= 2 {
			n++
		}
	}
	if n <= 1 && len(r.idleRuns()) <= 1 {
		return "idle-timeline.svg"
	}
	return fmt.Sprintf("idle-timeline-%s-%d.svg", run.Target, run.Rep)
}

// timelineFigures returns a timeline figure per idle run with resource
// samples.
func (r *Report) timelineFigures() []*figure {
	var figs []*figure
	for _, run := range r.detailRuns() {
		if f := timelineFigure(run.Idle); f != nil {
			f.file = timelineFile(r, run)
			if len(r.idleRuns()) > 1 {
				f.subtitle = fmt.Sprintf("%s, run %d · %s", run.Target, run.Rep, f.subtitle)
			}
			figs = append(figs, f)
		}
	}
	return figs
}

// Series looks: not servers but quantities, so their own colours (from
// the same Okabe–Ito set) and dashes.
var (
	serverLine = draw.LineStyle{Color: color.Black, Width: 2}
	clientLine = draw.LineStyle{Color: color.RGBA{0xe6, 0x9f, 0x00, 0xff}, Width: 1.8, Dashes: []vg.Length{6, 3}}
	pssLine    = draw.LineStyle{Color: color.RGBA{0x00, 0x72, 0xb2, 0xff}, Width: 1.8, Dashes: []vg.Length{2, 2}}
	phaseLine  = draw.LineStyle{Color: color.Gray{Y: 0x88}, Width: 0.8, Dashes: []vg.Length{2, 3}}
)

func timelineFigure(i *scenario.IdleResult) *figure {
	rs := i.Resources
	if len(rs) < 2 {
		return nil
	}
	// Minutes past 5 minutes of run, seconds below.
	unit, unitName := 1.0, "s"
	if rs[len(rs)-1].At > 300 {
		unit, unitName = 60, "min"
	}
	xs := func(f func(scenario.ResourceSample) float64) plotter.XYs {
		out := make(plotter.XYs, len(rs))
		for k, s := range rs {
			out[k] = plotter.XY{X: s.At / unit, Y: f(s)}
		}
		return out
	}
	x0, x1 := math.Min(0, rs[0].At/unit), rs[len(rs)-1].At/unit
	newPanel := func(yLabel string, format func(float64) string, series ...struct {
		name string
		xys  plotter.XYs
		ls   draw.LineStyle
	}) panel {
		p := newPlot()
		p.X.Min, p.X.Max = x0, x1
		p.X.Tick.Marker = blankTicks{linearTicks{short}}
		var legend []legendEntry
		hi := 0.0
		for _, s := range series {
			l, err := plotter.NewLine(s.xys)
			if err != nil {
				continue
			}
			l.LineStyle = s.ls
			p.Add(l)
			legend = append(legend, legendEntry{s.name, []plot.Thumbnailer{l}})
			for _, xy := range s.xys {
				hi = math.Max(hi, xy.Y)
			}
		}
		p.Add(phaseLines{marks: i.Phases, unit: unit})
		p.Y.Min, p.Y.Max = 0, hi*1.1
		if hi <= 0 {
			p.Y.Max = 1
		}
		p.Y.Tick.Marker = linearTicks{format}
		return panel{p: p, yLabel: yLabel, legend: legend}
	}
	type series = struct {
		name string
		xys  plotter.XYs
		ls   draw.LineStyle
	}
	conns := newPanel("open connections", siLabel,
		series{"clients' count", xs(func(s scenario.ResourceSample) float64 { return float64(s.Conns) }), serverLine})
	mem := newPanel("server memory", bytesTick,
		series{"RSS", xs(func(s scenario.ResourceSample) float64 { return float64(s.ServerRSS) }), serverLine},
		series{"PSS", xs(func(s scenario.ResourceSample) float64 { return float64(s.ServerPSS) }), pssLine})
	cpu := newPanel("CPU, cores", short,
		series{"server", xs(func(s scenario.ResourceSample) float64 { return s.ServerCPU }), serverLine},
		series{"load generator", xs(func(s scenario.ResourceSample) float64 { return s.ClientCPU }), clientLine})
	// Only the bottom panel labels the time axis.
	cpu.p.X.Tick.Marker = linearTicks{short}
	peak := int64(0)
	for _, s := range rs {
		peak = max(peak, s.Conns)
	}
	sub := fmt.Sprintf("%s connections · %d server and %d client processes · CPU averaged over %s",
		num(float64(peak)), i.ServerProcesses, max(i.Processes, 1), durLabel(i.Config.SampleEvery))
	var phases []scenario.PhaseMark
	for _, m := range i.Phases {
		phases = append(phases, scenario.PhaseMark{Name: m.Name, At: m.At / unit})
	}
	return &figure{
		title: "RSS and CPU over time", subtitle: sub, phases: phases,
		alt:    "Open connections, server RSS and PSS, and server and load-generator CPU over the run, with its phases",
		panels: []panel{conns, mem, cpu}, height: timelineH,
		xLabel: "time since the run began, " + unitName,
	}
}

func durLabel(d time.Duration) string {
	if d <= 0 {
		d = 2 * time.Second // IdleConfig's default
	}
	return short(d.Seconds()) + " s"
}

// blankTicks keeps another Ticker's ticks without their labels: the
// panels above the last share its time axis.
type blankTicks struct{ t plot.Ticker }

func (b blankTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := b.t.Ticks(lo, hi)
	for k := range ts {
		ts[k].Label = ""
	}
	return ts
}

// phaseLines draws a dotted vertical line where each phase began.
type phaseLines struct {
	marks []scenario.PhaseMark
	unit  float64
}

func (l phaseLines) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	for _, m := range l.marks {
		x := trX(m.At / l.unit)
		if x < c.Min.X || x > c.Max.X {
			continue
		}
		c.StrokeLine2(phaseLine, x, c.Min.Y, x, c.Max.Y)
	}
}

// phaseLabels places each phase's name above the data area at its line,
// left-aligned, on the first of a few rows where it does not run into the
// previous name; a name that fits no row is left out (its line stays).
func phaseLabels(marks []scenario.PhaseMark, x func(float64) vg.Length, right vg.Length) (rows [][]placedLabel) {
	sty := textFor(9, softInk)
	var ends []vg.Length
	for _, m := range marks {
		px := x(m.At)
		wd := sty.Width(m.Name)
		placed := false
		for r := range ends {
			if px >= ends[r]+4 && px+wd <= right {
				rows[r] = append(rows[r], placedLabel{m.Name, px})
				ends[r], placed = px+wd, true
				break
			}
		}
		if !placed && len(ends) < 3 {
			px = min(px, right-wd)
			rows = append(rows, []placedLabel{{m.Name, px}})
			ends = append(ends, px+wd)
		}
	}
	return rows
}

type placedLabel struct {
	text string
	x    vg.Length
}

// renderPanels draws a stacked figure: title and subtitle, phase names,
// the panels with their data areas aligned left and right, a legend
// beside each, the time axis label under the last.
func (f *figure) renderPanels() ([]byte, error) {
	cv := vgsvg.New(chartW, f.height)
	c := draw.New(cv)
	c.SetColor(color.White)
	c.Fill(c.Rectangle.Path())
	// Text is measured in Liberation Sans (Arial's metrics); leave room
	// for a viewer that falls back to a wider face such as DejaVu Sans.
	const slack = 1.12
	width := (c.Max.X - c.Min.X - 2*margin) / slack
	lines := wrap(titleStyle, f.title, width)
	nTitle := len(lines)
	lines = append(lines, wrap(subtitleStyle, f.subtitle, width)...)
	y := c.Max.Y - margin
	for k, s := range lines {
		sty := subtitleStyle
		if k < nTitle {
			sty = titleStyle
		}
		sty.XAlign, sty.YAlign = draw.XCenter, draw.YTop
		c.FillText(sty, vg.Point{X: (c.Min.X + c.Max.X) / 2, Y: y}, s)
		y -= sty.Height(s)
	}
	var lw vg.Length
	for _, pn := range f.panels {
		for _, e := range pn.legend {
			lw = max(lw, legendStyle.Width(e.label))
		}
	}
	right := c.Max.X - margin
	if lw > 0 {
		lw = lw*slack + thumbW + 5
		right -= lw + legendGap
	}
	left := c.Min.X + margin + axisLabelStyle.Height("M") + 4
	bottom := c.Min.Y + margin + axisLabelStyle.Height(f.xLabel) + 2
	// Room for up to three rows of phase names above the first panel.
	marks := f.phases
	labelH := textFor(9, softInk).Height("M")
	top := y - 4
	const gap = 12
	n := vg.Length(len(f.panels))
	// Lay out once with a guess of the phase rows, then again with the
	// rows the aligned data area gives.
	layout := func(rows int) ([]vg.Rectangle, []vg.Rectangle) {
		t := top - vg.Length(rows)*labelH
		h := (t - bottom - gap*(n-1)) / n
		rects := make([]vg.Rectangle, len(f.panels))
		for k := range f.panels {
			hi := t - vg.Length(k)*(h+gap)
			rects[k] = vg.Rectangle{Min: vg.Point{X: left, Y: hi - h}, Max: vg.Point{X: right, Y: hi}}
		}
		return alignPanels(f.panels, c, rects)
	}
	rects, data := layout(1)
	if len(marks) > 0 {
		rows := phaseLabels(marks, f.phaseX(data[0]), data[0].Max.X+lw+legendGap)
		rects, data = layout(max(len(rows), 1))
		rows = phaseLabels(marks, f.phaseX(data[0]), data[0].Max.X+lw+legendGap)
		sty := textFor(9, softInk)
		sty.YAlign = draw.YBottom
		for r, row := range rows {
			for _, pl := range row {
				c.FillText(sty, vg.Point{X: pl.x + 2, Y: data[0].Max.Y + 2 + vg.Length(len(rows)-1-r)*labelH}, pl.text)
			}
		}
	}
	for k, pn := range f.panels {
		pn.p.Draw(draw.Canvas{Canvas: cv, Rectangle: rects[k]})
		d := data[k]
		yl := axisLabelStyle
		yl.XAlign, yl.YAlign, yl.Rotation = draw.XCenter, draw.YCenter, math.Pi/2
		c.FillText(yl, vg.Point{X: c.Min.X + margin + axisLabelStyle.Height(pn.yLabel)/2, Y: (d.Min.Y + d.Max.Y) / 2}, pn.yLabel)
		entryH := legendStyle.Height("M") + 4
		for e, le := range pn.legend {
			etop := d.Max.Y - vg.Length(e)*entryH
			icon := draw.Canvas{Canvas: cv, Rectangle: vg.Rectangle{
				Min: vg.Point{X: c.Max.X - margin - lw, Y: etop - entryH + 2},
				Max: vg.Point{X: c.Max.X - margin - lw + thumbW, Y: etop - 2},
			}}
			for _, t := range le.thumbs {
				t.Thumbnail(&icon)
			}
			sty := legendStyle
			sty.YAlign = draw.YCenter
			c.FillText(sty, vg.Point{X: c.Max.X - margin - lw + thumbW + 5, Y: etop - entryH/2}, le.label)
		}
	}
	xl := axisLabelStyle
	xl.XAlign, xl.YAlign = draw.XCenter, draw.YBottom
	last := data[len(data)-1]
	c.FillText(xl, vg.Point{X: (last.Min.X + last.Max.X) / 2, Y: c.Min.Y + margin}, f.xLabel)
	var buf bytes.Buffer
	if _, err := cv.WriteTo(&buf); err != nil {
		return nil, err
	}
	return bytes.ReplaceAll(buf.Bytes(), []byte("font-family:Liberation Sans;"), []byte("font-family:Liberation Sans,Arial,Helvetica,sans-serif;")), nil
}

// phaseX maps a time, in the panels' unit, to the X of data area d.
func (f *figure) phaseX(d vg.Rectangle) func(float64) vg.Length {
	a := f.panels[0].p.X
	return func(v float64) vg.Length {
		if a.Max <= a.Min {
			return d.Min.X
		}
		return d.Min.X + vg.Length((v-a.Min)/(a.Max-a.Min))*(d.Max.X-d.Min.X)
	}
}

// alignPanels narrows each panel's rectangle until every data area spans
// the same X range (Y tick labels of different widths move the left
// edges), and returns the rectangles and data areas.
func alignPanels(panels []panel, c draw.Canvas, rects []vg.Rectangle) ([]vg.Rectangle, []vg.Rectangle) {
	data := make([]vg.Rectangle, len(panels))
	for range 4 {
		lo, hi := vg.Length(math.Inf(-1)), vg.Length(math.Inf(1))
		for k, pn := range panels {
			data[k] = pn.p.DataCanvas(draw.Canvas{Canvas: c.Canvas, Rectangle: rects[k]}).Rectangle
			lo, hi = max(lo, data[k].Min.X), min(hi, data[k].Max.X)
		}
		aligned := true
		for k := range panels {
			dl, dr := lo-data[k].Min.X, hi-data[k].Max.X
			if math.Abs(float64(dl)) > 0.05 || math.Abs(float64(dr)) > 0.05 {
				aligned = false
			}
			rects[k].Min.X += dl
			rects[k].Max.X += dr
		}
		if aligned {
			break
		}
	}
	for k, pn := range panels {
		data[k] = pn.p.DataCanvas(draw.Canvas{Canvas: c.Canvas, Rectangle: rects[k]}).Rectangle
	}
	return rects, data
}
