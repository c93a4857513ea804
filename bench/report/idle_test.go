package report

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/megaws/megaws/bench/scenario"
)

// c1mReport is a report of one SIGTERM-ended idle run with everything
// RunIdle measures, as scripts/c1m.sh writes it.
func c1mReport(failed bool) *Report {
	r := &Report{Meta: Meta{Title: "c1m", Targets: []scenario.Target{{Name: "megaws"}}, MegawsArgs: []string{}, Workers: 59, Repetitions: 1}}
	i := &scenario.IdleResult{
		Config:          scenario.IdleConfig{Conns: 1_000_000, Checkpoints: []int{500_000}, Teardown: scenario.TeardownSIGTERM, SampleEvery: 2 * time.Second},
		Processes:       56,
		ServerProcesses: 60,
		Base:            scenario.IdlePoint{ServerRSS: 1 << 30, ServerMem: scenario.ProcMem{RSS: 1 << 30, PSS: 500 << 20}},
		Fixed:           &scenario.FixedCost{Processes: 59, PSS: 8e6, PssAnon: 3e6, PssFile: 5e6, RSS: 18e6, Parent: &scenario.ProcMem{PSS: 6e6}},
		Points: []scenario.IdlePoint{
			{Conns: 500_000, ServerRSS: 1500 << 20, ServerMem: scenario.ProcMem{PSS: 800 << 20}, UserPerConn: 1000, PSSPerConn: 600, HeapInuse: 1, HeapPerConn: 500},
			{Conns: 1_000_000, ServerRSS: 1700 << 20, ServerMem: scenario.ProcMem{PSS: 1000 << 20}, UserPerConn: 700, PSSPerConn: 520, HeapInuse: 1, HeapPerConn: 480},
		},
		AfterHold:          scenario.IdlePoint{Conns: 1_000_000, ServerRSS: 1700 << 20, ServerMem: scenario.ProcMem{PSS: 1000 << 20}, UserPerConn: 700, PSSPerConn: 520},
		Hold:               300 * time.Second,
		HeldSeconds:        300,
		HoldServerCPUCores: 0.25,
		HoldClientCPUCores: 0.4,
		OpenAfterHold:      1_000_000,
		Keepalive:          &scenario.Keepalive{PingsSent: 12_000_000, PongsReceived: 12_000_000, ClientPongsSent: 12_000_000, PingsPerConn: 12, ServerCPUPerPing: 6.25, PingsSentTotal: 16_000_000, PongsReceivedTotal: 16_000_000},
		Heap: &scenario.HeapBreakdown{Processes: 59, Conns: 1_000_000, SampleRate: 4096, Samples: 100000, InuseBytes: 9e8, PerConn: 470,
			Sites: []scenario.HeapSite{{Site: "gnet conn", Bytes: 234e6, PerConn: 234}, {Site: "megaws Conn", Bytes: 108e6, PerConn: 108}},
			Top:   []scenario.HeapFunc{{Function: "github.com/panjf2000/gnet/v2.newStreamConn", Bytes: 234e6, Growth: 234e6, PerConn: 234}}},
		Sample:   &scenario.SampleResult{Sampled: 10000, OK: 10000},
		Teardown: &scenario.Teardown{Mode: scenario.TeardownSIGTERM, Conns: 1_000_000, ServerConns: 1_000_000, CloseHandshakesCompleted: 999_000, Source: "server log", Within: 30 * time.Second, WithinCount: 995_000, Seconds: 31, Unclean: 1000, ClientAnswered: 999_500},
	}
	for s := 0; s <= 600; s += 2 {
		conns := int64(min(s, 150)) * 1_000_000 / 150
		if s > 560 {
			conns = 0
		}
		i.Resources = append(i.Resources, scenario.ResourceSample{At: float64(s), Conns: conns, ServerRSS: 1<<30 + conns*700, ServerPSS: 500<<20 + conns*520, ServerCPU: 0.25 + 1.5*float64(s%20)/20, ClientCPU: 0.4})
	}
	i.Phases = []scenario.PhaseMark{{Name: scenario.PhaseRamp, At: 3}, {Name: scenario.PhaseHold, At: 153}, {Name: scenario.PhaseSample, At: 454}, {Name: scenario.PhaseTeardown, At: 458}, {Name: scenario.PhaseServerExit, At: 489}}
	run := Run{Target: "megaws", Rep: 1, Scenario: "idle", Idle: i}
	if failed {
		run.Error = "idle: 995000 of 1000000 close handshakes completed within 30s (99.50%, want 99%)"
	}
	r.Runs = []Run{run}
	return r
}

