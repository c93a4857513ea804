package main

import (
	"context"
	"expvar"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/megaws/megaws/server"
)

// startAdmin serves the admin endpoints on addr: /debug/vars (expvar, with
// "pid", "goroutines", "connections" and "megaws" counters added), /debug/pprof/ and
// /healthz. It is opt-in because it exposes process internals, and it warns
// when addr is reachable from other hosts.
func startAdmin(addr string, s *server.Server, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	publishVars(s)
	mux := http.NewServeMux()
	mux.Handle("/debug/vars", expvar.Handler())
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mountMetrics(mux, s)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := hs.Serve(ln); err != nil && err != http.ErrServerClosed {
			log.Error("admin listener", "err", err)
		}
	}()
	log.Info("admin listening", "addr", ln.Addr().String())
	if exposed(ln.Addr()) {
		log.Warn("the admin listener is reachable from the network: /debug/pprof (profiles, traces, the command line) and /metrics (and /debug/vars) are exposed to anyone who can connect to it; bind --admin to 127.0.0.1 or ::1, or firewall its port",
			"addr", ln.Addr().String())
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
	}, nil
}

// exposed reports whether a listener bound to a accepts connections from
// other hosts: every address but loopback (127.0.0.0/8, ::1). The bound
// address is the resolved one: "localhost" has become 127.0.0.1 or ::1, and
// an empty host, 0.0.0.0 or :: is the unspecified address, every interface.
func exposed(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return !ok || !ta.IP.IsLoopback()
}

var varsServer *server.Server

func publishVars(s *server.Server) {
	if varsServer != nil {
		varsServer = s
		return
	}
	varsServer = s
	expvar.Publish("pid", expvar.Func(func() any { return os.Getpid() }))
	expvar.Publish("goroutines", expvar.Func(func() any { return runtime.NumGoroutine() }))
	expvar.Publish("connections", expvar.Func(func() any { return varsServer.Conns() }))
	expvar.Publish("megaws", expvar.Func(func() any { return varsServer.Stats() }))
}

// offsetPort returns addr with its port increased by n.
func offsetPort(addr string, n int) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	p, err := strconv.Atoi(port)
	if err != nil || p == 0 {
		return addr
	}
	return net.JoinHostPort(host, strconv.Itoa(p+n))
}
