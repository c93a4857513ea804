package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/megaws/megaws/bench/report"
	"github.com/megaws/megaws/bench/scenario"
)

// clusterPlan is what the cluster flags ask for.
type clusterPlan struct {
	base     scenario.ClusterConfig
	brokers  []string
	sizes    []int
	sweep    scenario.ClusterSweep
	baseline bool
	reps     int
}

func runCluster(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("megaws-bench cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs, "megaws")
	for _, name := range []string{"servers", "server"} {
		fs.Lookup(name).Usage = "comma-separated servers: megaws, centrifugo, socketio, all"
	}
	fs.Lookup("client-loops").Usage = "event loops of the load generator in all, split over the nodes' connection pools (at least one per node; the one-node baseline gets as many)"
	var pl clusterPlan
	b := &pl.base
	b.Subscribers = 1000
	brokers := fs.String("broker", scenario.BrokerRedis+","+scenario.BrokerNATS, "brokers joining the nodes, comma-separated: redis, nats (each a cluster of its own; Socket.IO runs on redis only)")
	fs.IntVar(&b.Nodes, "nodes", 3, "server nodes of the cluster")
	fs.Var(countFlag{&b.Subscribers}, "subs", "connections in all, publishers included, spread evenly over the nodes")
	fs.IntVar(&b.Publishers, "publishers", 3, "publishing connections, spread over the nodes (at least one per node)")
	sizes := fs.String("size", "64", "payload sizes in bytes, comma-separated")
	fs.DurationVar(&b.Duration, "duration", 4*time.Second, "publishing time of a sweep point")
	fs.DurationVar(&b.Drain, "drain", 10*time.Second, "after publishing, longest wait for the deliveries")
	fs.Var(byteFlag{&b.MaxRSS}, "max-rss", "stop publishing when the nodes and the broker use more memory than this")
	b.MaxRSS = 6 << 30
	fs.Float64Var(&pl.sweep.Start, "rate-start", 25, "first rate of the sweep, messages/s from all publishers together")
	fs.Float64Var(&pl.sweep.Factor, "rate-factor", 2, "each sweep rate is the last one times this")
	fs.Float64Var(&pl.sweep.Max, "rate-max", 10000, "highest sweep rate")
	rates := fs.String("rates", "", "explicit sweep rates, comma-separated (instead of the ladder)")
	fs.Float64Var(&pl.sweep.LowFraction, "low-fraction", 0.1, "after the sweep, a point at this fraction of the saturation (0: none)")
	fs.DurationVar(&pl.sweep.LowDuration, "low-duration", 4*time.Second, "publishing time of that point")
	fs.BoolVar(&pl.baseline, "baseline", true, "also run the same load on one node without a broker")
	fs.IntVar(&pl.reps, "reps", 3, "repetitions of the whole plan, interleaved (each repetition runs every server and topology once); tables show medians")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	var err error
	if pl.sizes, err = parseInts(*sizes); err != nil {
		return err
	}
	for _, k := range strings.Split(*brokers, ",") {
		k = strings.TrimSpace(k)
		if k != scenario.BrokerRedis && k != scenario.BrokerNATS {
			return usageError{fmt.Errorf("--broker %q: want redis, nats or both", k)}
		}
		if !slices.Contains(pl.brokers, k) {
			pl.brokers = append(pl.brokers, k)
		}
	}
	for _, f := range strings.Split(*rates, ",") {
		if f = strings.TrimSpace(f); f != "" {
			var r float64
			if _, err := fmt.Sscan(f, &r); err != nil || r <= 0 {
				return usageError{fmt.Errorf("bad rate %q", f)}
			}
			pl.sweep.Rates = append(pl.sweep.Rates, r)
		}
	}
	switch {
	case b.Nodes < 1:
		return usageError{errors.New("--nodes must be at least 1")}
	case b.Publishers < b.Nodes || b.Publishers > scenario.MaxClusterPublishers:
		return usageError{fmt.Errorf("--publishers must be from --nodes (%d) to %d", b.Nodes, scenario.MaxClusterPublishers)}
	case b.Subscribers < b.Publishers:
		return usageError{errors.New("--subs must be at least --publishers")}
	case pl.reps < 1:
		return usageError{errors.New("--reps must be at least 1")}
	case len(pl.sizes) == 0:
		return usageError{errors.New("--size: no size")}
	case len(pl.sweep.Rates) == 0 && (pl.sweep.Start <= 0 || pl.sweep.Factor <= 1 || pl.sweep.Max < pl.sweep.Start):
		return usageError{errors.New("--rate-start must be positive, --rate-factor above 1, --rate-max at least --rate-start")}
	case c.pin || c.serverCPUs != "" || c.loadCPUs != "" || c.workers > 1:
		return usageError{errors.New("cluster: --pin, --server-cpus, --load-cpus and --workers do not apply (several server processes share the machine)")}
	}
	b.ClientLoops = max(c.clientLoop, b.Nodes)

	targets, err := scenario.ClusterTargets(strings.Split(c.servers, ","))
	if err != nil {
		return usageError{err}
	}
	wd, _ := os.Getwd()
	env, err := scenario.NewEnv(wd, c.bin)
	if err != nil {
		return err
	}
	env.Log = stderr
	env.Loops, env.GOMAXPROCS = c.loops, c.gomaxprocs
	if c.megawsArgs != "" {
		env.MegawsArgs = strings.Fields(c.megawsArgs)
	}
	src, err := parseSources(c.sources)
	if err != nil {
		return err
	}
	lo := scenario.Load{Sources: src, MaxPending: c.pending, HandshakeTimeout: c.hsTimeout}
	if !c.quiet {
		lo.Progress = stderr
	}
	fmt.Fprintf(stderr, "megaws-bench: building %d server(s) into %s\n", len(targets), env.BinDir)
	if err := env.BuildCluster(ctx, targets); err != nil {
		return err
	}

	title := c.title
	if title == "" {
		title = "megaws-bench cluster"
	}
	rep := &report.Report{Meta: report.NewMeta(title, os.Args)}
	m := &rep.Meta
	m.ServerGOMAXPROCS, m.LoadGOMAXPROCS = env.GOMAXPROCS, runtime.GOMAXPROCS(0)
	m.MegawsArgs, m.Repetitions, m.Targets, m.Workers = env.MegawsArgs, pl.reps, targets, 1
	start := time.Now()
	// Per target: the one-node baseline (no broker), then a cluster per
	// broker. A single node needs no broker whichever is asked for.
	type topology struct {
		nodes  int
		broker string
	}
	var topologies []topology
	if b.Nodes == 1 || pl.baseline {
		topologies = append(topologies, topology{1, ""})
	}
	if b.Nodes > 1 {
		for _, k := range pl.brokers {
			topologies = append(topologies, topology{b.Nodes, k})
		}
	}
	for r := 1; r <= pl.reps; r++ {
		for _, t := range targets {
			for _, tp := range topologies {
				if t.Name == "socketio" && tp.broker == scenario.BrokerNATS {
					if r == 1 {
						m.Notes = append(m.Notes, "socketio: not run on NATS: @socket.io/redis-adapter needs Redis (Socket.IO has no NATS adapter of its own)")
					}
					continue
				}
				if pl.reps > 1 {
					fmt.Fprintf(stdout, "--- %s, %d node(s) %s, repetition %d of %d\n", t.Name, tp.nodes, tp.broker, r, pl.reps)
				}
				runs := runClusterTopology(ctx, env, t, tp.nodes, tp.broker, r, &pl, lo, stdout)
				rep.Runs = append(rep.Runs, runs...)
				if ctx.Err() != nil {
					return ctx.Err()
				}
			}
		}
	}
	seen := map[string]bool{}
	for _, r := range rep.Runs {
		if r.Cluster == nil {
			continue
		}
		if v := r.Cluster.BrokerVersion; v != "" && !seen[v] {
			seen[v] = true
			m.Notes = append(m.Notes, "broker: "+v)
		}
	}
	m.Seconds = time.Since(start).Seconds()
	return finish(rep, c.out, stdout)
}

// runClusterTopology starts nodes nodes of t (and the broker), sweeps every
// size on them and stops them; the runs are repetition repNo.
func runClusterTopology(ctx context.Context, env *scenario.Env, t scenario.Target, nodes int, broker string, repNo int, pl *clusterPlan, lo scenario.Load, stdout io.Writer) []report.Run {
	var runs []report.Run
	add := func(cfg scenario.ClusterConfig, res *scenario.ClusterResult, err error) {
		r := report.Run{Target: t.Name, Rep: repNo, Scenario: "cluster", Cluster: res}
		if r.Cluster == nil {
			r.Cluster = &scenario.ClusterResult{Config: cfg}
		}
		if err != nil {
			r.Error = err.Error()
		}
		runs = append(runs, r)
		fmt.Fprintln(stdout, report.Summary(r))
	}
	base := pl.base
	base.Nodes, base.Broker = nodes, broker
	cl, err := env.StartCluster(ctx, t, nodes, broker)
	if err != nil {
		add(base, nil, err)
		return runs
	}
	defer cl.Stop()
	for _, size := range pl.sizes {
		cfg := base
		cfg.Size = size
		scenario.RunClusterSweep(ctx, cl, cfg, pl.sweep, lo, func(res *scenario.ClusterResult, err error) {
			add(cfg, res, err)
		})
		if ctx.Err() != nil || cl.Exited() != "" {
			break
		}
	}
	return runs
}
