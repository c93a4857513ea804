// Package metrics exports a megaws server's counters (server.Stats) to
// Prometheus. An embedder registers one collector per server, in the default
// registry or its own:
//
//	prometheus.MustRegister(metrics.NewCollector(s))
//
// The metrics are named megaws_* by default (see WithNamespace). Counters are
// counted per event loop inside the server and summed when Prometheus
// scrapes, so serving connections never touches a shared counter: the cost of
// metrics is paid by the scrape.
package metrics

import (
	"maps"
	"strconv"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/server"
	"github.com/prometheus/client_golang/prometheus"
)

// Option configures a Collector.
type Option func(*options)

type options struct {
	namespace string
	labels    prometheus.Labels
}

// WithNamespace sets the prefix of every metric name: namespace "game" names
// the open connections game_connections. The default is "megaws"; "" leaves
// the names bare (connections).
func WithNamespace(namespace string) Option {
	return func(o *options) { o.namespace = namespace }
}

// WithConstLabels adds labels with fixed values to every metric, such as the
// node name or the worker index of a process that shares its port with
// others. Several servers in one registry need the same constant label names
// with distinct values ({server="a"}, {server="b"}): identical collectors are
// refused as duplicates, and so are metrics of one name with different label
// names. The names status, code, kind, callback and loop are taken by the
// metrics' own labels; using one makes registration fail. The map is copied.
func WithConstLabels(labels prometheus.Labels) Option {
	return func(o *options) {
		if o.labels == nil {
			o.labels = prometheus.Labels{}
		}
		maps.Copy(o.labels, labels)
	}
}

// Collector is a prometheus.Collector over a server's Stats; create it with
// NewCollector.
//
// Describe and Collect may be called from any goroutine, concurrently, as a
// registry does. Collect never waits for the event loops: it reads what each
// loop last published (server.Server.Stats), so a scrape completes while a
// loop is blocked or saturated — when its loop lag is worth reading — and the
// figures are at most one event old. After Stop it reports the last figures.
//
// Each scrape costs one call to Stats (a few atomic loads per loop, and a
// per-loop mutex taken only by rare events while the maps are copied) plus
// one sample per series: about twenty, plus one per close code, HTTP
// status, protocol-error kind and panicking callback seen, and two per event
// loop. Nothing is allocated or counted between scrapes.
type Collector struct {
	stats func() server.Stats

	conns, loops, queued                    *prometheus.Desc
	handshakes, rejected, served            *prometheus.Desc
	msgsIn, msgsOut, bytesIn, bytesOut      *prometheus.Desc
	closeCodes, protoErrs                   *prometheus.Desc
	queueDrops, budgetDrops, readQueueDrops *prometheus.Desc
	rateLimited, snapshotsReplaced          *prometheus.Desc
	pingsSent, pongsIn                      *prometheus.Desc
	closesAnswered, closeTimeouts           *prometheus.Desc
	readPauses, panics, fdShed, releases    *prometheus.Desc
	clusterOut, clusterIn, clusterDrops     *prometheus.Desc
	loopLag, loopLagMax                     *prometheus.Desc
}

// NewCollector returns a collector of s's counters. It may be created and
// registered before s serves; until then it reports zeros.
func NewCollector(s *server.Server, opts ...Option) *Collector {
	return newCollector(s.Stats, opts...)
}

