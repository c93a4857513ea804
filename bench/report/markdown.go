package report

import (
	"fmt"
	"strings"

	"github.com/megaws/megaws/bench/scenario"
)

// Markdown renders the report: medians over repetitions, every ratio
// megaws/peer, and the charts.
func (r *Report) Markdown(charts []Chart) string {
	g := r.group()
	var b strings.Builder
	m := r.Meta
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# %s\n\n", m.Title)
	w("Produced by `megaws-bench` on %s in %.0f s. Reproduce with:\n\n```sh\n%s\n```\n\n", m.Date, m.Seconds, m.Command)
	w("| | |\n|---|---|\n")
	w("| CPU | %s, %d cores |\n", m.Machine.CPU, m.Machine.Cores)
	w("| memory | %.1f GiB |\n", float64(m.Machine.MemBytes)/(1<<30))
	w("| kernel | %s (%s) |\n", m.Machine.Kernel, m.Machine.OS)
	w("| open files limit | %d per process |\n", m.Machine.NoFile)
	w("| Go | %s |\n", m.GoVersion)
	if m.Commit != "" {
		w("| megaws commit | %s |\n", m.Commit)
	}
	w("| server GOMAXPROCS | %s |\n", gmp(m.ServerGOMAXPROCS))
	w("| load generator GOMAXPROCS | %d (one event loop per client process) |\n", m.LoadGOMAXPROCS)
	w("| pinning | %s |\n", pinning(m))
	if m.Workers > 1 {
		w("| megaws processes | %d (`--workers`, SO_REUSEPORT) |\n", m.Workers)
	}
	if len(m.MegawsArgs) > 0 {
		w("| megaws flags | `%s` |\n", strings.Join(m.MegawsArgs, " "))
	}
	if m.LoadAvgBefore != "" {
		w("| load average (1, 5, 15 min) | %s before, %s after |\n", m.LoadAvgBefore, m.LoadAvgAfter)
	}
	w("| repetitions | %d; tables show medians |\n\n", m.Repetitions)
	w("| server | library | version |\n|---|---|---|\n")
	for _, t := range m.Targets {
		w("| %s | %s | %s |\n", t.Name, t.Library, t.Version)
	}
	w("\n")
	for _, n := range m.Notes {
		w("- %s\n", n)
	}
	if len(m.Notes) > 0 {
		w("\n")
	}
	chartFor := func(prefix string) {
		for _, c := range charts {
			if strings.HasPrefix(c.File, prefix) {
				w("![%s](%s)\n\n", c.Title, c.File)
			}
		}
	}
	peers := g.targets
	if len(peers) > 0 && peers[0] == "megaws" {
		peers = peers[1:]
	} else {
		peers = nil // ratios only when megaws is in the run
	}

	if len(g.idle) > 0 {
		r.idleSection(&b, g, peers)
		chartFor("idle-memory")
	}
	r.idleDetails(&b, charts)
	if len(g.echoKeys) > 0 {
		echoSection(&b, g, peers)
		chartFor("echo-")
	}
	if len(g.connect) > 0 {
		w("## Connect burst\n\nHandshakes per second from the first connect(2) to the last verified `101`, then an orderly close of every connection.\n\n")
		table(&b, g, peers, g.connectRows())
		chartFor("connect-")
	}
	if len(g.bcKeys) > 0 {
		w("## Broadcast\n\nOne connection publishes at a fixed rate; the server sends each message to every connection (the publisher included); latency is publish to receipt. A run that misses deliveries within 10 s of the last publish fails and is listed under failed runs.\n\n")
		var rows []row
		for _, k := range g.bcKeys {
			rows = append(rows, g.broadcastRows(k)...)
		}
		table(&b, g, peers, rows)
		chartFor("broadcast-")
	}
	r.slowReadersSection(&b, g, peers)
	r.compressSection(&b)
	r.clusterSection(&b)
	if len(g.churn) > 0 {
		w("## Churn\n\nRepeated cycles of opening and closing connections; the server's descriptors, memory and goroutines before and after.\n\n")
		table(&b, g, peers, g.churnRows())
	}
	if failed := r.Failed(); len(failed) > 0 {
		w("## Failed runs\n\nThese runs are left out of the tables above.\n\n| server | scenario | rep | error |\n|---|---|---|---|\n")
		for _, f := range failed {
			w("| %s | %s | %d | %s |\n", f.Target, f.Scenario, f.Rep, mdEscape(f.Error))
		}
		w("\n")
	}
	w("## Method\n\n")
	w("- The load generator (megaws's `client/loop`, with the harness's payload checks in `bench/loadgen`) is event-driven: one epoll loop per process, no goroutine per connection, non-blocking connect from 127.0.0.2–127.0.0.250 with `IP_BIND_ADDRESS_NO_PORT`. Every handshake's `Sec-WebSocket-Accept` is checked, every frame is masked with a fresh random key, and every echoed or broadcast byte is compared with what was sent; a wrong byte fails the run.\n")
	w("- Server CPU is utime+stime from `/proc/PID/stat` summed over the server's processes, divided by the messages handled in the measured window. On 2 cores the load generator can saturate its own core first, so CPU per message ranks servers more fairly than messages per second.\n")
	w("- Server memory is VmRSS from `/proc/PID/status` summed over the server's processes; per-connection figures are the growth over the server's RSS before the first connection. Heap and goroutines come from each server's `/debug/vars` (Go servers only). Kernel memory is the growth of `Slab` in `/proc/meminfo`, divided by connections: both sockets of a loopback connection (client side included) plus their epoll and file structures.\n")
	w("- Raw figures of every repetition are in `report.json`.\n")
	return b.String()
}

