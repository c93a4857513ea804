package report

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/megaws/megaws/bench/scenario"
)

func fakeReport() *Report {
	r := &Report{Meta: NewMeta("test report", []string{"megaws-bench", "compare"})}
	r.Meta.Repetitions = 3
	r.Meta.Targets = []scenario.Target{{Name: "megaws"}, {Name: "gorilla"}}
	for rep := 1; rep <= 3; rep++ {
		for ti, t := range []string{"megaws", "gorilla"} {
			f := float64(ti + 1)
			for _, size := range []int{64, 1024, 16384} {
				r.Runs = append(r.Runs, Run{Target: t, Rep: rep, Scenario: "echo", Echo: &scenario.EchoResult{
					Config:           scenario.EchoConfig{Conns: 100, Size: size, Inflight: 1},
					RoundTripsPerSec: 100000 / f * float64(rep),
					ServerCPUPerMsg:  2 * f,
					Latency:          scenario.Latency{P50: 100, P99: 200, P999: 300},
				}})
			}
			r.Runs = append(r.Runs, Run{Target: t, Rep: rep, Scenario: "idle", Idle: &scenario.IdleResult{
				Config: scenario.IdleConfig{Conns: 2000, Checkpoints: []int{1000}},
				Points: []scenario.IdlePoint{
					{Conns: 1000, ServerRSS: 1 << 20, UserPerConn: 500 * f, Goroutines: 10},
					{Conns: 2000, ServerRSS: 2 << 20, UserPerConn: 450 * f, Goroutines: 10},
				},
				EstablishRate: 10000,
			}})
			r.Runs = append(r.Runs, Run{Target: t, Rep: rep, Scenario: "connect", Connect: &scenario.ConnectResult{HandshakesPerSec: 5000 / f, ServerCPUPerConn: 50 * f}})
			for _, text := range []bool{false, true} {
				for _, size := range []int{64, 1024} {
					r.Runs = append(r.Runs, Run{Target: t, Rep: rep, Scenario: "echo", Echo: &scenario.EchoResult{
						Config:          scenario.EchoConfig{Conns: 1000, Size: size, Inflight: 16, Text: text},
						ServerCPUPerMsg: f,
					}})
				}
			}
			for _, subs := range []int{1000, 10000} {
				r.Runs = append(r.Runs, Run{Target: t, Rep: rep, Scenario: "broadcast", Broadcast: &scenario.BroadcastResult{
					Config:           scenario.BroadcastConfig{Subscribers: subs, Size: 64, Rate: 5e5 / float64(subs)},
					DeliveriesPerSec: 4e5 / f, ServerAllocsPerDel: 0,
				}})
			}
		}
	}
	r.Runs = append(r.Runs, Run{Target: "gorilla", Rep: 1, Scenario: "broadcast", Error: "broken | pipe"})
	return r
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	r := fakeReport()
	if err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| megaws/gorilla |",
		"| 64 B × 100 conns × 1 in flight | 200,000 | 100,000 | 2.00 |", // medians of reps 1..3
		"| 1,000 conns: user bytes/conn | 500 B | 1000 B | 0.50 |",
		"![Echo round trips/s, 100 connections (higher is better)](echo-throughput-c100.svg)",
		"idle-memory.svg", "connect-rate.svg", "echo-latency.svg",
		"broken \\| pipe",
		"| 1 KiB × 1,000 conns × 16 in flight | 1.00 | 2.00 | 0.50 |",
		"| 1 KiB text × 1,000 conns × 16 in flight | 1.00 | 2.00 | 0.50 |",
		"| 1,000 subs × 64 B: deliveries/s | 400,000 | 200,000 | 2.00 |",
		"| 10,000 subs × 64 B: published/s | 50 | 50 | – |",
		"| 10,000 subs × 64 B: server allocations per delivery (Go servers) | 0.0000 | 0.0000 | – |",
		"| handshakes per server CPU second | 20,000 | 10,000 | 2.00 |",
		"echo-cpu-c1000-k16.svg", "echo-cpu-c1000-text-k16.svg",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	for _, f := range []string{"report.json", "echo-throughput-c100.svg", "echo-cpu-c100.svg", "idle-memory.svg", "echo-latency.svg"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	if t.Failed() {
		t.Log(string(md))
	}
}
