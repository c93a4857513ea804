package report

import (
	"fmt"
	"strings"

	"github.com/megaws/megaws/bench/scenario"
)

// compressKey is one row of the compression tables.
type compressKey struct {
	target, kind string
	window       int
}

// compressSection renders the compress runs: one row per server, setting
// and kind of traffic, medians over repetitions; a table per kind.
func (r *Report) compressSection(b *strings.Builder) {
	var keys []compressKey
	runs := map[compressKey][]*scenario.CompressResult{}
	for _, run := range r.Runs {
		c := run.Compress
		if c == nil || run.Error != "" { // listed under Failed runs
			continue
		}
		k := compressKey{run.Target, c.Config.Kind, c.Config.Window}
		if runs[k] == nil {
			keys = append(keys, k)
		}
		runs[k] = append(runs[k], c)
	}
	if len(keys) == 0 {
		return
	}
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("## Compression\n\n")
	w("Clients offer what Chromium and Node's ws offer by default (`%s`), compress every message they send as the server's answer allows (context takeover and windows included; zlib's default level 6, as browsers), and inflate and check every message they receive: a goroutine per connection with blocking I/O, not the event-loop load generator the Method section describes. \"Wire\" is TCP bytes counted at the clients' sockets (frame headers and masks included) as a percentage of the payload: 100%% is no compression. Server CPU is utime+stime of the server process over the measured window. The load generator's CPU per message is shown so that a run it paced (its CPU per message near its share of a core) can be told apart from one the server paced.\n\n", scenario.CompressOffer)
	rowsOf := func(kind string) []compressKey {
		var rows []compressKey
		for _, k := range keys {
			if k.kind == kind {
				rows = append(rows, k)
			}
		}
		return rows
	}
	med1 := func(rs []*scenario.CompressResult, f func(*scenario.CompressResult) float64) float64 {
		v, _ := med(rs, f)
		return v
	}
	ext := func(c *scenario.CompressResult) string {
		if c.Extensions == "" {
			return "none"
		}
		return c.Extensions
	}
	for _, kind := range []string{"game", "chat"} {
		rows := rowsOf(kind)
		if len(rows) == 0 {
			continue
		}
		first := runs[rows[0]][0]
		w("### %s echoed (%.0f B per message, %d connections)\n\n", map[string]string{"game": "Game state JSON", "chat": "Chat lines"}[kind], first.MeanSize, first.Config.Conns)
		w("Server CPU per echoed message: inflating the client's message and compressing the echo.\n\n")
		w("| server | compression | server setting | negotiated | wire client→server | wire server→client | echoes compressed | round trips/s | server µs CPU/msg | load-gen µs CPU/msg | p50 | p99 | peak RSS |\n")
		w("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, k := range rows {
			rs := runs[k]
			m := func(f func(*scenario.CompressResult) float64) float64 { return med1(rs, f) }
			w("| %s | %s | `%s` | `%s` | %.1f%% | %.1f%% | %.0f%% | %s | %.2f | %.2f | %s | %s | %s |\n",
				k.target, scenario.WindowLabel(k.window), rs[0].ServerSetting, ext(rs[0]),
				100*m(func(c *scenario.CompressResult) float64 { return c.RatioUp }),
				100*m(func(c *scenario.CompressResult) float64 { return c.RatioDown }),
				100*m(func(c *scenario.CompressResult) float64 { return c.CompressedDown }),
				num(m(func(c *scenario.CompressResult) float64 { return c.PerSec })),
				m(func(c *scenario.CompressResult) float64 { return c.ServerCPUPerMsg }),
				m(func(c *scenario.CompressResult) float64 { return c.ClientCPUPerMsg }),
				usF(m(func(c *scenario.CompressResult) float64 { return float64(c.Latency.P50) })),
				usF(m(func(c *scenario.CompressResult) float64 { return float64(c.Latency.P99) })),
				mib(int64(m(func(c *scenario.CompressResult) float64 { return float64(c.PeakRSS) }))))
		}
		w("\n")
	}
	if rows := rowsOf("broadcast"); len(rows) > 0 {
		first := runs[rows[0]][0]
		w("### Compressed broadcast (game state JSON, %.0f B per message, %d connections)\n\n", first.MeanSize, first.Config.Conns)
		w("The server in broadcast mode; one connection publishes game ticks, at most %d on their way at once, and every connection (the publisher included) receives, inflates and checks each one in order. Server CPU is per delivery (one message to one connection). Without context takeover a server can compress a message once for every connection; with it each connection's copy is compressed against that connection's window, unless the server compresses broadcasts without back-references (gws does; the copy is then valid on every connection and only each window is updated). Latency runs from the publish to the last connection's receipt.\n\n", first.Config.Inflight)
		w("| server | compression | negotiated | wire server→client | deliveries compressed | deliveries/s | server µs CPU/delivery | load-gen µs CPU/delivery | p50 (all) | p99 (all) | peak RSS |\n")
		w("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, k := range rows {
			rs := runs[k]
			m := func(f func(*scenario.CompressResult) float64) float64 { return med1(rs, f) }
			w("| %s | %s | `%s` | %.1f%% | %.0f%% | %s | %.2f | %.2f | %s | %s | %s |\n",
				k.target, scenario.WindowLabel(k.window), ext(rs[0]),
				100*m(func(c *scenario.CompressResult) float64 { return c.RatioDown }),
				100*m(func(c *scenario.CompressResult) float64 { return c.CompressedDown }),
				num(m(func(c *scenario.CompressResult) float64 { return c.DeliveriesPerSec })),
				m(func(c *scenario.CompressResult) float64 { return c.ServerCPUPerDelivery }),
				m(func(c *scenario.CompressResult) float64 { return c.ClientCPUPerMsg }),
				usF(m(func(c *scenario.CompressResult) float64 { return float64(c.Latency.P50) })),
				usF(m(func(c *scenario.CompressResult) float64 { return float64(c.Latency.P99) })),
				mib(int64(m(func(c *scenario.CompressResult) float64 { return float64(c.PeakRSS) }))))
		}
		w("\n")
	}
}

// compressSummary is the one-line summary of a compress run.
func compressSummary(c *scenario.CompressResult) string {
	if c.Config.Kind == "broadcast" {
		return fmt.Sprintf("broadcast %s n=%d (%q): %.0f B/msg, %d published, %s deliveries/s, wire %.1f%% down (%.0f%% compressed), server %.2f µs CPU/delivery, load gen %.2f µs, p50 %s p99 %s",
			scenario.WindowLabel(c.Config.Window), c.Config.Conns, c.Extensions, c.MeanSize, c.Published, num(c.DeliveriesPerSec), 100*c.RatioDown, 100*c.CompressedDown,
			c.ServerCPUPerDelivery, c.ClientCPUPerMsg, us(c.Latency.P50), us(c.Latency.P99))
	}
	return fmt.Sprintf("%s %s c=%d (%q): %.0f B/msg, wire %.1f%% up %.1f%% down, %s round trips/s, server %.2f µs CPU/msg, load gen %.2f µs, p50 %s p99 %s",
		c.Config.Kind, scenario.WindowLabel(c.Config.Window), c.Config.Conns, c.Extensions, c.MeanSize, 100*c.RatioUp, 100*c.RatioDown,
		num(c.PerSec), c.ServerCPUPerMsg, c.ClientCPUPerMsg, us(c.Latency.P50), us(c.Latency.P99))
}
