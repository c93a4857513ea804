package report

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/megaws/megaws/bench/scenario"
)

// idleSection is the table of idle runs, one column per server.
func (r *Report) idleSection(b *strings.Builder, g *groups, peers []string) {
	fmt.Fprintf(b, "## Idle connections\n\nConnections opened and held without traffic other than the servers' keepalive (servers keep their default keepalive unless the flags above say otherwise; load-generator agent processes run with GOMAXPROCS=1). User memory is the server's RSS growth divided by open connections; PSS divides each page shared by several processes (the executable of N worker processes) among them, so it sums to what the processes use together.\n\n")
	// Connection counts every target reached.
	counts := map[int64]bool{}
	for _, t := range g.targets {
		for _, p := range idlePoints(g.idle[t]) {
			counts[p.Conns] = true
		}
	}
	havePSS := false
	for _, t := range g.targets {
		for _, p := range idlePoints(g.idle[t]) {
			havePSS = havePSS || p.PSSPerConn != 0
		}
	}
	var rows []row
	for _, n := range sortedKeys(intKeys(counts)) {
		point := func(t string) (scenario.IdlePoint, bool) {
			for _, p := range idlePoints(g.idle[t]) {
				if p.Conns == int64(n) {
					return p, true
				}
			}
			return scenario.IdlePoint{}, false
		}
		pf := func(f func(scenario.IdlePoint) float64) func(string) (float64, bool) {
			return func(t string) (float64, bool) {
				p, ok := point(t)
				if !ok {
					return 0, false
				}
				v := f(p)
				return v, v >= 0
			}
		}
		c := num(float64(n))
		rows = append(rows,
			row{label: c + " conns: server RSS", value: pf(func(p scenario.IdlePoint) float64 { return float64(p.ServerRSS) }), format: func(v float64) string { return mib(int64(v)) }, ratio: true},
			row{label: c + " conns: user bytes/conn", value: pf(func(p scenario.IdlePoint) float64 { return p.UserPerConn }), format: bytesF, ratio: true},
		)
		if havePSS {
			rows = append(rows, row{label: c + " conns: PSS bytes/conn", value: pf(func(p scenario.IdlePoint) float64 { return p.PSSPerConn }), format: bytesF, ratio: true})
		}
		rows = append(rows,
			row{label: c + " conns: Go heap bytes/conn", value: pf(func(p scenario.IdlePoint) float64 {
				if p.HeapInuse <= 0 {
					return -1
				}
				return p.HeapPerConn
			}), format: bytesF, ratio: true},
			row{label: c + " conns: goroutines", value: pf(func(p scenario.IdlePoint) float64 { return float64(p.Goroutines) }), format: func(v float64) string { return num(v) }, ratio: true},
			row{label: c + " conns: kernel bytes/conn (Slab, both ends)", value: pf(func(p scenario.IdlePoint) float64 { return p.KernelPerConn }), format: bytesF},
		)
	}
	ir := func(f func(*scenario.IdleResult) float64) func(string) (float64, bool) {
		return func(t string) (float64, bool) {
			v, ok := med(g.idle[t], f)
			return v, ok && v >= 0 // -1: not measured
		}
	}
	fixed := func(v float64) func(float64) string {
		return func(x float64) string { return fmt.Sprintf("%.*f", int(v), x) }
	}
	keep := func(f func(*scenario.Keepalive) float64) func(*scenario.IdleResult) float64 {
		return func(i *scenario.IdleResult) float64 {
			if i.Keepalive == nil {
				return -1
			}
			return f(i.Keepalive)
		}
	}
	tear := func(f func(*scenario.Teardown) float64) func(*scenario.IdleResult) float64 {
		return func(i *scenario.IdleResult) float64 {
			if i.Teardown == nil {
				return -1
			}
			return f(i.Teardown)
		}
	}
	rows = append(rows,
		row{label: "establish rate, conns/s", value: ir(func(i *scenario.IdleResult) float64 { return i.EstablishRate }), format: num, ratio: true, higher: true},
		row{label: "establish time, s", value: ir(func(i *scenario.IdleResult) float64 { return i.EstablishSeconds }), format: fixed(1)},
		row{label: "held, s", value: ir(func(i *scenario.IdleResult) float64 { return i.HeldSeconds }), format: fixed(0)},
		row{label: "open after hold", value: ir(func(i *scenario.IdleResult) float64 { return float64(i.OpenAfterHold) }), format: num},
		row{label: "server CPU while holding, cores", value: ir(func(i *scenario.IdleResult) float64 {
			if i.Teardown == nil { // a report from before it was measured
				return -1
			}
			return i.HoldServerCPUCores
		}), format: fixed(3), ratio: true},
		row{label: "keepalive pings sent while holding (server)", value: ir(keep(func(k *scenario.Keepalive) float64 { return float64(k.PingsSent) })), format: num},
		row{label: "pongs received while holding (server)", value: ir(keep(func(k *scenario.Keepalive) float64 { return float64(k.PongsReceived) })), format: num},
		row{label: "pings unanswered", value: ir(keep(func(k *scenario.Keepalive) float64 { return float64(k.Unanswered) })), format: num},
		row{label: "server CPU per ping round trip", value: ir(keep(func(k *scenario.Keepalive) float64 {
			if k.PingsSent == 0 {
				return -1
			}
			return k.ServerCPUPerPing
		})), format: func(v float64) string { return fmt.Sprintf("%.2f µs", v) }, ratio: true},
		row{label: "sample echoed / sampled", value: ir(func(i *scenario.IdleResult) float64 {
			if i.Sample == nil {
				return -1
			}
			return float64(i.Sample.OK)
		}), format: num},
		row{label: "sample echo p99", value: ir(func(i *scenario.IdleResult) float64 {
			if i.Sample == nil {
				return -1
			}
			return float64(i.Sample.Latency.P99)
		}), format: usF},
		row{label: "failures (failed dials, lost connections)", value: ir(func(i *scenario.IdleResult) float64 { return float64(idleFailures(i)) }), format: num},
		row{label: "teardown", value: ir(tear(func(t *scenario.Teardown) float64 {
			if t.Mode == scenario.TeardownSIGTERM {
				return 1
			}
			return 0
		})), format: func(v float64) string {
			if v == 1 {
				return "SIGTERM"
			}
			return "clients close"
		}},
		row{label: "close handshakes completed within 30 s", value: ir(tear(func(t *scenario.Teardown) float64 {
			if t.Within != 30*time.Second {
				return -1
			}
			return 100 * t.WithinFraction()
		})), format: func(v float64) string { return fmt.Sprintf("%.2f%%", v) }, higher: true},
		row{label: "close handshakes unanswered in time (clients' close)", value: ir(func(i *scenario.IdleResult) float64 {
			if i.Teardown != nil && i.Teardown.Mode == scenario.TeardownSIGTERM {
				return -1
			}
			return float64(i.Counters.CloseTimeouts)
		}), format: num},
		row{label: "teardown, s", value: ir(func(i *scenario.IdleResult) float64 { return i.TeardownSeconds }), format: fixed(1)},
		row{label: "server processes", value: ir(func(i *scenario.IdleResult) float64 { return float64(i.ServerProcesses) }), format: num},
		row{label: "client processes", value: ir(func(i *scenario.IdleResult) float64 { return float64(max(i.Processes, 1)) }), format: num},
	)
	// Rows no run measured (reports from before keepalive and teardown
	// were counted) are left out.
	kept := rows[:0]
	for _, rw := range rows {
		for _, t := range g.targets {
			if _, ok := rw.value(t); ok {
				kept = append(kept, rw)
				break
			}
		}
	}
	table(b, g, peers, kept)
}

