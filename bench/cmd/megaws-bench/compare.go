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
	scen := fs.String("scenarios", "idle,echo,connect,broadcast", "scenarios to run: idle, echo, connect, broadcast, churn")
	var s suite
	idleConns, connectConns, subs, churnConns := 18_000, 3000, 1000, 1000
	fs.Var(countFlag{&idleConns}, "idle-conns", "idle: connections")
	idleCps := fs.String("idle-checkpoints", "1000,5000,10000", "idle: counts measured on the way up")
	fs.DurationVar(&s.pl.idle.Hold, "idle-hold", 2*time.Second, "idle: hold time")
	fs.DurationVar(&s.pl.idle.Settle, "idle-settle", 500*time.Millisecond, "idle: wait before each measurement")
	fs.Float64Var(&s.pl.idle.Sample, "idle-sample", 0.01, "idle: fraction echoed after the hold")
	echoSizes := fs.String("echo-sizes", "64,1k,16k", "echo: payload sizes")
	echoConns := fs.String("echo-conns", "100,1000", "echo: connection counts")
	fs.IntVar(&s.pl.echo.Inflight, "echo-inflight", 1, "echo: messages in flight per connection")
	fs.DurationVar(&s.pl.echo.Duration, "echo-duration", 1500*time.Millisecond, "echo: measured time per configuration")
	fs.DurationVar(&s.pl.echo.Warmup, "echo-warmup", 300*time.Millisecond, "echo: warm-up per configuration")
	fs.Var(countFlag{&connectConns}, "connect-conns", "connect: burst size")
	fs.Var(countFlag{&subs}, "broadcast-subs", "broadcast: subscribers")
	fs.IntVar(&s.pl.broadcast.Size, "broadcast-size", 64, "broadcast: payload size")
	fs.Float64Var(&s.pl.broadcast.Rate, "broadcast-rate", 20, "broadcast: messages published per second")
	fs.DurationVar(&s.pl.broadcast.Duration, "broadcast-duration", 2*time.Second, "broadcast: publishing time")
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
	if s.pl.sizes, err = parseInts(*echoSizes); err != nil {
		return err
	}
	if s.pl.conns, err = parseCounts(*echoConns); err != nil {
		return err
	}
	s.pl.idle.Conns, s.pl.connect.Conns, s.pl.broadcast.Subscribers, s.pl.churn.Conns = idleConns, connectConns, subs, churnConns
	s.scenarios = map[string]bool{}
	for _, n := range strings.Split(*scen, ",") {
		switch n = strings.TrimSpace(n); n {
		case "idle", "echo", "connect", "broadcast", "churn":
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
		"Each repetition starts every server afresh; servers run back to back in the order of the table, repetitions interleaved.",
		"megaws runs with its defaults (keepalive ping every 25 s, idle timeout 60 s); peers with theirs.")
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
			if s.scenarios["broadcast"] {
				rep.Runs = append(rep.Runs, runTarget(ctx, st, t, "broadcast", r, &s.pl, stdout)...)
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
