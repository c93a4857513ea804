package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/megaws/megaws/bench/report"
	"github.com/megaws/megaws/bench/scenario"
)

// suite is the set of scenarios compare and quick run against each target.
type suite struct {
	scenarios map[string]bool
	pl        plan
}

func runCompare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("megaws-bench compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs, "all")
	reps := fs.Int("reps", 3, "repetitions; tables show medians")
	scen := fs.String("scenarios", "idle,echo,connect,broadcast", "scenarios to run: idle, echo, connect, broadcast, churn, slowreaders (with its defaults)")
	var s suite
	idleConns, connectConns, churnConns := 18_000, 3000, 1000
	fs.Var(countFlag{&idleConns}, "idle-conns", "idle: connections")
	idleCps := fs.String("idle-checkpoints", "1000,5000,10000", "idle: counts measured on the way up")
	fs.DurationVar(&s.pl.idle.Hold, "idle-hold", 2*time.Second, "idle: hold time")
	fs.DurationVar(&s.pl.idle.Settle, "idle-settle", 500*time.Millisecond, "idle: wait before each measurement")
	fs.Float64Var(&s.pl.idle.Sample, "idle-sample", 0.01, "idle: fraction echoed after the hold")
	var echo scenario.EchoConfig
	echoSizes := fs.String("echo-sizes", "64,1k,16k,256k", "echo (request/response): payload sizes")
	echoConns := fs.String("echo-conns", "100,1000,10000", "echo: connection counts")
	fs.IntVar(&echo.Inflight, "echo-inflight", 1, "echo: messages in flight per connection")
	textSizes := fs.String("text-sizes", "64,1k,16k", "text echo: payload sizes (\"\": none)")
	textConns := fs.String("text-conns", "1000", "text echo: connection counts")
	streamSizes := fs.String("stream-sizes", "64,1k", "streaming echo: payload sizes (\"\": none)")
	streamConns := fs.String("stream-conns", "1000", "streaming echo: connection counts")
	streamInflight := fs.Int("stream-inflight", 16, "streaming echo: messages in flight per connection")
	maxInflight := fs.Int64("echo-max-inflight-bytes", 1<<30, "skip echo points whose conns × size × in flight exceeds this")
	fs.DurationVar(&echo.Duration, "echo-duration", 1500*time.Millisecond, "echo: measured time per configuration")
	fs.DurationVar(&echo.Warmup, "echo-warmup", 300*time.Millisecond, "echo: warm-up per configuration")
	fs.Var(countFlag{&connectConns}, "connect-conns", "connect: burst size")
	bcSubs := fs.String("broadcast-subs", "1000,10000", "broadcast: subscriber counts")
	bcSizes := fs.String("broadcast-sizes", "64,1k", "broadcast: payload sizes")
	bcRate := fs.Float64("broadcast-rate", 20, "broadcast: messages published per second (when --broadcast-deliveries is 0)")
	bcDeliveries := fs.Float64("broadcast-deliveries", 500_000, "broadcast: offered deliveries per second; the publish rate is this / subscribers")
	bcDuration := fs.Duration("broadcast-duration", 2*time.Second, "broadcast: publishing time")
	fs.Var(countFlag{&churnConns}, "churn-conns", "churn: connections per cycle")
	fs.IntVar(&s.pl.churn.Cycles, "churn-cycles", 3, "churn: cycles")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	var err error
	if s.pl.idle.Checkpoints, err = parseCounts(*idleCps); err != nil {
		return err
	}
	lists := map[string][]int{}
	for name, v := range map[string]struct {
		s     string
		count bool
	}{
		"echo-sizes": {*echoSizes, false}, "echo-conns": {*echoConns, true},
		"text-sizes": {*textSizes, false}, "text-conns": {*textConns, true},
		"stream-sizes": {*streamSizes, false}, "stream-conns": {*streamConns, true},
		"broadcast-subs": {*bcSubs, true}, "broadcast-sizes": {*bcSizes, false},
	} {
		parse := parseInts
		if v.count {
			parse = parseCounts
		}
		if lists[name], err = parse(v.s); err != nil {
			return fmt.Errorf("--%s: %w", name, err)
		}
	}
	points := echoPoints(echo, lists["echo-conns"], lists["echo-sizes"])
	text := echo
	text.Text = true
	points = append(points, echoPoints(text, lists["text-conns"], lists["text-sizes"])...)
	stream := echo
	stream.Inflight = *streamInflight
	points = append(points, echoPoints(stream, lists["stream-conns"], lists["stream-sizes"])...)
	var skipped []string
	for _, p := range points {
		if int64(p.Conns)*int64(p.Size)*int64(p.Inflight) > *maxInflight {
			skipped = append(skipped, fmt.Sprintf("%s × %d conns × %d in flight", report.SizeLabel(p.Size), p.Conns, p.Inflight))
			continue
		}
		s.pl.echo = append(s.pl.echo, p)
	}
	for _, n := range lists["broadcast-subs"] {
		for _, size := range lists["broadcast-sizes"] {
			rate := *bcRate
			if *bcDeliveries > 0 {
				rate = *bcDeliveries / float64(n)
			}
			s.pl.broadcast = append(s.pl.broadcast, scenario.BroadcastConfig{Subscribers: n, Size: size, Rate: rate, Duration: *bcDuration})
		}
	}
	s.pl.idle.Conns, s.pl.connect.Conns, s.pl.churn.Conns = idleConns, connectConns, churnConns
	s.pl.slow = scenario.DefaultSlowReadersConfig()
	s.scenarios = map[string]bool{}
	for _, n := range strings.Split(*scen, ",") {
		switch n = strings.TrimSpace(n); n {
		case "idle", "echo", "connect", "broadcast", "churn", "slowreaders":
			s.scenarios[n] = true
		default:
			return usageError{fmt.Errorf("unknown scenario %q", n)}
		}
	}
	st, err := c.setup(ctx, stderr)
	if err != nil {
		return err
	}
	rep := &report.Report{Meta: meta(st, &c, "megaws and peers on one machine", *reps)}
	rep.Meta.Notes = append(rep.Meta.Notes,
		"Each repetition starts every server afresh for every scenario and every echo point; servers run back to back in the order of the table, repetitions interleaved.",
		"megaws runs with its defaults (keepalive ping every 25 s, idle timeout 60 s); peers with theirs.")
	if len(skipped) > 0 && s.scenarios["echo"] {
		rep.Meta.Notes = append(rep.Meta.Notes, fmt.Sprintf("Echo points left out because more than %s would be in flight at once: %s.", report.SizeLabel(int(*maxInflight)), strings.Join(skipped, ", ")))
	}
	start := time.Now()
	if err := s.run(ctx, st, rep, *reps, stdout); err != nil {
		return err
	}
	rep.Meta.Seconds = time.Since(start).Seconds()
	if c.out == "" {
		fmt.Fprint(stdout, "\n", rep.Markdown(nil))
	}
	return finish(rep, c.out, stdout)
}