// idleRuns returns the runs with idle results, failed ones included: a
// run that missed a goal (a close handshake short, a ping unanswered)
// still has figures worth showing.
func (r *Report) idleRuns() []Run {
	var out []Run
	for _, run := range r.Runs {
		if run.Idle != nil {
			out = append(out, run)
		}
	}
	return out
}

// detailRuns are the idle runs idleDetails and the timeline charts show:
// every one in a report of up to three (scripts/c1m.sh writes one);
// in a comparison of servers, the first server's first repetition, so
// that a report of seven servers × three repetitions does not carry 21.
func (r *Report) detailRuns() []Run {
	runs := r.idleRuns()
	if len(runs) <= 3 {
		return runs
	}
	first := runs[0].Target
	if len(r.Meta.Targets) > 0 {
		first = r.Meta.Targets[0].Name
	}
	for _, run := range runs {
		if run.Target == first {
			return []Run{run}
		}
	}
	return runs[:1]
}

// idleDetails writes, for each idle run that measured them, the hold's
// CPU and keepalive, the teardown, the memory per process and per
// connection, where the heap went, and the run's timeline chart.
func (r *Report) idleDetails(b *strings.Builder, charts []Chart) {
	runs := r.detailRuns()
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	for _, run := range runs {
		i := run.Idle
		if i.Keepalive == nil && i.Teardown == nil && len(i.Resources) == 0 && i.Fixed == nil {
			continue // a report from before these were measured
		}
		head := "Hold, keepalive, teardown and memory"
		if len(r.idleRuns()) > 1 {
			head = fmt.Sprintf("%s, run %d: %s", run.Target, run.Rep, strings.ToLower(head))
		}
		w("### %s\n\n", head)
		if run.Error != "" {
			w("**This run failed:** %s\n\n", mdEscape(run.Error))
		}
		n := i.OpenAfterHold
		w("| | |\n|---|---|\n")
		w("| connections held | %s for %.0f s (`hold` %d ns), %s server processes, %s client processes |\n", num(float64(n)), i.HeldSeconds, int64(i.Hold), num(float64(i.ServerProcesses)), num(float64(max(i.Processes, 1))))
		w("| failures | %s (failed dials, lost connections, protocol errors) |\n", num(float64(idleFailures(i))))
		if i.Teardown != nil {
			w("| CPU while holding | server %.3f cores, load generator %.3f cores (utime+stime over the hold, all processes) |\n", i.HoldServerCPUCores, i.HoldClientCPUCores)
		}
		if k := i.Keepalive; k != nil {
			w("| keepalive pings sent / pongs received (server, over the hold) | %s / %s; %.2f pings per connection |\n", num(float64(k.PingsSent)), num(float64(k.PongsReceived)), k.PingsPerConn)
			w("| pongs sent (load generator, over the hold) | %s |\n", num(float64(k.ClientPongsSent)))
			w("| pings unanswered | %s of the %s sent since the server started (%s pongs) |\n", num(float64(k.Unanswered)), num(float64(k.PingsSentTotal)), num(float64(k.PongsReceivedTotal)))
			if k.PingsSent > 0 {
				w("| CPU per ping round trip | server %.2f µs, load generator %.2f µs (all CPU over the hold ÷ pings) |\n", k.ServerCPUPerPing, k.ClientCPUPerPong)
			}
		}
		if s := i.Sample; s != nil {
			w("| sample after the hold | %s of %s connections echoed a verified message, p99 %s |\n", num(float64(s.OK)), num(float64(s.Sampled)), us(s.Latency.P99))
		}
		if t := i.Teardown; t != nil {
			teardownRows(b, t)
		}
		w("\n")
		idleMemory(b, i)
		if h := i.Heap; h != nil {
			heapTables(b, h)
		}
		for _, c := range charts {
			if c.File == timelineFile(r, run) {
				w("![%s](%s)\n\n", c.Title, c.File)
			}
		}
	}
}

