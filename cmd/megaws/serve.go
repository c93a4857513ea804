package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/megaws/megaws/cmd/megaws/internal/demo"
	"github.com/megaws/megaws/server"
)

// serveFlags are the flags of "megaws serve".
type serveFlags struct {
	addr, mode, logLevel, admin string
	broker                      string // --broker URL, "" for a single node
	loops, workers              int
	cfg                         server.Config
	worker                      int // >0 in a child started by --workers
}

// originsHelp documents --allowed-origins; browser-facing deployments need it.
const originsHelp = `comma-separated origins allowed to open a WebSocket, each scheme://host[:port] exactly as browsers send it in the Origin header (lowercase, no path, no default port), e.g. https://game.example,https://www.game.example; an upgrade whose Origin is not listed gets HTTP 403. Browsers always send Origin: without this list any web page a user visits can open a socket to this server with the user's cookies (cross-site WebSocket hijacking), so set it whenever browsers connect (in --mode demo, list the page's own origin, http://HOST:PORT). Non-browser clients usually send no Origin: while the list is set, an upgrade without Origin is refused (403) too. Empty (the default): any origin, or none, is accepted`

func parseServe(args []string, stderr io.Writer) (*serveFlags, error) {
	f := &serveFlags{}
	fs := flag.NewFlagSet("megaws serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: megaws serve [flags]\n\nRuns a WebSocket server until SIGINT or SIGTERM, then stops gracefully\n(close 1001 to every client, up to --stop-timeout).\nIts garbage collector runs at GOGC=50 unless the environment sets GOGC\n(idle connections then keep less of their handshakes' garbage resident).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&f.addr, "addr", "127.0.0.1:8080", "TCP address to listen on (port 0 picks a free port)")
	fs.StringVar(&f.mode, "mode", "echo", "echo: send every message back; broadcast: send every message to every connection; sink: read and drop; demo: a shared board page at / (open it in several browser tabs)")
	fs.IntVar(&f.loops, "loops", runtime.NumCPU(), "event loops per process; with --workers, the CPUs divided among the workers (at least 1) unless set")
	fs.IntVar(&f.workers, "workers", 1, "processes sharing the port with SO_REUSEPORT (for hosts whose per-process open-files limit is below the target connection count)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.admin, "admin", "", "address of the admin HTTP listener (/debug/vars, /metrics, /debug/pprof/); empty disables it. With --workers, worker i listens on port+i. Keep it on loopback (127.0.0.1:PORT): any other address, 0.0.0.0 or an empty host included, exposes profiles and process internals to the network, and megaws warns at startup")
	origins := fs.String("allowed-origins", "", originsHelp)
	fs.StringVar(&f.broker, "broker", "", brokerHelp)
	fs.IntVar(&f.cfg.MaxConns, "max-conns", server.DefaultMaxConns, "most WebSocket connections per process (HTTP 503 beyond)")
	fs.IntVar(&f.cfg.MaxMessageSize, "max-message", server.DefaultMaxMessageSize, "largest message in bytes (close 1009 beyond)")
	fs.IntVar(&f.cfg.MaxWriteQueue, "max-write-queue", server.DefaultMaxWriteQueue, "bytes queued for a slow reader before it is closed with 1008")
	fs.IntVar(&f.cfg.MaxQueuedBytes, "max-queued", 0, "server-wide budget of bytes waiting for slow readers; past it the slowest are closed with 1008 first (0: an eighth of the machine's memory, at most 1 GiB)")
	fs.IntVar(&f.cfg.MaxReadQueue, "max-read-queue", 0, "unhandled input held for a peer that sends without reading its answers, before it is closed with 1008 (0: --max-message + 1 MiB)")
	fs.Float64Var(&f.cfg.RateLimit.Messages, "rate-messages", 0, "messages per second each connection may send (0: no limit); past the burst a message is dropped, or the connection closed with --rate-close")
	fs.IntVar(&f.cfg.RateLimit.MessageBurst, "rate-burst", 0, "messages a connection may send at once above --rate-messages (0: one second's worth)")
	fs.Float64Var(&f.cfg.RateLimit.Bytes, "rate-bytes", 0, "payload bytes per second each connection may send (0: no limit; burst: one second's worth, at least 64 KiB)")
	fs.BoolVar(&f.cfg.RateLimit.Close, "rate-close", false, "close a connection over its rate limit with 1008 instead of dropping the message")
	subprotocols := fs.String("subprotocols", "", "comma-separated subprotocols the server speaks, in order of preference (the first the client also offers is selected)")
	fs.IntVar(&f.cfg.ReserveFDs, "reserve-fds", 0, "descriptors below the open-files limit left free: connections past it are answered 503 (0: 1% of the limit, 64 to 1024; negative disables)")
	fs.IntVar(&f.cfg.ReadBufferSize, "read-buffer", server.DefaultReadBufferSize, "bytes read per readable event, into one buffer per event loop")
	fs.IntVar(&f.cfg.SendBuffer, "send-buffer", 0, "each connection's kernel send buffer (SO_SNDBUF), 0 for the system's; small keeps a slow reader's snapshots fresh")
	fs.IntVar(&f.cfg.MaxHeaderBytes, "max-header-bytes", 8<<10, "largest handshake request head (HTTP 431 beyond)")
	fs.DurationVar(&f.cfg.HandshakeTimeout, "handshake-timeout", server.DefaultHandshakeTimeout, "time allowed for the opening handshake")
	fs.DurationVar(&f.cfg.PingInterval, "ping-interval", server.DefaultPingInterval, "silence before a keepalive ping (negative disables)")
	fs.DurationVar(&f.cfg.IdleTimeout, "idle-timeout", server.DefaultIdleTimeout, "silence, pongs included, before the connection is closed (negative disables)")
	fs.DurationVar(&f.cfg.CloseTimeout, "close-timeout", server.DefaultCloseTimeout, "wait for the peer's close frame")
	fs.BoolVar(&f.cfg.Compression, "compression", false, "negotiate permessage-deflate (RFC 7692) with clients that offer it; no context takeover unless --compression-window is set")
	fs.IntVar(&f.cfg.CompressionWindowBits, "compression-window", 0, "with --compression: 0 for no context takeover (nothing kept between messages), or 8 to 15 for context takeover with a window of 2^BITS bytes per direction and connection (10: 2 KiB per connection, for small repetitive messages such as game state)")
	fs.IntVar(&f.cfg.CompressionThreshold, "compression-threshold", 256, "smallest payload compressed when deflate is negotiated")
	memoryRelease := fs.Duration("memory-release", 5*time.Second, "how often to check whether a burst of large messages left memory behind, and if so collect it and return it to the OS; 0 disables")
	stopTimeout := fs.Duration("stop-timeout", 5*time.Second, "graceful stop deadline on SIGINT/SIGTERM")
	fs.IntVar(&f.worker, "worker-index", 0, "internal: index of a --workers child")
	err := fs.Parse(args)
	if err != nil {
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
	if f.workers > 1 && !flagSet(fs, "loops") {
		// Each worker is a process with its own loops: NumCPU loops in
		// each would put workers*NumCPU loops (threads, read buffers,
		// timer wake-ups) on NumCPU CPUs.
		f.loops = max(1, runtime.NumCPU()/f.workers)
	}
	if f.cfg.AllowedOrigins, err = parseOrigins(*origins); err != nil {
		return nil, err
	}
	for _, p := range strings.Split(*subprotocols, ",") {
		if p = strings.TrimSpace(p); p != "" {
			f.cfg.Subprotocols = append(f.cfg.Subprotocols, p)
		}
	}
	if err := checkBrokerURL(f.broker); err != nil {
		return nil, err
	}
	if w := f.cfg.CompressionWindowBits; w != 0 && (w < 8 || w > 15) {
		return nil, fmt.Errorf("--compression-window %d: want 0 (no context takeover) or 8 to 15", w)
	}
	// Negative is off in every version of the library; 0 meant "the default,
	// 5 s" before embedders' default became off.
	f.cfg.MemoryReleaseInterval = *memoryRelease
	if *memoryRelease <= 0 {
		f.cfg.MemoryReleaseInterval = -1
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
		if w := workersWarning(f); w != "" {
			log.Warn(w, "mode", f.mode, "workers", f.workers)
		}
		return runWorkers(f, args, stdout, stderr, log)
	}
	f.cfg.Logger = log
	if setServeGC(os.Getenv) {
		log.Debug("garbage collector target set", "gogc", serveGCPercent)
	}
	if f.broker != "" {
		if f.cfg.Broker, err = newBroker(f.broker, log); err != nil {
			fmt.Fprintln(stderr, "megaws serve:", err)
			return 2
		}
	}
	h := newHandler(f.mode)
	s := server.New(h, f.cfg)
	if b, ok := h.(*broadcastHandler); ok {
		b.s = s
	}
	if d, ok := h.(*demo.Demo); ok {
		defer d.Start(s)()
	}

	// Catch the stop signals before anything can see the server: a SIGTERM
	// sent right after the "listening on" line must stop it gracefully, not
	// kill it.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)

	errc := make(chan error, 1)
	go func() { errc <- s.ListenAndServe(f.addr) }()
	select {
	case err := <-errc:
		if err != nil { // it could not start: the address is taken, say
			fmt.Fprintln(stderr, "megaws serve:", err)
			return 1
		}
		return engineStopped(nil, log)
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
	} else {
		workerReady()
	}

	select {
	case err := <-errc:
		return engineStopped(err, log)
	case got := <-sig:
		log.Info("stopping", "signal", got.String(), "conns", s.Conns())
	}
	ctx, cancel := context.WithTimeout(context.Background(), stopDeadline)
	defer cancel()
	stopStart := time.Now()
	before := s.Stats()
	if err := s.Stop(ctx); err != nil {
		log.Warn("graceful stop incomplete", "err", err)
	}
	// The stop's outcome, for whoever supervises this process (the c1m
	// report reads it): how many of the close handshakes it started the
	// clients completed, and how long it took.
	after := s.Stats()
	log.Info("stopped", "conns", before.Conns,
		"close_handshakes_answered", after.ClosesAnswered-before.ClosesAnswered,
		"close_timeouts", after.CloseTimeouts-before.CloseTimeouts,
		"seconds", time.Since(stopStart).Seconds())
	return 0
}

// engineStopped logs why the engine stopped when serve did not stop it and
// returns the exit code: 1 always, since only a SIGINT or SIGTERM ends a
// healthy server, and a supervisor must see the failure to restart it, even
// when ListenAndServe returned no error.
func engineStopped(err error, log *slog.Logger) int {
	if err == nil {
		err = errors.New("ListenAndServe returned without a stop signal")
	}
	log.Error("server stopped unexpectedly", "err", err)
	return 1
}

// parseOrigins splits an --allowed-origins value into the Origin header values
// a browser sends. "" is the empty list (any origin); every item must be an
// origin, since the server compares Origin headers with them byte for byte.
func parseOrigins(list string) ([]string, error) {
	if list == "" {
		return nil, nil
	}
	var origins []string
	for i, item := range strings.Split(list, ",") {
		o := strings.TrimSpace(item)
		if o == "" {
			return nil, fmt.Errorf("--allowed-origins: item %d is empty", i+1)
		}
		if err := checkOrigin(o); err != nil {
			return nil, fmt.Errorf("--allowed-origins: %q is not an origin: %v", o, err)
		}
		origins = append(origins, o)
	}
	return origins, nil
}

// checkOrigin accepts the serialization of an origin (RFC 6454 §6.2):
// scheme://host[:port], lowercase, the port only when not the scheme's default.
func checkOrigin(o string) error {
	const want = "want scheme://host[:port], e.g. https://game.example"
	if strings.Contains(o, "*") {
		return errors.New("wildcards are not supported; list every origin")
	}
	scheme, rest, ok := strings.Cut(o, "://")
	if !ok || scheme == "" || rest == "" {
		return errors.New(want)
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		return fmt.Errorf("it has a path, query or fragment (%q); %s", rest[i:], want)
	}
	if strings.Contains(rest, "@") {
		return fmt.Errorf("it has user info; %s", want)
	}
	u, err := url.Parse(o)
	if err != nil {
		return fmt.Errorf("%v; %s", err, want)
	}
	host, port := u.Hostname(), u.Port()
	if !validScheme(scheme) || !validHost(host) {
		return errors.New(want)
	}
	if lower := strings.ToLower(o); lower != o {
		return fmt.Errorf("browsers send scheme and host in lowercase: use %q", lower)
	}
	if strings.HasSuffix(rest, ":") {
		return fmt.Errorf("empty port; %s", want)
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			return fmt.Errorf("bad port %q", port)
		}
		if defaultPort[scheme] == port {
			return fmt.Errorf("browsers leave out the default port: use %q", scheme+"://"+u.Host[:len(u.Host)-len(port)-1])
		}
	}
	return nil
}

var defaultPort = map[string]string{"http": "80", "https": "443", "ws": "80", "wss": "443"}

// validScheme follows RFC 3986 §3.1: a letter, then letters, digits, '+', '-' or '.'.
func validScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isLetter(c):
		case i > 0 && (isDigit(c) || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// validHost accepts a DNS name (ASCII, as browsers send IDNs in punycode), an
// IPv4 address or a bracketed IPv6 address (url.URL.Hostname strips the brackets).
func validHost(h string) bool {
	if strings.Contains(h, ":") {
		return net.ParseIP(h) != nil
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !isLetter(c) && !isDigit(c) && c != '-' && c != '.' && c != '_' {
			return false
		}
	}
	return h != ""
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool  { return '0' <= c && c <= '9' }

func newLogger(level string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, fmt.Errorf("bad --log-level %q", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// workersWarning is the warning for --workers in a mode whose messages span
// connections (broadcast, demo) without --broker: each worker is a server of
// its own, so a client sees only the clients of its worker.
func workersWarning(f *serveFlags) string {
	if f.workers > 1 && f.broker == "" && (f.mode == "broadcast" || f.mode == "demo") {
		return "--workers without --broker: each worker is a separate server, so a broadcast reaches only the connections of its own worker; add --broker to join the workers into one cluster"
	}
	return ""
}

// flagSet reports whether the command line set the flag name.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
