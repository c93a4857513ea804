package report

import (
	"fmt"
	"sort"
	"strings"

	"github.com/megaws/megaws/bench/scenario"
)

// slowKey groups slowreaders runs that measured the same thing.
type slowKey struct {
	Fast, Slow, Size, RcvBuf int
	Rate                     float64
	Seconds                  float64
}

func slowKeyOf(c scenario.SlowReadersConfig) slowKey {
	return slowKey{Fast: c.Fast, Slow: c.Slow, Size: c.Size, RcvBuf: c.SlowRcvBuf, Rate: c.Rate, Seconds: c.Duration.Seconds()}
}

func (k slowKey) label() string {
	s := fmt.Sprintf("%s fast + %s slow readers, %s × %s/s for %.0f s", num(float64(k.Fast)), num(float64(k.Slow)), bytesLabel(k.Size), num(k.Rate), k.Seconds)
	if k.RcvBuf > 0 {
		s += fmt.Sprintf(", slow SO_RCVBUF %s", bytesLabel(k.RcvBuf))
	}
	return s
}

// slowGroups returns the successful slowreaders runs by configuration and
// target, configurations in a stable order.
func (r *Report) slowGroups() ([]slowKey, map[slowKey]map[string][]*scenario.SlowReadersResult) {
	by := map[slowKey]map[string][]*scenario.SlowReadersResult{}
	var keys []slowKey
	for _, run := range r.Runs {
		if run.SlowReaders == nil || run.Error != "" {
			continue
		}
		k := slowKeyOf(run.SlowReaders.Config)
		if by[k] == nil {
			by[k] = map[string][]*scenario.SlowReadersResult{}
			keys = append(keys, k)
		}
		by[k][run.Target] = append(by[k][run.Target], run.SlowReaders)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.Slow != b.Slow {
			return a.Slow < b.Slow
		}
		if a.Fast != b.Fast {
			return a.Fast < b.Fast
		}
		if a.Size != b.Size {
			return a.Size < b.Size
		}
		if a.Rate != b.Rate {
			return a.Rate < b.Rate
		}
		return a.RcvBuf < b.RcvBuf
	})
	return keys, by
}

func (r *Report) slowReadersSection(b *strings.Builder, g *groups, peers []string) {
	keys, by := r.slowGroups()
	if len(keys) == 0 {
		return
	}
	fmt.Fprintf(b, "## Slow readers\n\nA broadcast server with clients that stop reading. Fast readers read and verify every message; one of them publishes at a fixed rate. Slow readers complete the handshake and never read again, so their socket buffers fill and the server must queue, drop or block. Server RSS is sampled every 100 ms; the run stops early when it passes the limit. How much the kernel buffers for a reader that does not read depends on the machine's TCP memory (`tcp_mem`, shared with every other process): under pressure more stays in the server's user space. Latency percentiles cover the messages delivered; read them with the delivered/expected ratio. The publisher's achieved rate counts messages the server took off its socket during the publishing window; its longest stall is the longest time bytes waited with nothing taken. A slow reader counts as disconnected when its socket reports the end, or when the server's end of it leaves ESTABLISHED in `/proc/net/tcp` (scanned every second or more, see the scan interval row: a server that closes a full connection leaves its FIN behind the unread bytes, and the client never sees it).\n\n")
	for _, k := range keys {
		fmt.Fprintf(b, "### %s\n\n", k.label())
		table(b, g, peers, slowRows(by[k]))
		var notes []string
		for _, t := range g.targets {
			for i, res := range by[k][t] {
				notes = append(notes, fmt.Sprintf("- %s, run %d: %s", t, i+1, slowEnding(res)))
			}
		}
		fmt.Fprintf(b, "%s\n\n", strings.Join(notes, "\n"))
	}
}