func teardownRows(b *strings.Builder, t *scenario.Teardown) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	pct := func(n int64) string {
		if t.Conns <= 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f%%", 100*float64(n)/float64(t.Conns))
	}
	switch t.Mode {
	case scenario.TeardownSIGTERM:
		w("| teardown | SIGTERM to the server's main process; every connection gets close 1001, the clients answer |\n")
	default:
		w("| teardown | every client sends close 1000 and waits for the server's answer |\n")
	}
	server := "not published"
	if t.ServerConns >= 0 {
		server = num(float64(t.ServerConns))
	}
	w("| connections at the teardown | %s (server: %s) |\n", num(float64(t.Conns)), server)
	w("| close handshakes completed | %s (%s; counted by the %s) |\n", num(float64(t.CloseHandshakesCompleted)), pct(t.CloseHandshakesCompleted), t.Source)
	w("| within %s | %s (%s) |\n", durLabel(t.Within), num(float64(t.WithinCount)), pct(t.WithinCount))
	if t.Mode == scenario.TeardownSIGTERM {
		w("| seconds | %.1f from SIGTERM to the server's exit; slowest process %.1f s |\n", t.Seconds, t.SlowestStop)
		w("| server exit status | %d |\n", t.ServerExit)
		w("| close frames answered by the clients | %s |\n", num(float64(t.ClientAnswered)))
	} else {
		w("| seconds | %.1f until every connection was closed |\n", t.Seconds)
	}
	w("| without a completed handshake | %s (%s unanswered in time) |\n", num(float64(t.Unclean)), num(float64(t.CloseTimeouts)))
}

