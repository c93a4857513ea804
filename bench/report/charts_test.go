package report

import (
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/megaws/megaws/bench/scenario"
)

// chartReport is a small report whose echo figures at 100 connections
// span far more than logSpan across payload sizes (as real ones do: CPU
// per message is flat to 16 KiB, then 10x at 256 KiB) and stay within 2x
// at 1,000 connections.
func chartReport(targets ...string) *Report {
	r := &Report{}
	for _, t := range targets {
		r.Meta.Targets = append(r.Meta.Targets, scenario.Target{Name: t})
	}
	sizes := []int{64, 1024, 16384, 262144}
	for ti, t := range targets {
		f := 1 + float64(ti)/4
		for i, size := range sizes {
			r.Runs = append(r.Runs, Run{Target: t, Scenario: "echo", Echo: &scenario.EchoResult{
				Config:           scenario.EchoConfig{Conns: 100, Size: size, Inflight: 1},
				RoundTripsPerSec: 100000 / f / float64(int(1)<<(2*i)),
				ServerCPUPerMsg:  []float64{8, 9, 12, 120}[i] * f,
				Latency:          scenario.Latency{P50: int64(900 * f), P99: int64(3000 * f), P999: int64(20000 * f)},
			}})
		}
		for _, size := range sizes[:2] {
			r.Runs = append(r.Runs, Run{Target: t, Scenario: "echo", Echo: &scenario.EchoResult{
				Config:           scenario.EchoConfig{Conns: 1000, Size: size, Inflight: 1},
				RoundTripsPerSec: 60000 / f,
				ServerCPUPerMsg:  12 * f,
				Latency:          scenario.Latency{P50: int64(9000 * f), P99: int64(30000 * f), P999: int64(200000 * f)},
			}})
		}
		r.Runs = append(r.Runs, Run{Target: t, Scenario: "idle", Idle: &scenario.IdleResult{
			Config: scenario.IdleConfig{Conns: 18000, Checkpoints: []int{1000, 5000}},
			Points: []scenario.IdlePoint{{Conns: 1000, UserPerConn: 1000 * f * f * f}, {Conns: 5000, UserPerConn: 800 * f}, {Conns: 18000, UserPerConn: 650 * f}},
		}})
		r.Runs = append(r.Runs, Run{Target: t, Scenario: "connect", Connect: &scenario.ConnectResult{
			Config: scenario.ConnectConfig{Conns: 10000}, HandshakesPerSec: 20000 / f,
		}})
		for _, subs := range []int{1000, 10000} {
			run := Run{Target: t, Scenario: "broadcast", Broadcast: &scenario.BroadcastResult{
				Config: scenario.BroadcastConfig{Subscribers: subs, Size: 64, Rate: 500}, ServerCPUPerDel: 2 * f,
			}}
			if ti == 1 && subs == 10000 {
				run = Run{Target: t, Scenario: "broadcast", Error: "missed deliveries"}
			}
			r.Runs = append(r.Runs, run)
		}
	}
	return r
}

