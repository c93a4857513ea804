package main

import (
	"net/http"

	"github.com/megaws/megaws/server"
)

// mountMetrics adds the Prometheus endpoint to the admin mux.
func mountMetrics(mux *http.ServeMux, s *server.Server) {}
