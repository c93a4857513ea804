package report

import (
	"fmt"
	"sort"
	"strings"

	"github.com/megaws/megaws/bench/scenario"
)

// Summary is a one-line human summary of a run.
func Summary(r Run) string {
	head := fmt.Sprintf("%-9s %-8s", r.Scenario, r.Target)
	var body string
	switch {
	case r.Echo != nil:
		e := r.Echo
		body = fmt.Sprintf("%s%s c=%d inflight=%d: %s msg/s, %.1f MB/s, latency p50 %s p99 %s p99.9 %s, server %.2f µs CPU/msg, %d errors",
			bytesLabel(e.Config.Size), textLabel(e.Config.Text), e.Config.Conns, e.Config.Inflight, num(e.RoundTripsPerSec), e.MBPerSec,
			us(e.Latency.P50), us(e.Latency.P99), us(e.Latency.P999), e.ServerCPUPerMsg, e.Counters.Errors())
	case r.Idle != nil:
		body = idleSummary(r.Idle)
	case r.Broadcast != nil:
		b := r.Broadcast
		body = fmt.Sprintf("n=%d %s@%.0f/s: %s deliveries/s (%d of %d), latency p50 %s p99 %s p99.9 %s, server %.2f µs CPU/delivery, %d errors",
			b.Config.Subscribers, bytesLabel(b.Config.Size), b.Config.Rate, num(b.DeliveriesPerSec), b.Deliveries, b.Expected,
			us(b.Latency.P50), us(b.Latency.P99), us(b.Latency.P999), b.ServerCPUPerDel, b.Counters.Errors())
	case r.Connect != nil:
		c := r.Connect
		body = fmt.Sprintf("n=%d: %s handshakes/s, handshake p50 %s p99 %s, %d failed, closed in %.2fs, server %.1f µs CPU/conn, %d errors",
			c.Config.Conns, num(c.HandshakesPerSec), us(c.Handshake.P50), us(c.Handshake.P99), c.Failed, c.CloseSeconds, c.ServerCPUPerConn, c.Counters.Errors())
	case r.Churn != nil:
		c := r.Churn
		body = fmt.Sprintf("%d×%d: %s conns/s, server fds %d → %d, RSS growth %s after cycle 1, goroutines %s → %s, %d errors",
			c.Config.Cycles, c.Config.Conns, num(c.ConnsPerSec), c.Before.ServerFDs, lastFDs(c), mib(c.RSSGrowth),
			optional(c.Before.ServerGorout), optional(lastGor(c)), c.Counters.Errors())
	case r.SlowReaders != nil:
		body = slowReadersSummary(r.SlowReaders)
	case r.Compress != nil:
		body = compressSummary(r.Compress)
	case r.Cluster != nil:
		body = clusterSummary(r.Cluster)
	}
	if ct := closeTimeouts(r); ct > 0 {
		body += fmt.Sprintf(", %d close handshakes unanswered in time", ct)
	}
	if errs := runErrors(r); len(errs) > 0 && r.Error != "" && !strings.Contains(r.Error, "×") {
		body += ", errors seen: " + scenario.FormatErrors(errs)
	}
	if r.Error != "" {
		if body != "" {
			body += "; "
		}
		return "FAIL " + head + " " + body + "error: " + r.Error
	}
	return "ok   " + head + " " + body
}

func runErrors(r Run) map[string]int64 {
	switch {
	case r.Echo != nil:
		return r.Echo.Errors
	case r.Idle != nil:
		return r.Idle.Errors
	case r.Broadcast != nil:
		return r.Broadcast.Errors
	case r.Connect != nil:
		return r.Connect.Errors
	case r.Churn != nil:
		return r.Churn.Errors
	case r.SlowReaders != nil:
		return r.SlowReaders.Errors
	}
	return nil
}

func closeTimeouts(r Run) int64 {
	switch {
	case r.Echo != nil:
		return r.Echo.Counters.CloseTimeouts
	case r.Idle != nil:
		return r.Idle.Counters.CloseTimeouts
	case r.Broadcast != nil:
		return r.Broadcast.Counters.CloseTimeouts
	case r.Connect != nil:
		return r.Connect.Counters.CloseTimeouts
	case r.Churn != nil:
		return r.Churn.Counters.CloseTimeouts
	case r.SlowReaders != nil:
		return r.SlowReaders.Counters.CloseTimeouts
	}
	return 0
}

func lastFDs(c *scenario.ChurnResult) int {
	if len(c.Cycles) == 0 {
		return 0
	}
	return c.Cycles[len(c.Cycles)-1].ServerFDs
}

func lastGor(c *scenario.ChurnResult) int64 {
	if len(c.Cycles) == 0 {
		return -1
	}
	return c.Cycles[len(c.Cycles)-1].ServerGorout
}

func optional(n int64) string {
	if n < 0 {
		return "n/a"
	}
	return fmt.Sprint(n)
}

// num formats a count with thousands separators.
func num(f float64) string {
	n := int64(f + 0.5)
	neg := n < 0
	if neg {
		n = -n
	}
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func us(v int64) string {
	switch {
	case v >= 10_000_000:
		return fmt.Sprintf("%.0f s", float64(v)/1e6)
	case v >= 10_000:
		return fmt.Sprintf("%.1f ms", float64(v)/1e3)
	default:
		return fmt.Sprintf("%d µs", v)
	}
}

func usF(v float64) string { return us(int64(v + 0.5)) }

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func bytesF(b float64) string {
	if b >= 10_000 {
		return fmt.Sprintf("%.1f KB", b/1000)
	}
	return fmt.Sprintf("%.0f B", b)
}

func bytesLabel(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

func sortedKeys[K int | string, V any](m map[K]V) []K {
	ks := make([]K, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool { return ks[i] < ks[j] })
	return ks
}

func textLabel(text bool) string {
	if text {
		return " text"
	}
	return ""
}

// SizeLabel formats a payload size: "64 B", "16 KiB", "1 MiB".
func SizeLabel(n int) string { return bytesLabel(n) }
