package report

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/megaws/megaws/bench/scenario"
)

func fakeSlowReaders(peak int64, stopped string) *scenario.SlowReadersResult {
	return &scenario.SlowReadersResult{
		Config:         scenario.SlowReadersConfig{Fast: 100, Slow: 2000, Size: 1024, Rate: 500, Duration: 10 * time.Second, Drain: 10 * time.Second, MaxRSS: 4 << 30},
		Seconds:        10.2,
		StoppedEarly:   stopped,
		StoppedAt:      4.5,
		ServerRSSStart: 100 << 20, ServerRSSPeak: peak, ServerRSSFinal: peak / 2, ServerCPUSeconds: 12.5,
		Publisher: scenario.PublisherStats{AskedRate: 500, Queued: 5000, Taken: 4000, AchievedRate: 400, TakenAtEnd: 4500, MaxStallSeconds: 1.25, MaxBacklogBytes: 300_000, BacklogAtEnd: 300_000, MaxTickGapSeconds: 0.02},
		Published: 5000, Deliveries: 450_000, Expected: 500_000, DeliveryRatio: 0.9, DeliveriesPerSec: 45_000,
		Latency: scenario.Latency{P50: 800, P99: 250_000, P999: 1_200_000},
		Slow: scenario.SlowOutcome{
			Readers: 2000, Disconnected: 1500,
			ClientSaw:    map[string]int{"nothing": 1400, "reset": 100},
			ServerStates: map[string]int{"FIN_WAIT1": 1500, "ESTABLISHED": 500},
			FirstAt:      2.5, MedianAt: 3, LastAt: 4,
		},
		Vars: &scenario.SlowVars{HeapPeak: 3 << 30, Megaws: &scenario.MegawsCounters{QueueDrops: 1500, CloseCodes: map[string]uint64{"1008": 1500}, FirstDropAt: 2.25, LastDropAt: 3.75}},
	}
}

func TestSlowReadersRendering(t *testing.T) {
	r := &Report{Meta: NewMeta("slow readers", []string{"megaws-bench", "slowreaders"})}
	r.Meta.Targets = []scenario.Target{{Name: "megaws"}, {Name: "gorilla"}}
	r.Runs = []Run{
		{Target: "megaws", Rep: 1, Scenario: "slowreaders", SlowReaders: fakeSlowReaders(4<<30, "server RSS 4.01 GiB passed --max-rss 4.00 GiB")},
		{Target: "gorilla", Rep: 1, Scenario: "slowreaders", SlowReaders: fakeSlowReaders(1<<30, "")},
		{Target: "gorilla", Rep: 2, Scenario: "slowreaders", Error: "slowreaders: the server exited"},
	}
	dir := t.TempDir()
	if err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"## Slow readers",
		"### 100 fast + 2,000 slow readers, 1 KiB × 500/s for 10 s",
		"| metric | megaws | gorilla | megaws/gorilla |",
		"| runs stopped early (RSS limit) | 1 | 0 | – |",
		"| server RSS peak | 4096.0 MiB | 1024.0 MiB | 4.00 |",
		"| publisher: achieved rate, msg/s | 400 | 400 | 1.00 |",
		"| publisher: longest stall | 1.25 s | 1.25 s | 1.00 |",
		"| fast readers: delivered / expected | 0.9000 | 0.9000 | – |",
		"| fast readers: latency p99 | 250.0 ms | 250.0 ms | 1.00 |",
		"| slow readers disconnected | 1,500 | 1,500 | – |",
		"| megaws queue drops | 1,500 | 1,500 | – |",
		"- megaws, run 1: **stopped early at 4.5 s: server RSS 4.01 GiB passed --max-rss 4.00 GiB**; 1,500 of 2,000 slow readers disconnected; client saw nothing ×1,400, reset ×100; server's ends at the end: FIN_WAIT1 ×1,500, ESTABLISHED ×500; megaws queue drops 1,500 (from 2.25 s to 3.75 s), close codes 1008 ×1,500; the server took 4,000 of the publisher's 5,000 messages while it published (500/s asked), 4,500 by the end, longest stall 1.25 s, 300.0 KB still waiting at the end",
		"| gorilla | slowreaders | 2 | slowreaders: the server exited |",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	back, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := back.Runs[0].SlowReaders; got == nil || got.Slow.ClientSaw["nothing"] != 1400 || got.Vars.Megaws.QueueDrops != 1500 || got.Config.Duration != 10*time.Second {
		t.Errorf("report.json round trip: %+v", got)
	}
	sum := Summary(r.Runs[0])
	for _, want := range []string{"ok   slowreaders megaws", "server RSS peak 4096.0 MiB", "publisher 400/s of 500/s, longest stall 1.25 s", "(0.9000 of expected)", "p99 250.0 ms", "slow 1500 of 2000 disconnected (2.5–4.0 s: nothing ×1,400, reset ×100)", "megaws queue drops 1500", "STOPPED EARLY at 4.5 s"} {
		if !strings.Contains(sum, want) {
			t.Errorf("summary lacks %q: %s", want, sum)
		}
	}
	if t.Failed() {
		t.Log(string(md))
	}
}