func slowRows(by map[string][]*scenario.SlowReadersResult) []row {
	sr := func(f func(*scenario.SlowReadersResult) float64) func(string) (float64, bool) {
		return func(t string) (float64, bool) {
			v, ok := med(by[t], f)
			return v, ok && v >= 0
		}
	}
	mibF := func(v float64) string { return mib(int64(v)) }
	secF := func(v float64) string { return fmt.Sprintf("%.2f s", v) }
	ratioF := func(v float64) string { return fmt.Sprintf("%.4f", v) }
	return []row{
		{label: "runs stopped early (RSS limit)", value: func(t string) (float64, bool) {
			if len(by[t]) == 0 {
				return 0, false
			}
			n := 0
			for _, r := range by[t] {
				if r.StoppedEarly != "" {
					n++
				}
			}
			return float64(n), true
		}, format: func(v float64) string { return num(v) }},
		{label: "server RSS before publishing", value: sr(func(r *scenario.SlowReadersResult) float64 { return float64(r.ServerRSSStart) }), format: mibF, ratio: true},
		{label: "server RSS peak", value: sr(func(r *scenario.SlowReadersResult) float64 { return float64(r.ServerRSSPeak) }), format: mibF, ratio: true},
		{label: "server RSS at the end", value: sr(func(r *scenario.SlowReadersResult) float64 { return float64(r.ServerRSSFinal) }), format: mibF, ratio: true},
		{label: "server CPU seconds", value: sr(func(r *scenario.SlowReadersResult) float64 { return r.ServerCPUSeconds }), format: secF, ratio: true},
		{label: "publisher: achieved rate, msg/s", value: sr(func(r *scenario.SlowReadersResult) float64 { return r.Publisher.AchievedRate }), format: num, ratio: true, higher: true},
		{label: "publisher: share taken by the end of the run", value: sr(func(r *scenario.SlowReadersResult) float64 {
			return float64(r.Publisher.TakenAtEnd) / float64(max(r.Publisher.Queued, 1))
		}), format: ratioF},
		{label: "publisher: longest stall", value: sr(func(r *scenario.SlowReadersResult) float64 { return r.Publisher.MaxStallSeconds }), format: secF, ratio: true},
		{label: "publisher: largest backlog", value: sr(func(r *scenario.SlowReadersResult) float64 { return float64(r.Publisher.MaxBacklogBytes) }), format: bytesF},
		{label: "fast readers: deliveries/s", value: sr(func(r *scenario.SlowReadersResult) float64 { return r.DeliveriesPerSec }), format: num, ratio: true, higher: true},
		{label: "fast readers: delivered / expected", value: sr(func(r *scenario.SlowReadersResult) float64 { return r.DeliveryRatio }), format: ratioF},
		{label: "fast readers: latency p50", value: sr(func(r *scenario.SlowReadersResult) float64 { return float64(r.Latency.P50) }), format: usF, ratio: true},
		{label: "fast readers: latency p99", value: sr(func(r *scenario.SlowReadersResult) float64 { return float64(r.Latency.P99) }), format: usF, ratio: true},
		{label: "fast readers: latency p99.9", value: sr(func(r *scenario.SlowReadersResult) float64 { return float64(r.Latency.P999) }), format: usF, ratio: true},
		{label: "fast readers lost", value: sr(func(r *scenario.SlowReadersResult) float64 { return float64(r.FastLost) }), format: num},
		{label: "slow readers disconnected", value: sr(func(r *scenario.SlowReadersResult) float64 { return float64(r.Slow.Disconnected) }), format: num},
		{label: "first disconnection", value: sr(func(r *scenario.SlowReadersResult) float64 { return r.Slow.FirstAt }), format: secF},
		{label: "median disconnection", value: sr(func(r *scenario.SlowReadersResult) float64 { return r.Slow.MedianAt }), format: secF},
		{label: "last disconnection", value: sr(func(r *scenario.SlowReadersResult) float64 { return r.Slow.LastAt }), format: secF},
		{label: "server-side scan interval (resolution of the times above)", value: sr(func(r *scenario.SlowReadersResult) float64 { return r.Slow.ScanSeconds }), format: secF},
		{label: "kernel bytes queued for slow readers at the end", value: sr(func(r *scenario.SlowReadersResult) float64 { return float64(r.Slow.KernelQueuedBytes) }), format: mibF},
		{label: "machine's TCP memory at the end (all processes)", value: sr(func(r *scenario.SlowReadersResult) float64 { return float64(r.KernelAfter.SockMemBytes) }), format: mibF},
		{label: "megaws: messages read and broadcast", value: sr(func(r *scenario.SlowReadersResult) float64 {
			if r.Vars == nil || r.Vars.Megaws == nil {
				return -1
			}
			return float64(r.Vars.Megaws.MessagesIn)
		}), format: num},
		{label: "megaws queue drops", value: sr(func(r *scenario.SlowReadersResult) float64 {
			if r.Vars == nil || r.Vars.Megaws == nil {
				return -1
			}
			return float64(r.Vars.Megaws.QueueDrops)
		}), format: num},
		{label: "server Go heap peak (sampled)", value: sr(func(r *scenario.SlowReadersResult) float64 {
			if r.Vars == nil {
				return -1
			}
			return float64(r.Vars.HeapPeak)
		}), format: mibF, ratio: true},
	}
}

