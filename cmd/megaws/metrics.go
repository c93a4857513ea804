package main

import (
	"net/http"

	"github.com/megaws/megaws/metrics"
	"github.com/megaws/megaws/server"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// mountMetrics adds the Prometheus endpoint, /metrics, to the admin mux: the
// server's counters (megaws_*, see package metrics) plus the Go runtime and
// process collectors. Each mux gets its own registry, so several servers in
// one process (tests) do not collide in the global one.
func mountMetrics(mux *http.ServeMux, s *server.Server) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		metrics.NewCollector(s),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
}