// run runs the suite: for each repetition, each target, a fresh echo server
// for idle, echo, connect and churn, and a fresh broadcast server.
func (s *suite) run(ctx context.Context, st *setup, rep *report.Report, reps int, stdout io.Writer) error {
	for r := 1; r <= reps; r++ {
		for _, t := range st.targets {
			fmt.Fprintf(stdout, "--- %s, repetition %d of %d\n", t.Name, r, reps)
			for _, name := range []string{"idle", "echo", "connect", "churn"} {
				if !s.scenarios[name] {
					continue
				}
				rep.Runs = append(rep.Runs, s.runOne(ctx, st, t, name, r, stdout)...)
			}
			for _, name := range []string{"broadcast", "slowreaders"} {
				if s.scenarios[name] {
					rep.Runs = append(rep.Runs, runTarget(ctx, st, t, name, r, &s.pl, stdout)...)
				}
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	return nil
}

// runOne runs one echo-mode scenario on a fresh server. Idle needs a fresh
// server for its baseline; the others are cheap to restart too, and a
// fresh server per scenario keeps one failure from spoiling the rest.
func (s *suite) runOne(ctx context.Context, st *setup, t scenario.Target, name string, r int, stdout io.Writer) []report.Run {
	return runTarget(ctx, st, t, name, r, &s.pl, stdout)
}