// slowEnding describes how one run's slow readers ended.
func slowEnding(r *scenario.SlowReadersResult) string {
	var parts []string
	if r.StoppedEarly != "" {
		parts = append(parts, fmt.Sprintf("**stopped early at %.1f s: %s**", r.StoppedAt, r.StoppedEarly))
	}
	s := r.Slow
	parts = append(parts, fmt.Sprintf("%s of %s slow readers disconnected", num(float64(s.Disconnected)), num(float64(s.Readers))))
	if len(s.ClientSaw) > 0 {
		parts = append(parts, "client saw "+countsLabel(s.ClientSaw))
	}
	if len(s.ServerStates) > 0 {
		parts = append(parts, "server's ends at the end: "+countsLabel(s.ServerStates))
	}
	if v := r.Vars; v != nil && v.Megaws != nil {
		m := v.Megaws
		q := fmt.Sprintf("megaws queue drops %s", num(float64(m.QueueDrops)))
		if m.FirstDropAt >= 0 {
			q += fmt.Sprintf(" (from %.2f s to %.2f s)", m.FirstDropAt, m.LastDropAt)
		}
		if len(m.CloseCodes) > 0 {
			q += ", close codes " + countsLabel(m.CloseCodes)
		}
		parts = append(parts, q)
	}
	p := r.Publisher
	parts = append(parts, fmt.Sprintf("the server took %s of the publisher's %s messages while it published (%s/s asked), %s by the end, longest stall %.2f s, %s still waiting at the end; the publisher's own loop was late by up to %.0f ms",
		num(float64(p.Taken)), num(float64(p.Queued)), num(p.AskedRate), num(float64(p.TakenAtEnd)), p.MaxStallSeconds, bytesF(float64(p.BacklogAtEnd)), p.MaxTickGapSeconds*1000))
	return strings.Join(parts, "; ")
}

// countsLabel renders counts by name, largest first: "nothing ×1,500, reset ×20".
func countsLabel[V int | uint64](m map[string]V) string {
	type kv struct {
		k string
		v V
	}
	var s []kv
	for k, v := range m {
		s = append(s, kv{k, v})
	}
	sort.Slice(s, func(i, j int) bool {
		if s[i].v != s[j].v {
			return s[i].v > s[j].v
		}
		return s[i].k < s[j].k
	})
	out := make([]string, len(s))
	for i, e := range s {
		out[i] = fmt.Sprintf("%s ×%s", e.k, num(float64(e.v)))
	}
	return strings.Join(out, ", ")
}

// slowReadersSummary is the one-line summary of a slowreaders run.
func slowReadersSummary(r *scenario.SlowReadersResult) string {
	c := r.Config
	s := fmt.Sprintf("fast=%d slow=%d %s@%.0f/s: server RSS peak %s (final %s), CPU %.1f s; publisher %s/s of %s/s, longest stall %.2f s; fast %s deliveries/s (%.4f of expected), latency p50 %s p99 %s p99.9 %s, %d lost; slow %d of %d disconnected",
		c.Fast, c.Slow, bytesLabel(c.Size), c.Rate, mib(r.ServerRSSPeak), mib(r.ServerRSSFinal), r.ServerCPUSeconds,
		num(r.Publisher.AchievedRate), num(c.Rate), r.Publisher.MaxStallSeconds,
		num(r.DeliveriesPerSec), r.DeliveryRatio, us(r.Latency.P50), us(r.Latency.P99), us(r.Latency.P999), r.FastLost,
		r.Slow.Disconnected, r.Slow.Readers)
	if r.Slow.Disconnected > 0 {
		s += fmt.Sprintf(" (%.1f–%.1f s: %s)", r.Slow.FirstAt, r.Slow.LastAt, countsLabel(r.Slow.ClientSaw))
	}
	if r.Vars != nil && r.Vars.Megaws != nil {
		s += fmt.Sprintf(", megaws queue drops %d", r.Vars.Megaws.QueueDrops)
	}
	if r.StoppedEarly != "" {
		s += fmt.Sprintf("; STOPPED EARLY at %.1f s: %s", r.StoppedAt, r.StoppedEarly)
	}
	return s
}
