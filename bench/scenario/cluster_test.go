package scenario

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestClusterEndToEnd runs one tiny cluster point on every server of the
// scenario: megaws, Socket.IO and (with MEGAWS_BENCH_CENTRIFUGO=1)
// Centrifugo on one node and on three nodes
// over a real redis-server and nats-server (Socket.IO on Redis only). Every
// message must reach every connection once and in order, every byte
// verified; on three nodes some deliveries must have crossed the broker,
// and megaws's counters must show one broker message per publish. Rates
// and latencies are logged, not checked: a slow machine may lag (KeptUp).
func TestClusterEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts servers and brokers")
	}
	env, err := NewEnv(".", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	env.Loops = 1
	// Centrifugo is built from source with go install: minutes of
	// downloads and compiling on a fresh machine, too much for the default
	// suite. scripts/test.sh says so; heavy runs (scripts/bench.sh cluster,
	// or MEGAWS_BENCH_CENTRIFUGO=1 here) include it.
	servers := []string{"megaws", "socketio"}
	if os.Getenv("MEGAWS_BENCH_CENTRIFUGO") == "1" {
		servers = []string{"all"}
	}
	targets, err := ClusterTargets(servers)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := env.BuildCluster(ctx, targets); err != nil {
		t.Fatal(err)
	}
	lo := Load{Sources: DefaultSources()[:4]}
	for _, tg := range targets {
		for _, broker := range []string{"", BrokerRedis, BrokerNATS} {
			if tg.Name == "socketio" && broker == BrokerNATS {
				continue
			}
			nodes, name := 3, tg.Name+"/3-nodes-"+broker
			if broker == "" {
				nodes, name = 1, tg.Name+"/1-node"
			}
			t.Run(name, func(t *testing.T) {
				cl, err := env.StartCluster(ctx, tg, nodes, broker)
				if err != nil {
					t.Fatal(err)
				}
				defer cl.Stop()
				cfg := ClusterConfig{Nodes: nodes, Broker: broker, Subscribers: 12, Publishers: 3, Size: 64, Rate: 60,
					Duration: 300 * time.Millisecond, ClientLoops: 3, Phase: PhaseSweep, Drain: 10 * time.Second}
				r, err := RunClusterPoint(ctx, cl, cfg, lo)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("%d published, %d deliveries, p50 %d µs, p99 %d µs, nodes %.2f CPU-s, broker %.2f CPU-s",
					r.Published, r.Deliveries, r.Latency.P50, r.Latency.P99, r.ServerCPUSeconds, r.BrokerCPUSeconds)
				if r.Published == 0 || r.Expected != r.Published*12 || r.Deliveries != r.Expected || r.Lost != 0 || r.Late != 0 || r.Gaps != 0 ||
					r.Latency.Count != r.Deliveries || len(r.Nodes) != nodes || r.Counters.Errors() != 0 {
					t.Fatalf("result: %+v", r)
				}
				if nodes > 1 {
					if r.LatencyRemote == nil || r.LatencyRemote.Count == 0 || r.LatencyLocal.Count+r.LatencyRemote.Count != r.Deliveries || r.BrokerVersion == "" {
						t.Fatalf("no delivery crossed the broker: %+v", r)
					}
				}
				if tg.Name != "megaws" {
					return
				}
				var in, out, bin, bout uint64
				for _, n := range r.Nodes {
					if n.Megaws == nil {
						t.Fatalf("node %s: no megaws counters", n.Addr)
					}
					in, out, bin, bout = in+n.Megaws.MessagesIn, out+n.Megaws.MessagesOut, bin+n.Megaws.ClusterIn, bout+n.Megaws.ClusterOut
				}
				// Every publish is one message in and, on a cluster, one
				// message to the broker, reaching the other nodes.
				if in != uint64(r.Published) || out != uint64(r.Deliveries) {
					t.Errorf("megaws counted %d in, %d out; the load generator %d published, %d delivered", in, out, r.Published, r.Deliveries)
				}
				if nodes > 1 && (bout != uint64(r.Published) || bin != uint64(r.Published)*uint64(nodes-1)) {
					t.Errorf("megaws counted %d to the broker and %d from it for %d publishes on %d nodes", bout, bin, r.Published, nodes)
				}
			})
		}
	}
}

// TestClusterSweep drives the sweep's ladder with a fake server that
// delivers up to a capacity: it must climb until a rate is too much, run a
// miss once more, try halfway, go down when the first rate is already too
// much, and place the low point at a tenth of the saturation.
func TestClusterSweep(t *testing.T) {
	for _, tc := range []struct {
		name     string
		capacity float64 // deliveries/s
		flaky    float64 // a rate that misses at its first try
		want     []string
		sat      float64
	}{
		{name: "climb", capacity: 300_000, flaky: 100, sat: 300_000,
			want: []string{"sweep 25", "sweep 50", "retried 100", "sweep 100", "sweep 200", "retried 400", "sweep 400", "sweep 300", "low 30"}},
		{name: "down", capacity: 20_000, sat: 20_000,
			want: []string{"retried 25", "sweep 25", "sweep 13", "sweep 19", "low 2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := ClusterConfig{Subscribers: 1000}
			sw := ClusterSweep{Start: 25, Factor: 2, Max: 10_000, LowFraction: 0.1, LowDuration: time.Second}
			tries := map[float64]int{}
			run := func(cfg ClusterConfig) (*ClusterResult, error) {
				offered := cfg.Rate * float64(cfg.Subscribers)
				tries[cfg.Rate]++
				ok := offered <= tc.capacity && (cfg.Rate != tc.flaky || tries[cfg.Rate] > 1)
				return &ClusterResult{Config: cfg, OfferedPerSec: offered, DeliveriesPerSec: min(offered, tc.capacity), KeptUp: ok}, nil
			}
			var got []string
			emit := func(r *ClusterResult, err error) {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, fmt.Sprintf("%s %g", r.Config.Phase, r.Config.Rate))
			}
			sat := sweep(base, sw, run, func() bool { return false }, emit)
			if strings.Join(got, ", ") != strings.Join(tc.want, ", ") || sat != tc.sat {
				t.Errorf("points %v, saturation %g; want %v, %g", got, sat, tc.want, tc.sat)
			}
		})
	}
}