func gmp(n int) string {
	if n == 0 {
		return "Go default (CPU count)"
	}
	return fmt.Sprint(n)
}

func pinning(m Meta) string {
	if len(m.ServerCPUs) == 0 && len(m.LoadCPUs) == 0 {
		return "none"
	}
	return fmt.Sprintf("server on CPU %v, load generator on CPU %v (taskset / sched_setaffinity)", m.ServerCPUs, m.LoadCPUs)
}

func mdEscape(s string) string {
	s = strings.ReplaceAll(s, "|", "\\|")
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}

// row is one metric of a table: a value per target.
type row struct {
	label  string
	value  func(t string) (float64, bool)
	format func(float64) string
	ratio  bool // print megaws/peer ratios
	higher bool // higher is better
}

// table renders rows as a table with one column per target, then the
// megaws/peer ratio of each row.
func table(b *strings.Builder, g *groups, peers []string, rows []row) {
	fmt.Fprintf(b, "| metric |")
	for _, t := range g.targets {
		fmt.Fprintf(b, " %s |", t)
	}
	for _, p := range peers {
		fmt.Fprintf(b, " megaws/%s |", p)
	}
	fmt.Fprintf(b, "\n|---|")
	for range len(g.targets) + len(peers) {
		fmt.Fprintf(b, "---:|")
	}
	fmt.Fprintln(b)
	for _, r := range rows {
		fmt.Fprintf(b, "| %s |", r.label)
		for _, t := range g.targets {
			if v, ok := r.value(t); ok {
				fmt.Fprintf(b, " %s |", r.format(v))
			} else {
				fmt.Fprintf(b, " – |")
			}
		}
		mv, mok := r.value("megaws")
		for _, p := range peers {
			pv, pok := r.value(p)
			if !r.ratio || !mok || !pok || pv == 0 {
				fmt.Fprintf(b, " – |")
				continue
			}
			fmt.Fprintf(b, " %.2f |", mv/pv)
		}
		fmt.Fprintln(b)
	}
	fmt.Fprintln(b)
}

