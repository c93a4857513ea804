package report

import (
	"strings"
	"testing"
	"time"

	"github.com/megaws/megaws/bench/scenario"
)

// fakeCluster is a cluster point of target: deliveries/s is the offered
// rate when it kept up, cap when it did not.
func fakeCluster(nodes int, broker, phase string, rate, capPerSec, cpuPerDel float64) *scenario.ClusterResult {
	offered := rate * 1000
	got := min(offered, capPerSec)
	r := &scenario.ClusterResult{
		Config:           scenario.ClusterConfig{Nodes: nodes, Broker: broker, Subscribers: 1000, Publishers: 3, Size: 64, Rate: rate, Duration: 2 * time.Second, Phase: phase},
		Published:        int64(rate * 2),
		OfferedPerSec:    offered,
		DeliveriesPerSec: got,
		Deliveries:       int64(got * 2),
		KeptUp:           got >= 0.95*offered,
		Latency:          scenario.Latency{P50: 1000, P99: 4000},
		ServerCPUPerDel:  cpuPerDel,
	}
	r.DeliveriesPerCPUSec = 1e6 / cpuPerDel
	if nodes > 1 {
		r.LatencyLocal = &scenario.Latency{P50: 900, P99: 3000}
		r.LatencyRemote = &scenario.Latency{P50: 1200, P99: 4500, P999: 6000}
		r.Nodes = []scenario.ClusterNode{{Megaws: &scenario.ClusterNodeCounters{ClusterOut: 10, ClusterIn: 20}}}
	}
	return r
}

func TestClusterRendering(t *testing.T) {
	r := &Report{Meta: NewMeta("cluster", []string{"megaws-bench", "cluster"})}
	r.Meta.Repetitions = 2
	add := func(target string, rep, nodes int, broker string, capPerSec, cpu float64) {
		for _, rate := range []float64{100, 200, 400} {
			r.Runs = append(r.Runs, Run{Target: target, Rep: rep, Scenario: "cluster", Cluster: fakeCluster(nodes, broker, scenario.PhaseSweep, rate, capPerSec, cpu)})
		}
		low := fakeCluster(nodes, broker, scenario.PhaseLow, 30, capPerSec, cpu*2)
		low.SaturationPerSec = 300_000
		r.Runs = append(r.Runs, Run{Target: target, Rep: rep, Scenario: "cluster", Cluster: low})
	}
	for rep := 1; rep <= 2; rep++ {
		add("megaws", rep, 1, "", 300_000, 2)
		add("megaws", rep, 3, scenario.BrokerRedis, 250_000, 2.5)
		add("socketio", rep, 1, "", 150_000, 10)
		add("socketio", rep, 3, scenario.BrokerRedis, 100_000, 20)
	}
	retried := fakeCluster(1, "", scenario.PhaseRetried, 200, 10_000, 50)
	r.Runs = append(r.Runs, Run{Target: "megaws", Rep: 2, Scenario: "cluster", Cluster: retried})
	r.Runs = append(r.Runs, Run{Target: "socketio", Rep: 1, Scenario: "cluster", Error: "socketio node 1: exited",
		Cluster: &scenario.ClusterResult{Config: scenario.ClusterConfig{Nodes: 3, Broker: scenario.BrokerRedis, Subscribers: 1000, Publishers: 3, Size: 64}}})
	var b strings.Builder
	r.clusterSection(&b)
	md := b.String()
	for _, want := range []string{
		"### 64 B × 1,000 subscribers, 3 publishers, 3 nodes on Redis",
		"| megaws | 1 | 300,000 (300,000–300,000) | – | 30 → 30,000 | 1000 µs | 4000 µs (4000 µs–4000 µs) | 4.00 | – | 250,000 |",
		"| megaws | 3 | 250,000 (250,000–250,000) | 0.83 (0.83–0.83) | 30 → 30,000 | 1000 µs | 4000 µs (4000 µs–4000 µs) | 5.00 | 0.000 | 200,000 |",
		"| megaws | 900 µs | 3000 µs | 1200 µs | 4500 µs | 6000 µs |", // latency by path
		"| socketio | 3 | 100,000 (100,000–100,000) | 0.67 (0.67–0.67) |",
		"| 400 | 400,000 | 300,000 ✗ 2/2 | 1000 µs | 4000 µs | 0 | 2.00 | 250,000 ✗ 2/2 | 1000 µs | 4000 µs | 0 | 2.50 | 0.000 | 400,000 | 0.83 |",
		"| 100 | 500,000 | 100,000 | 5.00 |", // per CPU-second on one node, megaws/socketio
		"| 100 | 400,000 | 50,000 | 8.00 |",  // on the cluster
		"megaws nodes over these points: 80 messages to the broker, 160 from it",
		"- socketio on 3 node(s): socketio node 1: exited",
		"megaws: 1 sweep point(s) did not keep up at the first try and were run again",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("cluster section lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(md)
	}
}
