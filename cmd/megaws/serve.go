package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/megaws/megaws/examples/demo"
	"github.com/megaws/megaws/server"
)

// serveFlags are the flags of "megaws serve".
type serveFlags struct {
	addr, mode, logLevel, admin string
	loops, workers              int
	cfg                         server.Config
	worker                      int // >0 in a child started by --workers
}

func parseServe(args []string, stderr io.Writer) (*serveFlags, error) {
	f := &serveFlags{}
	fs := flag.NewFlagSet("megaws serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: megaws serve [flags]\n\nRuns a WebSocket server until SIGINT or SIGTERM, then stops gracefully\n(close 1001 to every client, up to --stop-timeout).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&f.addr, "addr", "127.0.0.1:8080", "TCP address to listen on (port 0 picks a free port)")
	fs.StringVar(&f.mode, "mode", "echo", "echo: send every message back; broadcast: send every message to every connection; sink: read and drop; demo: a shared board page at / (open it in several browser tabs)")
	fs.IntVar(&f.loops, "loops", runtime.NumCPU(), "event loops per process")
	fs.IntVar(&f.workers, "workers", 1, "processes sharing the port with SO_REUSEPORT (for hosts whose per-process open-files limit is below the target connection count)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.admin, "admin", "", "address of the admin HTTP listener (/debug/vars, /metrics, /debug/pprof/); empty disables it. With --workers, worker i listens on port+i")
	fs.IntVar(&f.cfg.MaxConns, "max-conns", server.DefaultMaxConns, "most WebSocket connections per process (HTTP 503 beyond)")
	fs.IntVar(&f.cfg.MaxMessageSize, "max-message", server.DefaultMaxMessageSize, "largest message in bytes (close 1009 beyond)")
	fs.IntVar(&f.cfg.MaxWriteQueue, "max-write-queue", server.DefaultMaxWriteQueue, "bytes queued for a slow reader before it is closed with 1008")
	fs.IntVar(&f.cfg.ReadBufferSize, "read-buffer", server.DefaultReadBufferSize, "bytes read per readable event, into one buffer per event loop")
	fs.IntVar(&f.cfg.MaxHeaderBytes, "max-header-bytes", 8<<10, "largest handshake request head (HTTP 431 beyond)")
	fs.DurationVar(&f.cfg.HandshakeTimeout, "handshake-timeout", server.DefaultHandshakeTimeout, "time allowed for the opening handshake")
	fs.DurationVar(&f.cfg.PingInterval, "ping-interval", server.DefaultPingInterval, "silence before a keepalive ping (negative disables)")
	fs.DurationVar(&f.cfg.IdleTimeout, "idle-timeout", server.DefaultIdleTimeout, "silence, pongs included, before the connection is closed (negative disables)")
	fs.DurationVar(&f.cfg.CloseTimeout, "close-timeout", server.DefaultCloseTimeout, "wait for the peer's close frame")
	fs.BoolVar(&f.cfg.Compression, "compression", false, "negotiate permessage-deflate (RFC 7692) with clients that offer it; no context takeover")
	fs.IntVar(&f.cfg.CompressionThreshold, "compression-threshold", 256, "smallest payload compressed when deflate is negotiated")
	stopTimeout := fs.Duration("stop-timeout", 5*time.Second, "graceful stop deadline on SIGINT/SIGTERM")
	fs.IntVar(&f.worker, "worker-index", 0, "internal: index of a --workers child")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch f.mode {
	case "echo", "broadcast", "sink", "demo":
	default:
		return nil, fmt.Errorf("unknown --mode %q (echo, broadcast, sink or demo)", f.mode)
	}
	if f.workers < 1 || f.loops < 1 {
		return nil, errors.New("--workers and --loops must be at least 1")
	}
	f.cfg.Loops = f.loops
	f.cfg.ReusePort = f.workers > 1 || f.worker > 0
	stopDeadline = *stopTimeout
	return f, nil
}

var stopDeadline = 5 * time.Second

func serve(args []string, stdout, stderr io.Writer) int {
	f, err := parseServe(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "megaws serve:", err)
		return 2
	}
	log, err := newLogger(f.logLevel, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "megaws serve:", err)
		return 2
	}
	if f.workers > 1 && f.worker == 0 {
		return runWorkers(f, args, stdout, stderr, log)
	}
	f.cfg.Logger = log
	h := newHandler(f.mode)
	s := server.New(h, f.cfg)
	if b, ok := h.(*broadcastHandler); ok {
		b.s = s
	}
	if d, ok := h.(*demo.Demo); ok {
		defer d.Start(s)()
	}

	errc := make(chan error, 1)
	go func() { errc <- s.ListenAndServe(f.addr) }()
	select {
	case err := <-errc:
		fmt.Fprintln(stderr, "megaws serve:", err)
		return 1
	case <-s.Ready():
	}
	if f.admin != "" {
		adminAddr := f.admin
		if f.worker > 0 {
			adminAddr = offsetPort(f.admin, f.worker-1)
		}
		stopAdmin, err := startAdmin(adminAddr, s, log)
		if err != nil {
			fmt.Fprintln(stderr, "megaws serve: admin:", err)
			return 1
		}
		defer stopAdmin()
	}
	if f.worker == 0 {
		fmt.Fprintf(stdout, "megaws: listening on %s (mode %s, loops %d)\n", s.Addr(), f.mode, f.loops)
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	select {
	case err := <-errc:
		if err != nil {
			fmt.Fprintln(stderr, "megaws serve:", err)
			return 1
		}
		return 0
	case got := <-sig:
		log.Info("stopping", "signal", got.String(), "conns", s.Conns())
	}
	ctx, cancel := context.WithTimeout(context.Background(), stopDeadline)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		log.Warn("graceful stop incomplete", "err", err)
	}
	return 0
}

func newLogger(level string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("bad --log-level %q", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}