func newCollector(stats func() server.Stats, opts ...Option) *Collector {
	o := options{namespace: "megaws"}
	for _, opt := range opts {
		opt(&o)
	}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(o.namespace, "", name), help, labels, o.labels)
	}
	return &Collector{
		stats: stats,

		conns:  d("connections", "Open WebSocket connections."),
		loops:  d("event_loops", "Event loops serving connections."),
		queued: d("queued_bytes", "Memory, in bytes, held now by output waiting for congested connections (bounded by the server's MaxQueuedBytes)."),

		handshakes: d("handshakes_accepted_total", "WebSocket upgrades accepted (101 sent)."),
		rejected:   d("handshakes_rejected_total", "Requests refused without an upgrade, by HTTP status: 426 for a plain GET, 400/403/405/431/503 for bad or refused upgrades, 500 when OnUpgrade panicked.", "status"),
		served:     d("http_served_total", "Plain HTTP GET requests answered with a success status (/healthz, pages of an HTTPResponder), by status.", "status"),

		msgsIn:   d("messages_received_total", "Complete messages received."),
		msgsOut:  d("messages_sent_total", "Frames written: messages, pings, pongs, and broadcasts once per recipient."),
		bytesIn:  d("received_bytes_total", "Payload bytes received."),
		bytesOut: d("sent_bytes_total", "Payload bytes written."),

		closeCodes: d("closes_total", "Finished connections by close code (1006: the TCP connection ended without a close frame).", "code"),
		protoErrs:  d("protocol_errors_total", "Connections failed for a protocol violation, by kind.", "kind"),

		queueDrops:     d("write_queue_drops_total", "Connections closed because their outbound queue passed the write-queue limit (slow readers)."),
		budgetDrops:    d("budget_drops_total", "Connections closed because the output waiting for all slow readers passed the server-wide budget (MaxQueuedBytes); the slowest readers go first."),
		readQueueDrops: d("read_queue_drops_total", "Connections closed because they went on sending while they did not read (MaxReadQueue)."),

		rateLimited:       d("rate_limited_messages_total", "Messages over a connection's rate limit (RateLimit): dropped, or their connection closed with 1008."),
		pingsSent:         d("pings_sent_total", "Keepalive pings sent to connections silent for the ping interval."),
		pongsIn:           d("pongs_received_total", "Pongs received (answers to keepalive pings and Conn.Ping)."),
		closesAnswered:    d("close_handshakes_answered_total", "Close handshakes the server started (Close, Stop, idle timeout) that the peer completed with its close frame."),
		closeTimeouts:     d("close_timeouts_total", "Close handshakes the server started that the peer did not answer within the close timeout."),
		snapshotsReplaced: d("snapshots_replaced_total", "Snapshots (SendSnapshot, WriteSnapshot) that replaced an older one still waiting for a lagging peer, which never got the older one."),

		readPauses: d("read_pauses_total", "Times reading from a connection paused because too much output waited for it (backpressure)."),
		panics:     d("handler_panics_total", "Panics recovered from handler callbacks and functions run on the event loops, by callback; each cost its connection (close 1011 or HTTP 500).", "callback"),
		fdShed:     d("fd_shed_total", "Connections closed right after accept because the process was close to its open-files limit."),
		releases:   d("memory_releases_total", "Times memory left behind by a burst was collected and returned to the OS."),

		clusterOut:   d("cluster_messages_sent_total", "Messages handed to the broker for the other nodes of the cluster."),
		clusterIn:    d("cluster_messages_received_total", "Messages from other nodes of the cluster delivered here."),
		clusterDrops: d("cluster_messages_dropped_total", "Messages the broker could not take: lost for the other nodes (their local delivery happened)."),

		loopLag:    d("loop_lag_seconds", "Seconds the work most recently queued for the event loop (Send, Publish, Do, timers) waited before the loop ran it. A handler that blocks, or a saturated loop, shows here first.", "loop"),
		loopLagMax: d("loop_lag_max_seconds", "Largest loop lag of the event loop over the last 10 to 20 seconds, in seconds.", "loop"),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.conns, c.loops, c.queued,
		c.handshakes, c.rejected, c.served,
		c.msgsIn, c.msgsOut, c.bytesIn, c.bytesOut,
		c.closeCodes, c.protoErrs,
		c.queueDrops, c.budgetDrops, c.readQueueDrops,
		c.rateLimited, c.snapshotsReplaced, c.pingsSent, c.pongsIn, c.closesAnswered, c.closeTimeouts,
		c.readPauses, c.panics, c.fdShed, c.releases,
		c.clusterOut, c.clusterIn, c.clusterDrops,
		c.loopLag, c.loopLagMax,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector; it runs once per scrape.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(c.conns, float64(st.Conns))
	gauge(c.loops, float64(st.Loops))
	gauge(c.queued, float64(st.QueuedBytes))
	counter(c.handshakes, st.Handshakes)
	counter(c.msgsIn, st.MessagesIn)
	counter(c.msgsOut, st.MessagesOut)
	counter(c.bytesIn, st.BytesIn)
	counter(c.bytesOut, st.BytesOut)
	counter(c.queueDrops, st.QueueDrops)
	counter(c.budgetDrops, st.BudgetDrops)
	counter(c.readQueueDrops, st.ReadQueueDrops)
	counter(c.rateLimited, st.RateLimited)
	counter(c.snapshotsReplaced, st.SnapshotsReplaced)
	counter(c.pingsSent, st.PingsSent)
	counter(c.pongsIn, st.PongsIn)
	counter(c.closesAnswered, st.ClosesAnswered)
	counter(c.closeTimeouts, st.CloseTimeouts)
	counter(c.readPauses, st.ReadPauses)
	counter(c.fdShed, st.FDShed)
	counter(c.releases, st.MemoryReleases)
	counter(c.clusterOut, st.ClusterOut)
	counter(c.clusterIn, st.ClusterIn)
	counter(c.clusterDrops, st.ClusterDrops)
	// Stats.Panics is the sum of PanicsByCallback: sum(handler_panics_total).
	for cb, n := range st.PanicsByCallback {
		counter(c.panics, n, cb)
	}
	for status, n := range st.Rejected {
		counter(c.rejected, n, strconv.Itoa(status))
	}
	for status, n := range st.HTTPServed {
		counter(c.served, n, strconv.Itoa(status))
	}
	for code, n := range st.CloseCodes {
		counter(c.closeCodes, n, codeLabel(code))
	}
	for kind, n := range st.ProtocolErrors {
		counter(c.protoErrs, n, kindLabel(kind))
	}
	// The loop label is the loop's index in Stats.LoopLag: the order in
	// which the loops first served a connection, fixed for the server's life.
	for i, d := range st.LoopLag {
		gauge(c.loopLag, d.Seconds(), strconv.Itoa(i))
	}
	for i, d := range st.LoopLagMax {
		gauge(c.loopLagMax, d.Seconds(), strconv.Itoa(i))
	}
}

func codeLabel(code ws.StatusCode) string { return strconv.Itoa(int(code)) }

// kindLabel turns a protocol violation's description ("client frame is not
// masked") into a label value in the usual metric style
// ("client_frame_is_not_masked").
func kindLabel(reason string) string {
	b := make([]byte, 0, len(reason))
	sep := false
	for i := 0; i < len(reason); i++ {
		ch := reason[i]
		switch {
		case 'a' <= ch && ch <= 'z', '0' <= ch && ch <= '9':
		case 'A' <= ch && ch <= 'Z':
			ch += 'a' - 'A'
		default:
			sep = len(b) > 0
			continue
		}
		if sep {
			b = append(b, '_')
			sep = false
		}
		b = append(b, ch)
	}
	return string(b)
}