// idleMemory is the memory table of one run: the fixed cost of a process,
// then per connection at each point.
func idleMemory(b *strings.Builder, i *scenario.IdleResult) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	if f := i.Fixed; f != nil {
		w("Fixed cost of a server process before its first connection (mean of %d serving processes, `/proc/PID/smaps_rollup`): **PSS %s** (anonymous %s, file-backed %s), RSS %s", f.Processes, sizeF(f.PSS), sizeF(f.PssAnon), sizeF(f.PssFile), sizeF(f.RSS))
		if f.Parent != nil {
			w("; the `--workers` parent, which holds no connection: PSS %s", sizeF(float64(f.Parent.PSS)))
		}
		w(".\n\n")
	}
	if len(i.Points) == 0 || i.Points[0].ServerMem.PSS == 0 {
		return
	}
	w("| connections | server RSS | PSS | RSS/conn | PSS/conn | anonymous PSS/conn | Go heap/conn | kernel/conn (Slab, both ends) |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	pts := append(append([]scenario.IdlePoint{}, i.Points...), i.AfterHold)
	for k, p := range pts {
		label := num(float64(p.Conns))
		if k == len(pts)-1 {
			label += " after the hold"
		}
		heap := "–"
		if p.HeapInuse > 0 {
			heap = bytesF(p.HeapPerConn)
		}
		w("| %s | %s | %s | %s | %s | %s | %s | %s |\n", label, mib(p.ServerRSS), mib(p.ServerMem.PSS), bytesF(p.UserPerConn), bytesF(p.PSSPerConn), bytesF(p.PssAnonPerConn), heap, bytesF(p.KernelPerConn))
	}
	w("\n")
}

// heapTables shows where the live heap of the connections went.
func heapTables(b *strings.Builder, h *scenario.HeapBreakdown) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("Where the heap of a connection goes: heap profiles of %d server processes before the first connection and after the hold (one sample per %s allocated, %s sampled live objects, scaled as `go tool pprof` does), the growth by allocation site ÷ %s connections: **%s per connection** of live heap (%s at the hold).",
		h.Processes, bytesF(float64(h.SampleRate)), num(float64(h.Samples)), num(float64(h.Conns)), bytesF(h.PerConn), sizeF(float64(h.InuseBytes)))
	if h.Error != "" {
		w(" Incomplete: %s.", mdEscape(h.Error))
	}
	w("\n\n| allocation site | bytes/conn | share |\n|---|---:|---:|\n")
	total := 0.0
	for _, s := range h.Sites {
		total += max(s.PerConn, 0)
	}
	for _, s := range h.Sites {
		share := "–"
		if total > 0 && s.PerConn > 0 {
			share = fmt.Sprintf("%.0f%%", 100*s.PerConn/total)
		}
		w("| %s | %s | %s |\n", s.Site, bytesF(s.PerConn), share)
	}
	w("\n| allocating function (largest growth) | bytes/conn | live at the hold |\n|---|---:|---:|\n")
	for _, f := range h.Top {
		if f.Growth <= 0 {
			continue
		}
		w("| `%s` | %s | %s |\n", f.Function, bytesF(f.PerConn), sizeF(float64(f.Bytes)))
	}
	w("\n")
}