func echoSection(b *strings.Builder, g *groups, peers []string) {
	fmt.Fprintf(b, "## Echo\n\nEvery connection keeps its messages in flight; each echo is verified byte for byte and answered with the next message. Round trips/s and MB/s (payload, one direction) over the measured window; latency from send to verified echo (HDR histogram).\n\n")
	for _, metric := range []struct {
		title  string
		f      func(*scenario.EchoResult) float64
		format func(float64) string
		higher bool
	}{
		{"round trips/s", func(e *scenario.EchoResult) float64 { return e.RoundTripsPerSec }, num, true},
		{"server CPU µs per message", func(e *scenario.EchoResult) float64 { return e.ServerCPUPerMsg }, func(v float64) string { return fmt.Sprintf("%.2f", v) }, false},
		{"MB/s", func(e *scenario.EchoResult) float64 { return e.MBPerSec }, func(v float64) string { return fmt.Sprintf("%.1f", v) }, true},
		{"server allocations per message (Go servers)", func(e *scenario.EchoResult) float64 { return e.ServerAllocsPerMsg }, func(v float64) string { return fmt.Sprintf("%.4f", v) }, false},
		{"peak server RSS", func(e *scenario.EchoResult) float64 { return float64(e.PeakRSS) }, func(v float64) string { return fmt.Sprintf("%.0f MiB", v/(1<<20)) }, false},
		{"latency p50", func(e *scenario.EchoResult) float64 { return float64(e.Latency.P50) }, usF, false},
		{"latency p99", func(e *scenario.EchoResult) float64 { return float64(e.Latency.P99) }, usF, false},
		{"latency p99.9", func(e *scenario.EchoResult) float64 { return float64(e.Latency.P999) }, usF, false},
	} {
		fmt.Fprintf(b, "### %s\n\n", metric.title)
		var rows []row
		for _, k := range g.echoKeys {
			rows = append(rows, row{
				label: fmt.Sprintf("%s%s × %s conns × %d in flight", bytesLabel(k.Size), textLabel(k.Text), num(float64(k.Conns)), k.Inflight),
				value: func(t string) (float64, bool) {
					v, ok := med(g.echo[k][t], metric.f)
					return v, ok && v >= 0 // -1: not published by this server
				},
				format: metric.format, ratio: true, higher: metric.higher,
			})
		}
		table(b, g, peers, rows)
	}
}

func (g *groups) connectRows() []row {
	cr := func(f func(*scenario.ConnectResult) float64) func(string) (float64, bool) {
		return func(t string) (float64, bool) { return med(g.connect[t], f) }
	}
	return []row{
		{label: "connections", value: cr(func(c *scenario.ConnectResult) float64 { return float64(c.Config.Conns) }), format: num},
		{label: "handshakes/s", value: cr(func(c *scenario.ConnectResult) float64 { return c.HandshakesPerSec }), format: num, ratio: true, higher: true},
		{label: "handshake p50", value: cr(func(c *scenario.ConnectResult) float64 { return float64(c.Handshake.P50) }), format: usF, ratio: true},
		{label: "handshake p99", value: cr(func(c *scenario.ConnectResult) float64 { return float64(c.Handshake.P99) }), format: usF, ratio: true},
		{label: "server CPU µs per connection", value: cr(func(c *scenario.ConnectResult) float64 { return c.ServerCPUPerConn }), format: func(v float64) string { return fmt.Sprintf("%.1f", v) }, ratio: true},
		{label: "handshakes per server CPU second", value: func(t string) (float64, bool) {
			v, ok := med(g.connect[t], func(c *scenario.ConnectResult) float64 { return c.ServerCPUPerConn })
			if !ok || v <= 0 {
				return 0, false
			}
			return 1e6 / v, true
		}, format: num, ratio: true, higher: true},
		{label: "orderly close of all, s", value: cr(func(c *scenario.ConnectResult) float64 { return c.CloseSeconds }), format: func(v float64) string { return fmt.Sprintf("%.2f", v) }, ratio: true},
		{label: "failed", value: cr(func(c *scenario.ConnectResult) float64 { return float64(c.Failed) }), format: num},
		{label: "close handshakes unanswered in time", value: cr(func(c *scenario.ConnectResult) float64 { return float64(c.Counters.CloseTimeouts) }), format: num},
	}
}

