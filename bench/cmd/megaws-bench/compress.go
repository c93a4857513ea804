package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/megaws/megaws/bench/report"
	"github.com/megaws/megaws/bench/scenario"
)

// runCompress is "megaws-bench compress": for every server and compression
// setting, a fresh server, then every kind of traffic on it.
func runCompress(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("megaws-bench compress", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs, "megaws,gws,bun,uws")
	reps := fs.Int("reps", 1, "repetitions per server and setting")
	windows := fs.String("windows", "off,0,10,15", "server compression settings, comma-separated: off, 0 (no context takeover), 8 to 15 (takeover with that window)")
	kinds := fs.String("kinds", strings.Join(scenario.CompressKinds, ","), "traffic, comma-separated: game (~400 B JSON ticks echoed), chat (~100 B lines echoed), broadcast (game ticks published to every connection)")
	var base scenario.CompressConfig
	fs.Var(countFlag{&base.Conns}, "conns", "echo connections, one message in flight each")
	subscribers := fs.Int("subscribers", 200, "broadcast: connections, the publisher included")
	fs.IntVar(&base.Inflight, "inflight", 4, "broadcast: published messages on their way at once")
	fs.DurationVar(&base.Duration, "duration", 5*time.Second, "measured time per kind")
	fs.DurationVar(&base.Warmup, "warmup", time.Second, "unmeasured time before it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if base.Conns == 0 {
		base.Conns = 50
	}
	var ws []int
	for _, f := range strings.Split(*windows, ",") {
		f = strings.TrimSpace(f)
		n, err := strconv.Atoi(f)
		switch {
		case f == "off":
			n = scenario.CompressionOff
		case err != nil || (n != 0 && (n < 8 || n > 15)):
			return usageError{fmt.Errorf("bad --windows item %q: want off, 0 or 8 to 15", f)}
		}
		ws = append(ws, n)
	}
	ks := strings.Split(*kinds, ",")
	for _, k := range ks {
		if !slices.Contains(scenario.CompressKinds, k) {
			return usageError{fmt.Errorf("bad --kinds item %q: want %s", k, strings.Join(scenario.CompressKinds, ", "))}
		}
	}
	if *subscribers < 1 || base.Inflight < 1 {
		return usageError{errors.New("--subscribers and --inflight must be positive")}
	}
	s, err := c.setup(ctx, stderr)
	if err != nil {
		return err
	}
	rep := &report.Report{Meta: meta(s, &c, "megaws-bench compress", *reps)}
	rep.Meta.Notes = append(rep.Meta.Notes, "megaws runs with `--compression --compression-threshold 32 --compression-window W` (no `--compression` when off); gws, Bun and uWebSockets.js with their `-compression W` peer flag (bench/peers/internal/peercmd, bench/peers/common.js): gws `PermessageDeflate` with takeover both ways and windows of W bits, Bun `perMessageDeflate` with a dedicated compressor of W bits, uWS `DEDICATED_COMPRESSOR`/`DEDICATED_DECOMPRESSOR` of W bits; W = 0 is each library's shared compressor without context takeover.")
	start := time.Now()
	for r := 1; r <= *reps; r++ {
		for _, t := range s.targets {
			for _, w := range ws {
				for _, mode := range []string{"echo", "broadcast"} {
					var mks []string
					for _, k := range ks {
						if scenario.CompressMode(k) == mode {
							mks = append(mks, k)
						}
					}
					if len(mks) == 0 {
						continue
					}
					runs := compressRuns(ctx, s, t, w, mode, mks, base, *subscribers, r, stdout)
					rep.Runs = append(rep.Runs, runs...)
					if ctx.Err() != nil {
						return ctx.Err()
					}
				}
			}
		}
	}
	rep.Meta.Seconds = time.Since(start).Seconds()
	return finish(rep, c.out, stdout)
}

// compressRuns starts t in mode with compression window w and runs every
// kind of traffic in kinds on it, one after the other.
func compressRuns(ctx context.Context, s *setup, t scenario.Target, w int, mode string, kinds []string, base scenario.CompressConfig, subscribers, rep int, stdout io.Writer) []report.Run {
	srv, setting, err := scenario.StartCompressed(ctx, s.env, t, w, mode)
	if err != nil {
		run := report.Run{Target: t.Name, Rep: rep, Scenario: "compress", Error: err.Error()}
		fmt.Fprintln(stdout, report.Summary(run))
		return []report.Run{run}
	}
	defer srv.Stop()
	var runs []report.Run
	for _, k := range kinds {
		cfg := base
		cfg.Kind, cfg.Window = k, w
		if k == "broadcast" {
			cfg.Conns = subscribers
		} else {
			cfg.Inflight = 0
		}
		res, err := scenario.RunCompress(ctx, srv, cfg, s.load.Progress)
		if res != nil {
			res.ServerSetting = setting
		}
		run := report.Run{Target: t.Name, Rep: rep, Scenario: "compress", Compress: res}
		if err != nil {
			run.Error = err.Error()
			if srv.Exited() {
				run.Error += "; server exited: " + srv.Stderr()
			}
		}
		runs = append(runs, run)
		fmt.Fprintln(stdout, report.Summary(run))
		if ctx.Err() != nil || srv.Exited() {
			break
		}
	}
	return runs
}