// idleSummary is the Summary body of an idle run.
func idleSummary(i *scenario.IdleResult) string {
	last := i.AfterHold
	if len(i.Points) > 0 && last.Conns == 0 {
		last = i.Points[len(i.Points)-1]
	}
	body := fmt.Sprintf("%s conns: established in %.1fs (%s/s), server RSS %s = %s/conn (PSS %s/conn, heap %s/conn), goroutines %s, kernel %s/conn, held %.0fs",
		num(float64(last.Conns)), i.EstablishSeconds, num(i.EstablishRate), mib(last.ServerRSS), bytesF(last.UserPerConn), bytesF(last.PSSPerConn), bytesF(last.HeapPerConn),
		optional(last.Goroutines), bytesF(last.KernelPerConn), i.HeldSeconds)
	if i.Hold > 0 {
		body += fmt.Sprintf(" at %.3f server cores", i.HoldServerCPUCores)
	}
	if k := i.Keepalive; k != nil {
		body += fmt.Sprintf(", %s pings / %s pongs (%.1f per conn, %d unanswered, %.2f µs server CPU per ping)", num(float64(k.PingsSent)), num(float64(k.PongsReceived)), k.PingsPerConn, k.Unanswered, k.ServerCPUPerPing)
	}
	if i.Sample != nil {
		body += fmt.Sprintf(", sample %d/%d alive", i.Sample.OK, i.Sample.Sampled)
	}
	if t := i.Teardown; t != nil {
		body += fmt.Sprintf(", teardown %s: %s/%s close handshakes (%.2f%% within %s) in %.1fs", t.Mode, num(float64(t.CloseHandshakesCompleted)), num(float64(t.Conns)), 100*t.WithinFraction(), durLabel(t.Within), t.Seconds)
		if t.Mode == scenario.TeardownSIGTERM {
			body += fmt.Sprintf(", exit %d", t.ServerExit)
		}
	}
	return body + fmt.Sprintf(", %d failures", idleFailures(i))
}

// upgradeIdle fills in, in idle runs recorded before they were measured,
// the fields that follow from recorded ones: Hold from HeldSeconds,
// Failures from the load generator's errors (what they counted then).
func (r *Report) upgradeIdle() {
	for _, run := range r.Runs {
		if i := run.Idle; i != nil && i.Teardown == nil {
			if i.Hold == 0 {
				i.Hold = time.Duration(math.Round(i.HeldSeconds*1e3)) * time.Millisecond
			}
			i.Failures = i.Counters.Errors()
		}
	}
}

// idleFailures is Failures, or for a report from before it was counted
// the load generator's errors.
func idleFailures(i *scenario.IdleResult) int64 {
	if i.Teardown == nil {
		return i.Counters.Errors()
	}
	return i.Failures
}

// sizeF formats a byte count in decimal units with three or four
// significant digits: 950 B, 12.5 KB, 7.9 MB, 1.46 GB.
func sizeF(b float64) string {
	switch a := math.Abs(b); {
	case a >= 1e9:
		return fmt.Sprintf("%.2f GB", b/1e9)
	case a >= 1e6:
		return fmt.Sprintf("%.1f MB", b/1e6)
	case a >= 1e4:
		return fmt.Sprintf("%.1f KB", b/1e3)
	}
	return fmt.Sprintf("%.0f B", b)
}