func (g *groups) broadcastRows(k broadcastKey) []row {
	br := func(f func(*scenario.BroadcastResult) float64) func(string) (float64, bool) {
		return func(t string) (float64, bool) { return med(g.broadcast[k][t], f) }
	}
	rows := []row{
		{label: "published/s", value: br(func(c *scenario.BroadcastResult) float64 { return c.Config.Rate }), format: num},
		{label: "deliveries/s", value: br(func(c *scenario.BroadcastResult) float64 { return c.DeliveriesPerSec }), format: num, ratio: true, higher: true},
		{label: "delivered / expected", value: br(func(c *scenario.BroadcastResult) float64 { return float64(c.Deliveries) / float64(max(c.Expected, 1)) }), format: func(v float64) string { return fmt.Sprintf("%.4f", v) }},
		{label: "latency p50", value: br(func(c *scenario.BroadcastResult) float64 { return float64(c.Latency.P50) }), format: usF, ratio: true},
		{label: "latency p99", value: br(func(c *scenario.BroadcastResult) float64 { return float64(c.Latency.P99) }), format: usF, ratio: true},
		{label: "latency p99.9", value: br(func(c *scenario.BroadcastResult) float64 { return float64(c.Latency.P999) }), format: usF, ratio: true},
		{label: "server CPU µs per delivery", value: br(func(c *scenario.BroadcastResult) float64 { return c.ServerCPUPerDel }), format: func(v float64) string { return fmt.Sprintf("%.3f", v) }, ratio: true},
		{label: "server allocations per delivery (Go servers)", value: func(t string) (float64, bool) {
			v, ok := med(g.broadcast[k][t], func(c *scenario.BroadcastResult) float64 { return c.ServerAllocsPerDel })
			return v, ok && v >= 0
		}, format: func(v float64) string { return fmt.Sprintf("%.4f", v) }},
	}
	prefix := fmt.Sprintf("%s subs × %s: ", num(float64(k.Subscribers)), bytesLabel(k.Size))
	for i := range rows {
		rows[i].label = prefix + rows[i].label
	}
	return rows
}

func (g *groups) churnRows() []row {
	cr := func(f func(*scenario.ChurnResult) float64) func(string) (float64, bool) {
		return func(t string) (float64, bool) { return med(g.churn[t], f) }
	}
	return []row{
		{label: "cycles × connections", value: cr(func(c *scenario.ChurnResult) float64 { return float64(c.Config.Cycles*1_000_000 + c.Config.Conns) }), format: func(v float64) string {
			return fmt.Sprintf("%d × %d", int(v)/1_000_000, int(v)%1_000_000)
		}},
		{label: "connections opened+closed/s", value: cr(func(c *scenario.ChurnResult) float64 { return c.ConnsPerSec }), format: num, ratio: true, higher: true},
		{label: "server fds before", value: cr(func(c *scenario.ChurnResult) float64 { return float64(c.Before.ServerFDs) }), format: num},
		{label: "server fds after", value: cr(func(c *scenario.ChurnResult) float64 { return float64(lastFDs(c)) }), format: num},
		{label: "server RSS before", value: cr(func(c *scenario.ChurnResult) float64 { return float64(c.Before.ServerRSS) }), format: func(v float64) string { return mib(int64(v)) }, ratio: true},
		{label: "server RSS after", value: cr(func(c *scenario.ChurnResult) float64 {
			if len(c.Cycles) == 0 {
				return 0
			}
			return float64(c.Cycles[len(c.Cycles)-1].ServerRSS)
		}), format: func(v float64) string { return mib(int64(v)) }, ratio: true},
		{label: "goroutines before", value: func(t string) (float64, bool) {
			v, ok := med(g.churn[t], func(c *scenario.ChurnResult) float64 { return float64(c.Before.ServerGorout) })
			return v, ok && v >= 0
		}, format: num},
		{label: "goroutines after", value: func(t string) (float64, bool) {
			v, ok := med(g.churn[t], func(c *scenario.ChurnResult) float64 { return float64(lastGor(c)) })
			return v, ok && v >= 0
		}, format: num},
	}
}
