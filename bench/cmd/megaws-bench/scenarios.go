package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/megaws/megaws/bench/report"
	"github.com/megaws/megaws/bench/scenario"
)

// plan is the scenario settings, filled from flags.
type plan struct {
	idle      scenario.IdleConfig
	echo      []scenario.EchoConfig // points, run in order on one server
	broadcast []scenario.BroadcastConfig
	connect   scenario.ConnectConfig
	churn     scenario.ChurnConfig
	slow      scenario.SlowReadersConfig
}

// echoPoints returns base for every connection count and size.
func echoPoints(base scenario.EchoConfig, conns, sizes []int) []scenario.EchoConfig {
	var out []scenario.EchoConfig
	for _, n := range conns {
		for _, size := range sizes {
			cfg := base
			cfg.Conns, cfg.Size = n, size
			out = append(out, cfg)
		}
	}
	return out
}

func modeOf(name string) string {
	if name == "broadcast" || name == "slowreaders" {
		return "broadcast"
	}
	return "echo"
}

func runScenario(ctx context.Context, name string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("megaws-bench "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs, "megaws")
	var pl plan
	var echo scenario.EchoConfig
	var bc scenario.BroadcastConfig
	reps := fs.Int("reps", 1, "repetitions per server")
	var sizes, conns, checkpoints string
	memProfileRate := 0
	conn := 0
	fs.Var(countFlag{&conn}, "conns", "connections (idle: total; accepts 18k, 1m)")
	switch name {
	case "idle":
		fs.StringVar(&checkpoints, "checkpoints", "", "connection counts to stop at and measure on the way up, e.g. 1000,5000")
		fs.DurationVar(&pl.idle.Hold, "hold", 10*time.Second, "how long to hold the connections")
		fs.DurationVar(&pl.idle.Settle, "settle", time.Second, "wait before each memory measurement")
		fs.Float64Var(&pl.idle.Sample, "sample", 0.01, "fraction of connections that echo a verified message after the hold")
		fs.IntVar(&pl.idle.Processes, "processes", 0, "load-generator processes (0: one per 18,000 connections, in-process below)")
		fs.DurationVar(&pl.idle.RampTimeout, "ramp-timeout", 10*time.Minute, "give up if the ramp takes longer")
		fs.StringVar(&pl.idle.Teardown, "teardown", scenario.TeardownClose, "how the run ends: close (every client closes, 1000) or sigterm (SIGTERM to the server, which sends 1001; the clients answer)")
		fs.DurationVar(&pl.idle.StopWait, "stop-wait", 2*time.Minute, "sigterm: how long to wait for the server to exit")
		fs.DurationVar(&pl.idle.CloseWithin, "close-within", 30*time.Second, "count the close handshakes completed within this long of the teardown's start")
		fs.Float64Var(&pl.idle.MinCloseHandshakes, "min-close-handshakes", 0, "fail if fewer than this fraction of the connections completed their close handshake within --close-within (e.g. 0.99)")
		fs.Float64Var(&pl.idle.MinPingRounds, "min-ping-rounds", 0, "fail if the server sent fewer keepalive pings per connection over the hold")
		fs.DurationVar(&pl.idle.SampleEvery, "sample-every", 2*time.Second, "interval of the CPU and memory samples drawn over time")
		fs.BoolVar(&pl.idle.HeapProfile, "heap-profile", false, "fetch the server processes' heap profiles before the first connection and after the hold: where the bytes of a connection go")
		fs.IntVar(&memProfileRate, "mem-profile-rate", 0, "megaws's runtime.MemProfileRate in bytes (GODEBUG=memprofilerate); default 4096 with --heap-profile, Go's 512 KiB otherwise")
	case "echo":
		fs.StringVar(&sizes, "size", "1024", "payload sizes in bytes, comma-separated (64,1k,16k)")
		fs.StringVar(&conns, "conns-list", "", "several connection counts, comma-separated (overrides --conns)")
		fs.IntVar(&echo.Inflight, "inflight", 1, "messages in flight per connection")
		fs.BoolVar(&echo.Text, "text", false, "send text messages (printable ASCII) instead of binary")
		fs.DurationVar(&echo.Duration, "duration", 10*time.Second, "measured time per run")
		fs.DurationVar(&echo.Warmup, "warmup", time.Second, "unmeasured time before it")
	case "broadcast":
		fs.IntVar(&bc.Size, "size", 64, "payload size in bytes")
		fs.Float64Var(&bc.Rate, "rate", 100, "messages published per second")
		fs.DurationVar(&bc.Duration, "duration", 10*time.Second, "publishing time")
	case "churn":
		fs.IntVar(&pl.churn.Cycles, "cycles", 5, "connect/close cycles")
	case "slowreaders":
		registerSlowReaders(fs, &pl.slow)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if name == "slowreaders" && conn != 0 {
		return usageError{errors.New("slowreaders: use --fast and --slow instead of --conns")}
	}
	defConns := map[string]int{"idle": 10_000, "echo": 100, "broadcast": 1000, "connect": 10_000, "churn": 2000}[name]
	if conn == 0 {
		conn = defConns
	}
	var err error
	if pl.idle.Checkpoints, err = parseCounts(checkpoints); err != nil {
		return err
	}
	sizeList, err := parseInts(sizes)
	if err != nil {
		return err
	}
	connList, err := parseCounts(conns)
	if err != nil {
		return err
	}
	if len(connList) == 0 {
		connList = []int{conn}
	}
	pl.echo = echoPoints(echo, connList, sizeList)
	bc.Subscribers = conn
	pl.broadcast = []scenario.BroadcastConfig{bc}
	pl.idle.Conns, pl.connect.Conns, pl.churn.Conns = conn, conn, conn
	pl.connect.Pending = c.pending // the common --pending: handshakes in flight per client loop

	s, err := c.setup(ctx, stderr)
	if err != nil {
		return err
	}
	if name == "idle" {
		idleEnv(s.env, &pl.idle, memProfileRate)
	}
	rep := &report.Report{Meta: meta(s, &c, "megaws-bench "+name, *reps)}
	start := time.Now()
	for r := 1; r <= *reps; r++ {
		for _, t := range s.targets {
			runs := runTarget(ctx, s, t, name, r, &pl, stdout)
			rep.Runs = append(rep.Runs, runs...)
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	rep.Meta.Seconds = time.Since(start).Seconds()
	return finish(rep, c.out, stdout)
}

// runTarget starts t, runs scenario name on it and stops it. Each echo
// point gets a fresh server, so that its peak RSS and CPU are its own and
// not what the previous point (256 KiB messages, say) left behind.
func runTarget(ctx context.Context, s *setup, t scenario.Target, name string, rep int, pl *plan, stdout io.Writer) []report.Run {
	if name == "echo" && len(pl.echo) > 1 {
		var runs []report.Run
		for _, cfg := range pl.echo {
			one := *pl
			one.echo = []scenario.EchoConfig{cfg}
			runs = append(runs, runTarget(ctx, s, t, name, rep, &one, stdout)...)
			if ctx.Err() != nil {
				break
			}
		}
		return runs
	}
	srv, err := s.env.Start(ctx, t, modeOf(name))
	if err != nil {
		r := report.Run{Target: t.Name, Rep: rep, Scenario: name, Error: err.Error()}
		fmt.Fprintln(stdout, report.Summary(r))
		return []report.Run{r}
	}
	defer srv.Stop()
	var runs []report.Run
	add := func(r report.Run, err error) bool {
		r.Target, r.Rep, r.Scenario = t.Name, rep, name
		if err != nil {
			r.Error = err.Error()
			if srv.Exited() {
				r.Error += "; server exited: " + srv.Stderr()
			}
		}
		runs = append(runs, r)
		fmt.Fprintln(stdout, report.Summary(r))
		return err == nil
	}
	switch name {
	case "idle":
		res, err := scenario.RunIdle(ctx, srv, pl.idle, scenario.IdleOptions{Load: s.load, Self: selfCommand(), AgentCPUs: s.loadCPU})
		add(report.Run{Idle: res}, err)
	case "echo":
		for _, cfg := range pl.echo {
			res, err := scenario.RunEcho(ctx, srv, cfg, s.load)
			if !add(report.Run{Echo: res}, err) && (srv.Exited() || ctx.Err() != nil) {
				return runs
			}
		}
	case "broadcast":
		for _, cfg := range pl.broadcast {
			res, err := scenario.RunBroadcast(ctx, srv, cfg, s.load)
			if !add(report.Run{Broadcast: res}, err) && (srv.Exited() || ctx.Err() != nil) {
				return runs
			}
		}
	case "connect":
		res, err := scenario.RunConnect(ctx, srv, pl.connect, s.load)
		add(report.Run{Connect: res}, err)
	case "churn":
		res, err := scenario.RunChurn(ctx, srv, pl.churn, s.load)
		add(report.Run{Churn: res}, err)
	case "slowreaders":
		res, err := scenario.RunSlowReaders(ctx, srv, pl.slow, s.load)
		add(report.Run{SlowReaders: res}, err)
	}
	return runs
}

// idleEnv sets what an idle run needs of the server: its "stopped" log
// lines (info level) for a SIGTERM teardown, a finer heap profile for the
// breakdown by allocation site.
func idleEnv(env *scenario.Env, cfg *scenario.IdleConfig, memProfileRate int) {
	if cfg.Teardown == scenario.TeardownSIGTERM && env.LogLevel == "" {
		env.LogLevel = "info"
	}
	if memProfileRate == 0 && cfg.HeapProfile {
		memProfileRate = 4096
	}
	env.MemProfileRate = memProfileRate
}

func meta(s *setup, c *common, title string, reps int) report.Meta {
	if c.title != "" {
		title = c.title
	}
	m := report.NewMeta(title, os.Args)
	m.ServerGOMAXPROCS = s.env.GOMAXPROCS
	m.LoadGOMAXPROCS = runtime.GOMAXPROCS(0)
	m.ServerCPUs, m.LoadCPUs = s.env.ServerCPUs, s.loadCPU
	m.Workers = s.env.Workers
	m.MegawsArgs = append([]string{}, s.env.MegawsArgs...) // [] rather than absent: the defaults
	m.Repetitions = reps
	m.Targets = s.targets
	return m
}

// finish writes the report when asked and fails if any run failed.
func finish(rep *report.Report, out string, stdout io.Writer) error {
	rep.Meta.LoadAvgAfter = report.LoadAvg()
	if out != "" {
		if err := rep.Write(out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "report: %s/report.md, %s/report.json\n", out, out)
	}
	if failed := rep.Failed(); len(failed) > 0 {
		return fmt.Errorf("%d of %d runs failed (first: %s %s: %s)", len(failed), len(rep.Runs), failed[0].Target, failed[0].Scenario, failed[0].Error)
	}
	return nil
}

func runAgent(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("megaws-bench agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "server address")
	offset := fs.Int("source-offset", 0, "first source address index")
	loops := fs.Int("loops", 1, "event loops")
	sources := fs.String("sources", "127.0.0.2-127.0.0.250", "source addresses FIRST-LAST")
	pending := fs.Int("pending", 0, "dials in flight per loop (default 256)")
	hsTimeout := fs.Duration("handshake-timeout", 0, "connect + handshake time limit (default 10s)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *addr == "" {
		return usageError{errors.New("agent: --addr is required")}
	}
	src, err := parseSources(*sources)
	if err != nil {
		return err
	}
	if *offset > 0 {
		src = append(src[*offset%len(src):], src[:*offset%len(src)]...)
	}
	// An agent only holds idle connections: wake up rarely, there may be
	// dozens of agents on two CPUs. Its teardown closes thousands of
	// connections at once on a machine shared with dozens of server
	// processes: give the server time to answer every close frame.
	return scenario.ServeAgent(os.Stdin, os.Stdout, *addr, scenario.Load{Loops: *loops, Sources: src, MaxPending: *pending, HandshakeTimeout: *hsTimeout, Tick: 50 * time.Millisecond, CloseTimeout: time.Minute})
}

func runRender(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("megaws-bench render", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "report directory holding report.json")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return usageError{errors.New("render: --dir is required")}
	}
	rep, err := report.Read(*dir)
	if err != nil {
		return err
	}
	if err := rep.Write(*dir); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "report: %s/report.md\n", *dir)
	return nil
}