func TestChartsFiles(t *testing.T) {
	dir := t.TempDir()
	charts, err := chartReport("megaws", "gorilla", "gws").Charts(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, c := range charts {
		files = append(files, c.File)
		if c.Title == "" || strings.Contains(c.Title, "\n") {
			t.Errorf("%s: alt text %q", c.File, c.Title)
		}
		b, err := os.ReadFile(filepath.Join(dir, c.File))
		if err != nil {
			t.Fatal(err)
		}
		if err := wellFormed(b); err != nil {
			t.Errorf("%s: %v", c.File, err)
		}
		if !strings.Contains(string(b), "font-family:Liberation Sans,Arial,Helvetica,sans-serif;") {
			t.Errorf("%s: no font fallback", c.File)
		}
	}
	want := []string{
		"idle-memory.svg",
		"echo-throughput-c100.svg", "echo-cpu-c100.svg",
		"echo-throughput-c1000.svg", "echo-cpu-c1000.svg",
		"echo-latency.svg", "connect-rate.svg", "broadcast-cpu.svg",
	}
	if !slices.Equal(files, want) {
		t.Errorf("charts %q, want %q", files, want)
	}
}

func wellFormed(b []byte) error {
	d := xml.NewDecoder(strings.NewReader(string(b)))
	for {
		if _, err := d.Token(); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// TestChartsLayout checks every figure's layout: the legend beside the
// data area, never over it; titles and axis labels no wider than their
// room; and, in the SVG written, each legend label inside the legend.
func TestChartsLayout(t *testing.T) {
	for _, targets := range [][]string{{"megaws", "gorilla", "gws"}, {"gorilla", "gws"}, {"megaws"}} {
		figs, err := chartReport(targets...).figures()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range figs {
			name := strings.Join(targets, ",") + "/" + f.file
			cv := vgsvg.New(chartW, chartH)
			c := draw.New(cv)
			l := f.layout(c)
			if !within(l.plot, c.Rectangle) || !within(l.data, l.plot) {
				t.Errorf("%s: plot %v, data %v outside canvas %v", name, l.plot, l.data, c.Rectangle)
			}
			if len(f.legend) > 0 {
				if !within(l.legend, c.Rectangle) {
					t.Errorf("%s: legend %v outside canvas", name, l.legend)
				}
				if overlap(l.legend, l.plot) || l.legend.Min.X <= l.data.Max.X {
					t.Errorf("%s: legend %v over plot %v (data %v)", name, l.legend, l.plot, l.data)
				}
			}
			for i, s := range l.title {
				if w := lineStyle(l, i).Width(s); w > c.Size().X-2*margin {
					t.Errorf("%s: title line %q is %v wide", name, s, w)
				}
			}
			if w := axisLabelStyle.Width(f.yLabel); w > l.data.Size().Y {
				t.Errorf("%s: Y label %q is %v long, data area %v high", name, f.yLabel, w, l.data.Size().Y)
			}
			if w := axisLabelStyle.Width(f.xLabel); w > l.data.Size().X {
				t.Errorf("%s: X label %q is %v long, data area %v wide", name, f.xLabel, w, l.data.Size().X)
			}
			svg, err := f.render()
			if err != nil {
				t.Fatal(err)
			}
			texts := svgTexts(t, svg)
			for _, e := range f.legend {
				pts := texts[e.label]
				if len(pts) == 0 {
					t.Errorf("%s: legend label %q not in the SVG", name, e.label)
				}
				for _, pt := range pts {
					if !within(vg.Rectangle{Min: pt, Max: pt}, l.legend) {
						t.Errorf("%s: legend label %q at %v, outside the legend %v", name, e.label, pt, l.legend)
					}
				}
			}
		}
	}
}

func within(in, out vg.Rectangle) bool {
	return in.Min.X >= out.Min.X && in.Min.Y >= out.Min.Y && in.Max.X <= out.Max.X && in.Max.Y <= out.Max.Y
}

func overlap(a, b vg.Rectangle) bool {
	return a.Min.X < b.Max.X && b.Min.X < a.Max.X && a.Min.Y < b.Max.Y && b.Min.Y < a.Max.Y
}

// svgTexts returns where each text of a vgsvg document is anchored, in
// the canvas's coordinates (vgsvg writes y negated under a flip).
func svgTexts(t *testing.T, svg []byte) map[string][]vg.Point {
	var doc struct {
		Texts []struct {
			X    string `xml:"x,attr"`
			Y    string `xml:"y,attr"`
			Text string `xml:",chardata"`
		} `xml:"g>text"`
	}
	if err := xml.Unmarshal(svg, &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string][]vg.Point{}
	for _, tx := range doc.Texts {
		x, err1 := strconv.ParseFloat(tx.X, 64)
		y, err2 := strconv.ParseFloat(tx.Y, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("text %q at %q, %q", tx.Text, tx.X, tx.Y)
		}
		out[tx.Text] = append(out[tx.Text], vg.Point{X: vg.Length(x), Y: vg.Length(-y)})
	}
	return out
}

func TestChartsScale(t *testing.T) {
	isLog := func(a plot.Axis) bool { _, ok := a.Scale.(plot.LogScale); return ok }
	for _, tc := range []struct {
		targets []string
		file    string
		log     bool
		ratio   bool
	}{
		// 100 connections: throughput over 64x, CPU per message 15x.
		{targets: []string{"megaws", "gorilla"}, file: "echo-throughput-c100.svg", log: true},
		{targets: []string{"megaws", "gorilla"}, file: "echo-throughput-c1000.svg", log: false},
		{targets: []string{"megaws", "gorilla"}, file: "echo-cpu-c100.svg", log: true, ratio: true},
		{targets: []string{"megaws", "gorilla"}, file: "echo-cpu-c1000.svg", log: true, ratio: true},
		{targets: []string{"gorilla", "gws"}, file: "echo-cpu-c100.svg", log: true},
		{targets: []string{"gorilla", "gws"}, file: "echo-cpu-c1000.svg", log: false},
		{targets: []string{"megaws", "gorilla"}, file: "echo-latency.svg", log: true},
		{targets: []string{"megaws", "gorilla"}, file: "connect-rate.svg", log: false},
		{targets: []string{"megaws", "gorilla"}, file: "broadcast-cpu.svg", log: false},
		{targets: []string{"megaws", "gorilla"}, file: "idle-memory.svg", log: false},
	} {
		figs, err := chartReport(tc.targets...).figures()
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(figs, func(f *figure) bool { return f.file == tc.file })
		if i < 0 {
			t.Errorf("%v: no %s", tc.targets, tc.file)
			continue
		}
		f := figs[i]
		if isLog(f.p.Y) != tc.log {
			t.Errorf("%v %s: log Y %v, want %v", tc.targets, tc.file, isLog(f.p.Y), tc.log)
		}
		if ratio := strings.Contains(f.yLabel, "÷"); ratio != tc.ratio {
			t.Errorf("%v %s: Y label %q, want ratio %v", tc.targets, tc.file, f.yLabel, tc.ratio)
		}
		if tc.log != strings.Contains(f.yLabel, "log scale") {
			t.Errorf("%v %s: Y label %q does not state the scale", tc.targets, tc.file, f.yLabel)
		}
		if !tc.log && f.p.Y.Min != 0 {
			t.Errorf("%v %s: linear Y from %v, want 0", tc.targets, tc.file, f.p.Y.Min)
		}
	}
}

func TestUseLog(t *testing.T) {
	for _, tc := range []struct {
		vals []float64
		want bool
	}{
		{vals: []float64{8, 12, 120}, want: true},
		{vals: []float64{8, 12, 80}, want: false},
		{vals: []float64{0, 5, 500}, want: false}, // zero has no place on a log axis
		{vals: []float64{1, 1}, want: false},
		{vals: nil, want: false},
	} {
		if got := useLog(tc.vals); got != tc.want {
			t.Errorf("useLog(%v) = %v", tc.vals, got)
		}
	}
}

func TestTickLabels(t *testing.T) {
	for _, tc := range []struct {
		f    func(float64) string
		v    float64
		want string
	}{
		{f: siLabel, v: 0, want: "0"},
		{f: siLabel, v: 950, want: "950"},
		{f: siLabel, v: 1500, want: "1.5k"},
		{f: siLabel, v: 18000, want: "18k"},
		{f: siLabel, v: 250000, want: "250k"},
		{f: siLabel, v: 1e6, want: "1M"},
		{f: bytesTick, v: 500, want: "500 B"},
		{f: bytesTick, v: 1200, want: "1.2 KB"},
		{f: bytesTick, v: 20000, want: "20 KB"},
		{f: usLabel, v: 0.5, want: "0.5 µs"},
		{f: usLabel, v: 250, want: "250 µs"},
		{f: usLabel, v: 2500, want: "2.5 ms"},
		{f: usLabel, v: 1.2e6, want: "1.2 s"},
		{f: short, v: 0.05, want: "0.05"},
		{f: short, v: 1, want: "1"},
		{f: short, v: 12.345, want: "12.3"},
	} {
		if got := tc.f(tc.v); got != tc.want {
			t.Errorf("%v: got %q, want %q", tc.v, got, tc.want)
		}
	}
}

func TestTicks(t *testing.T) {
	labels := func(ticks []plot.Tick) []string {
		var out []string
		for _, tk := range ticks {
			if !tk.IsMinor() {
				out = append(out, tk.Label)
			}
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		ticker plot.Ticker
		lo, hi float64
		want   []string
	}{
		{name: "bytes over two decades", ticker: logTicks{bytesTick}, lo: 300, hi: 23000,
			want: []string{"1 KB", "10 KB", "500 B", "2 KB", "5 KB", "20 KB"}},
		{name: "ratios below 1", ticker: logTicks{short}, lo: 0.04, hi: 1.2,
			want: []string{"0.1", "1", "0.05", "0.2", "0.5"}},
		{name: "ratios within 4x", ticker: logTicks{short}, lo: 0.22, hi: 1.4,
			want: []string{"1", "0.5", "0.3"}},
		{name: "six decades", ticker: logTicks{usLabel}, lo: 50, hi: 8e7,
			want: []string{"100 µs", "1 ms", "10 ms", "100 ms", "1 s", "10 s"}},
		{name: "linear", ticker: linearTicks{siLabel}, lo: 0, hi: 74000,
			want: []string{"0", "20k", "40k", "60k"}},
	} {
		got := labels(tc.ticker.Ticks(tc.lo, tc.hi))
		slices.Sort(got)
		want := slices.Clone(tc.want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: labels %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestWrap(t *testing.T) {
	s := "Server CPU per echoed message: megaws ÷ peer, 10,000 connections, 16 in flight, text, below 1: megaws spends less CPU"
	w := vg.Points(200)
	lines := wrap(titleStyle, s, w)
	if len(lines) < 2 {
		t.Fatalf("%q: not wrapped", lines)
	}
	for _, l := range lines {
		if titleStyle.Width(l) > w {
			t.Errorf("line %q wider than %v", l, w)
		}
	}
	if strings.Join(lines, " ") != s {
		t.Errorf("wrapped %q lost words of %q", lines, s)
	}
}
