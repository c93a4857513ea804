package main

import (
	"net/http"
	"strconv"

	"github.com/megaws/megaws/server"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// mountMetrics adds the Prometheus endpoint, /metrics, to the admin mux: the
// server's counters (megaws_*) plus the Go runtime and process collectors.
// Each mux gets its own registry, so several servers in one process (tests)
// do not collide in the global one.
func mountMetrics(mux *http.ServeMux, s *server.Server) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		newStatsCollector(s),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
}

// statsCollector exports server.Stats. The counters live per event loop and
// are summed by Stats when Prometheus scrapes, so serving connections never
// touches a shared counter: the cost of metrics is paid by the scrape.
type statsCollector struct {
	s *server.Server

	conns, loops                    *prometheus.Desc
	handshakes, rejected, served    *prometheus.Desc
	msgsIn, msgsOut                 *prometheus.Desc
	bytesIn, bytesOut               *prometheus.Desc
	closeCodes, protoErrs, queueDrp *prometheus.Desc
	releases, panics, fdShed        *prometheus.Desc
	readPauses                      *prometheus.Desc
}

func newStatsCollector(s *server.Server) *statsCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("megaws_"+name, help, labels, nil)
	}
	return &statsCollector{
		s:          s,
		conns:      d("connections", "Open WebSocket connections."),
		loops:      d("event_loops", "Event loops serving connections."),
		handshakes: d("handshakes_accepted_total", "WebSocket upgrades accepted (101 sent)."),
		rejected:   d("handshakes_rejected_total", "Requests refused without an upgrade, by HTTP status: 426 for a plain GET, 400/403/405/431/503 for bad or refused upgrades, 500 when OnUpgrade panicked.", "status"),
		served:     d("http_served_total", "Plain HTTP GET requests answered with a success status (/healthz, pages of an HTTPResponder), by status.", "status"),
		msgsIn:     d("messages_received_total", "Complete messages received."),
		msgsOut:    d("messages_sent_total", "Frames written: messages, pings, pongs, and broadcasts once per recipient."),
		bytesIn:    d("received_bytes_total", "Payload bytes received."),
		bytesOut:   d("sent_bytes_total", "Payload bytes written."),
		closeCodes: d("closes_total", "Finished connections by close code (1006: the TCP connection ended without a close frame).", "code"),
		protoErrs:  d("protocol_errors_total", "Connections failed for a protocol violation, by kind.", "kind"),
		queueDrp:   d("write_queue_drops_total", "Connections closed because their outbound queue passed the write-queue limit (slow readers)."),
		releases:   d("memory_releases_total", "Times memory left behind by a burst was collected and returned to the OS."),
		panics:     d("handler_panics_total", "Panics recovered from handler callbacks and functions run on the event loops, by callback; each cost its connection (close 1011 or HTTP 500).", "callback"),
		fdShed:     d("fd_shed_total", "Connections closed right after accept because the process was close to its open-files limit."),
		readPauses: d("read_pauses_total", "Times reading from a connection paused because too much output waited for it (backpressure)."),
	}
}

// Describe implements prometheus.Collector.
func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.conns, c.loops, c.handshakes, c.rejected, c.served, c.msgsIn, c.msgsOut,
		c.bytesIn, c.bytesOut, c.closeCodes, c.protoErrs, c.queueDrp, c.releases,
		c.panics, c.fdShed, c.readPauses,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector; it runs once per scrape.
func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(c.conns, float64(st.Conns))
	gauge(c.loops, float64(st.Loops))
	counter(c.handshakes, st.Handshakes)
	counter(c.msgsIn, st.MessagesIn)
	counter(c.msgsOut, st.MessagesOut)
	counter(c.bytesIn, st.BytesIn)
	counter(c.bytesOut, st.BytesOut)
	counter(c.queueDrp, st.QueueDrops)
	counter(c.releases, st.MemoryReleases)
	counter(c.fdShed, st.FDShed)
	counter(c.readPauses, st.ReadPauses)
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
		counter(c.closeCodes, n, strconv.Itoa(int(code)))
	}
	for kind, n := range st.ProtocolErrors {
		counter(c.protoErrs, n, kindLabel(kind))
	}
}

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