// TestIdleReport writes a c1m report and checks that it carries what
// issue 14 asks of it: meta.megaws_args, idle.hold in ns, failures,
// keepalive pings and pongs, the teardown's figures, the timeline chart.
func TestIdleReport(t *testing.T) {
	for _, failed := range []bool{false, true} {
		dir := t.TempDir()
		if err := c1mReport(failed).Write(dir); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, "report.json"))
		if err != nil {
			t.Fatal(err)
		}
		var raw struct {
			Meta map[string]any `json:"meta"`
			Runs []struct {
				Idle map[string]any `json:"idle"`
			} `json:"runs"`
		}
		if err := json.Unmarshal(b, &raw); err != nil {
			t.Fatal(err)
		}
		if args, ok := raw.Meta["megaws_args"].([]any); !ok || len(args) != 0 {
			t.Errorf("meta.megaws_args = %#v, want []", raw.Meta["megaws_args"])
		}
		idle := raw.Runs[0].Idle
		if idle["hold"] != float64(300*time.Second) || idle["failures"] != 0.0 {
			t.Errorf("idle.hold %v, idle.failures %v", idle["hold"], idle["failures"])
		}
		k, _ := idle["keepalive"].(map[string]any)
		td, _ := idle["teardown"].(map[string]any)
		if k["pings_sent"] != 12e6 || k["pongs_received"] != 12e6 || td["conns"] != 1e6 || td["close_handshakes_completed"] != 999e3 || td["seconds"] != 31.0 {
			t.Errorf("keepalive %v, teardown %v", k, td)
		}
		md, err := os.ReadFile(filepath.Join(dir, "report.md"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			"| keepalive pings sent / pongs received (server, over the hold) | 12,000,000 / 12,000,000; 12.00 pings per connection |",
			"| close handshakes completed | 999,000 (99.90%; counted by the server log) |",
			"| within 30 s | 995,000 (99.50%) |",
			"| CPU per ping round trip | server 6.25 µs",
			"**PSS 8.0 MB** (anonymous 3.0 MB, file-backed 5.0 MB)",
			"| gnet conn | 234 B | 68% |",
			"![Open connections, server RSS and PSS, and server and load-generator CPU over the run, with its phases](idle-timeline.svg)",
		} {
			if !strings.Contains(string(md), want) {
				t.Errorf("failed=%v: report.md lacks %q", failed, want)
			}
		}
		if failed != strings.Contains(string(md), "**This run failed:**") {
			t.Errorf("failed=%v: failure not stated", failed)
		}
		svg, err := os.ReadFile(filepath.Join(dir, "idle-timeline.svg"))
		if err != nil {
			t.Fatal(err)
		}
		if err := wellFormed(svg); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"RSS and CPU over time", "teardown", "server exited", "load generator", "min"} {
			if !strings.Contains(string(svg), want) {
				t.Errorf("timeline lacks %q", want)
			}
		}
	}
}

// TestTimelineLayout checks that the timeline's panels share one time
// axis: their data areas span the same X range, stacked without overlap,
// with the legends right of them.
func TestTimelineLayout(t *testing.T) {
	figs := c1mReport(false).timelineFigures()
	if len(figs) != 1 || len(figs[0].panels) != 3 {
		t.Fatalf("%d figures", len(figs))
	}
	f := figs[0]
	cv := vgsvg.New(chartW, f.height)
	c := draw.New(cv)
	h := c.Rectangle.Size().Y / 3
	rs := make([]vg.Rectangle, len(f.panels))
	for k := range rs {
		rs[k] = c.Rectangle
		rs[k].Max.Y = c.Rectangle.Max.Y - vg.Length(k)*h
		rs[k].Min.Y = rs[k].Max.Y - h + 10
	}
	_, data := alignPanels(f.panels, c, rs)
	for k := 1; k < len(data); k++ {
		if math.Abs(float64(data[k].Min.X-data[0].Min.X)) > 0.1 || math.Abs(float64(data[k].Max.X-data[0].Max.X)) > 0.1 {
			t.Errorf("panel %d data X %v–%v, panel 0 %v–%v", k, data[k].Min.X, data[k].Max.X, data[0].Min.X, data[0].Max.X)
		}
	}
	if _, err := f.render(); err != nil {
		t.Fatal(err)
	}
	all, err := c1mReport(false).figures()
	if err != nil {
		t.Fatal(err)
	}
	if mem := all[0]; mem.file != "idle-memory.svg" || len(mem.legend) != 2 || mem.legend[1].label != "PSS" || mem.yLabel != "memory per connection" {
		t.Errorf("idle memory chart: %s, legend %v, Y %q", mem.file, mem.legend, mem.yLabel)
	}
	if f.xLabel != "time since the run began, min" {
		t.Errorf("X label %q", f.xLabel)
	}
	for k := 1; k < len(data); k++ {
		if data[k].Max.Y > data[k-1].Min.Y {
			t.Errorf("panel %d overlaps panel %d", k, k-1)
		}
	}
}

// TestIdleDetailsOfAComparison: a comparison of several servers shows
// the details and timeline of the first server's first run only.
func TestIdleDetailsOfAComparison(t *testing.T) {
	one := c1mReport(false)
	r := &Report{Meta: Meta{Targets: []scenario.Target{{Name: "megaws"}, {Name: "gorilla"}}}}
	for rep := 1; rep <= 3; rep++ {
		for _, tg := range []string{"megaws", "gorilla"} {
			run := one.Runs[0]
			run.Target, run.Rep = tg, rep
			r.Runs = append(r.Runs, run)
		}
	}
	d := r.detailRuns()
	if len(d) != 1 || d[0].Target != "megaws" || d[0].Rep != 1 {
		t.Fatalf("detail runs %+v", d)
	}
	figs := r.timelineFigures()
	if len(figs) != 1 || figs[0].file != "idle-timeline-megaws-1.svg" {
		t.Fatalf("timelines %d", len(figs))
	}
	md := r.Markdown(nil)
	if n := strings.Count(md, "### megaws, run 1: hold, keepalive"); n != 1 || strings.Contains(md, "### gorilla") {
		t.Fatalf("%d detail sections", n)
	}
}
