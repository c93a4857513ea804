package metrics_test

import (
	"net/http"

	"github.com/megaws/megaws/metrics"
	"github.com/megaws/megaws/server"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// An embedder exports its server's counters next to its own metrics.
func ExampleNewCollector() {
	s := server.New(server.BaseHandler{}, server.Config{})
	prometheus.MustRegister(metrics.NewCollector(s))
	http.Handle("/metrics", promhttp.Handler())
}

// Two servers in one process share a registry with a constant label each.
func ExampleWithConstLabels() {
	game := server.New(server.BaseHandler{}, server.Config{})
	chat := server.New(server.BaseHandler{}, server.Config{})
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		metrics.NewCollector(game, metrics.WithConstLabels(prometheus.Labels{"server": "game"})),
		metrics.NewCollector(chat, metrics.WithConstLabels(prometheus.Labels{"server": "chat"})),
	)
	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
}
