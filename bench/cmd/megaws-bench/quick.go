package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/megaws/megaws/bench/report"
	"github.com/megaws/megaws/bench/scenario"
)

// runQuick runs every scenario, tiny, against each server, plus an idle run
// spread over two load-generator processes against megaws --workers 2. Any
// failed run fails the command. It is part of the test suite
// (scripts/bench.sh --quick).
func runQuick(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("megaws-bench quick", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs, "megaws,gorilla")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	c.quiet = true
	st, err := c.setup(ctx, stderr)
	if err != nil {
		return err
	}
	s := suite{scenarios: map[string]bool{"idle": true, "echo": true, "connect": true, "churn": true, "broadcast": true, "slowreaders": true}}
	s.pl = plan{
		idle: scenario.IdleConfig{Conns: 600, Checkpoints: []int{200}, Hold: 500 * time.Millisecond, Settle: 200 * time.Millisecond, Sample: 0.1},
		echo: append(echoPoints(scenario.EchoConfig{Inflight: 2, Duration: 500 * time.Millisecond, Warmup: 100 * time.Millisecond}, []int{20}, []int{64, 70_000}),
			scenario.EchoConfig{Conns: 20, Size: 1000, Inflight: 2, Text: true, Duration: 500 * time.Millisecond, Warmup: 100 * time.Millisecond}),
		broadcast: []scenario.BroadcastConfig{{Subscribers: 50, Size: 64, Rate: 200, Duration: 500 * time.Millisecond}},
		connect:   scenario.ConnectConfig{Conns: 500},
		churn:     scenario.ChurnConfig{Conns: 200, Cycles: 3},
		slow:      slowReadersQuick(),
	}
	rep := &report.Report{Meta: meta(st, &c, "megaws-bench quick", 1)}
	start := time.Now()
	if err := s.run(ctx, st, rep, 1, stdout); err != nil {
		return err
	}
	// The multi-process paths: two agent processes against two megaws workers.
	for _, t := range st.targets {
		if t.Kind != "megaws" {
			continue
		}
		env := *st.env
		env.Workers = 2
		multi := *st
		multi.env = &env
		pl := s.pl
		pl.idle = scenario.IdleConfig{Conns: 400, Hold: 300 * time.Millisecond, Settle: 100 * time.Millisecond, Sample: 0.25, Processes: 2}
		runs := runTarget(ctx, &multi, t, "idle", 1, &pl, stdout)
		for i := range runs {
			runs[i].Target = "megaws-workers2"
		}
		rep.Runs = append(rep.Runs, runs...)
	}
	// permessage-deflate with context takeover, echoed and broadcast
	// (megaws only: the Go peers here run without compression).
	for _, t := range st.targets {
		if t.Kind != "megaws" {
			continue
		}
		base := scenario.CompressConfig{Window: 10, Conns: 5, Duration: 300 * time.Millisecond, Warmup: 100 * time.Millisecond}
		rep.Runs = append(rep.Runs, compressRuns(ctx, st, t, 10, "echo", []string{"game"}, base, 0, 1, stdout)...)
		base.Inflight = 4
		rep.Runs = append(rep.Runs, compressRuns(ctx, st, t, 10, "broadcast", []string{"broadcast"}, base, 20, 1, stdout)...)
	}
	rep.Meta.Seconds = time.Since(start).Seconds()
	fmt.Fprintf(stdout, "quick: %d runs in %.1fs\n", len(rep.Runs), rep.Meta.Seconds)
	return finish(rep, c.out, stdout)
}
