package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/megaws/megaws/bench/scenario"
)

// common are the flags every scenario takes.
type common struct {
	servers    string
	bin        string
	workers    int
	loops      int
	gomaxprocs int
	pin        bool
	serverCPUs string
	loadCPUs   string
	clientLoop int
	sources    string
	quiet      bool
	out        string
	megawsArgs string
	title      string
	pending    int
	hsTimeout  time.Duration
}

func (c *common) register(fs *flag.FlagSet, defServers string) {
	fs.StringVar(&c.servers, "servers", defServers, "comma-separated servers: megaws, gorilla, gobwas, gws, nbio, bun, uws, go (megaws + Go peers), all")
	fs.StringVar(&c.servers, "server", defServers, "alias of --servers")
	fs.StringVar(&c.bin, "bin", "", "directory for built binaries (default $TMPDIR/megaws-bench-UID)")
	fs.IntVar(&c.workers, "workers", 1, "megaws --workers: server processes sharing the port (SO_REUSEPORT)")
	fs.IntVar(&c.loops, "loops", 0, "megaws --loops per process (default: GOMAXPROCS if set, else CPU count)")
	fs.IntVar(&c.gomaxprocs, "gomaxprocs", 0, "GOMAXPROCS of Go servers (0: Go's default)")
	fs.BoolVar(&c.pin, "pin", false, "pin the server to CPU 0 and the load generator to CPU 1, GOMAXPROCS 1 each")
	fs.StringVar(&c.serverCPUs, "server-cpus", "", "CPUs for the server (taskset list, e.g. 0)")
	fs.StringVar(&c.loadCPUs, "load-cpus", "", "CPUs for the load generator (e.g. 1)")
	fs.IntVar(&c.clientLoop, "client-loops", 1, "event loops of the load generator")
	fs.StringVar(&c.sources, "sources", "127.0.0.2-127.0.0.250", "source addresses to dial from, FIRST-LAST")
	fs.BoolVar(&c.quiet, "quiet", false, "no live status line")
	fs.StringVar(&c.out, "out", "", "write the report (report.json, report.md, charts) into this directory")
	fs.StringVar(&c.title, "title", "", "report title")
	fs.IntVar(&c.pending, "pending", 0, "dials in flight per client event loop (default 256)")
	fs.DurationVar(&c.hsTimeout, "handshake-timeout", 0, "client connect + handshake time limit (default 10s)")
	fs.StringVar(&c.megawsArgs, "megaws-args", "", "extra flags for megaws serve, space-separated (e.g. \"--ping-interval=-1s\")")
}

func parseCPUs(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 || n >= runtime.NumCPU() {
			return nil, usageError{fmt.Errorf("bad CPU %q (this machine has %d)", f, runtime.NumCPU())}
		}
		out = append(out, n)
	}
	return out, nil
}

func parseSources(s string) ([]netip.Addr, error) {
	first, last, ok := strings.Cut(s, "-")
	if !ok {
		last = first
	}
	a, err1 := netip.ParseAddr(first)
	b, err2 := netip.ParseAddr(last)
	if err1 != nil || err2 != nil || !a.Is4() || !b.Is4() || b.Less(a) {
		return nil, usageError{fmt.Errorf("bad --sources %q", s)}
	}
	return scenario.SourceRange(a, b), nil
}

// setup is what a parsed common flag set yields.
type setup struct {
	env     *scenario.Env
	targets []scenario.Target
	load    scenario.Load
	loadCPU []int
}

func (c *common) setup(ctx context.Context, stderr io.Writer) (*setup, error) {
	targets, err := scenario.Targets(strings.Split(c.servers, ","))
	if err != nil {
		return nil, usageError{err}
	}
	wd, _ := os.Getwd()
	env, err := scenario.NewEnv(wd, c.bin)
	if err != nil {
		return nil, err
	}
	env.Log = stderr
	env.Workers, env.Loops, env.GOMAXPROCS = c.workers, c.loops, c.gomaxprocs
	if c.megawsArgs != "" {
		env.MegawsArgs = strings.Fields(c.megawsArgs)
	}
	if c.pin {
		if runtime.NumCPU() < 2 {
			return nil, usageError{errors.New("--pin needs 2 CPUs")}
		}
		env.ServerCPUs, c.loadCPUs = []int{0}, "1"
		if env.GOMAXPROCS == 0 {
			env.GOMAXPROCS = 1
		}
	} else if env.ServerCPUs, err = parseCPUs(c.serverCPUs); err != nil {
		return nil, err
	}
	loadCPU, err := parseCPUs(c.loadCPUs)
	if err != nil {
		return nil, err
	}
	if len(loadCPU) > 0 {
		if err := scenario.PinSelf(loadCPU); err != nil {
			return nil, err
		}
		runtime.GOMAXPROCS(len(loadCPU))
	}
	src, err := parseSources(c.sources)
	if err != nil {
		return nil, err
	}
	s := &setup{env: env, targets: targets, loadCPU: loadCPU, load: scenario.Load{Loops: c.clientLoop, Sources: src, MaxPending: c.pending, HandshakeTimeout: c.hsTimeout}}
	if !c.quiet {
		s.load.Progress = stderr
	}
	fmt.Fprintf(stderr, "megaws-bench: building %d server(s) into %s\n", len(targets), env.BinDir)
	if err := env.Build(ctx, targets); err != nil {
		return nil, err
	}
	return s, nil
}

func parseInts(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := parseSize(strings.TrimSpace(f))
		if err != nil {
			return nil, usageError{err}
		}
		out = append(out, n)
	}
	return out, nil
}

// parseSize reads 64, 1k, 16KiB, 1m, 1000000.
func parseSize(s string) (int, error) {
	l := strings.ToLower(s)
	mult := 1
	for _, suf := range []struct {
		s string
		m int
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"k", 1 << 10}, {"m", 1 << 20}} {
		if strings.HasSuffix(l, suf.s) {
			l, mult = strings.TrimSuffix(l, suf.s), suf.m
			break
		}
	}
	n, err := strconv.Atoi(strings.ReplaceAll(l, "_", ""))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad number %q", s)
	}
	return n * mult, nil
}

// parseCount reads 1000, 18_000, 18k, 1m (decimal multipliers).
func parseCount(s string) (int, error) {
	l := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), "_", ""))
	mult := 1
	switch {
	case strings.HasSuffix(l, "k"):
		l, mult = strings.TrimSuffix(l, "k"), 1000
	case strings.HasSuffix(l, "m"):
		l, mult = strings.TrimSuffix(l, "m"), 1_000_000
	}
	n, err := strconv.Atoi(l)
	if err != nil || n < 0 {
		return 0, usageError{fmt.Errorf("bad count %q", s)}
	}
	return n * mult, nil
}

func parseCounts(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := parseCount(f)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// countFlag is a flag.Value for connection counts.
type countFlag struct{ n *int }

func (c countFlag) String() string {
	if c.n == nil {
		return "0"
	}
	return strconv.Itoa(*c.n)
}

func (c countFlag) Set(s string) error {
	n, err := parseCount(s)
	if err == nil {
		*c.n = n
	}
	return err
}

func selfCommand() []string {
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	return []string{exe}
}
