// Package peercmd is the command-line scaffolding every Go peer server of the
// benchmark shares: the -addr/-admin/-mode flags, the expvar admin server, the
// "listening on ADDR" ready line and the SIGINT/SIGTERM shutdown. The
// WebSocket handling itself stays in each peer's main package, written the way
// that library's own README and examples write it.
package peercmd

import (
	"context"
	"errors"
	"expvar"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
)

// MaxMessageSize is the read limit every peer configures: well above the
// 256 KiB the harness sends, and above the 16 KiB or 4 MiB defaults some
// libraries ship with.
const MaxMessageSize = 16 << 20

// Mode is what a peer does with a message it receives.
type Mode string

const (
	// Echo sends every message back to its sender with the same opcode.
	Echo Mode = "echo"
	// Broadcast sends every message to every open connection, the sender included.
	Broadcast Mode = "broadcast"
	// Sink reads and drops every message.
	Sink Mode = "sink"
)

// CompressionEnv is the environment variable that gives -compression its
// default, so that a harness can turn compression on for peers it starts
// with fixed flags.
const CompressionEnv = "MEGAWS_PEER_COMPRESSION"

// CompressionOff is Peer.Compression when permessage-deflate is off.
const CompressionOff = -1

// Peer is what Main hands to a peer's start function.
type Peer struct {
	Mode Mode
	// Compression is the -compression flag: CompressionOff (the default),
	// 0 for permessage-deflate without context takeover, or 8 to 15 for
	// context takeover with a window of 2^Compression bytes both ways.
	// Peers that do not support it ignore it.
	Compression int
	Listener    net.Listener // already bound to -addr; the peer serves WebSocket on it, on any path

	// Connections is the number of open WebSocket connections, published as
	// the expvar "connections". Peers Add(1) when a connection opens and
	// Add(-1) when it closes.
	Connections *expvar.Int
}

// Main parses the flags, binds -addr, starts the admin server when -admin is
// set, and calls start. Once start returns it prints "listening on ADDR" to
// stdout, then waits for SIGINT or SIGTERM, calls stop and returns. Failures
// are reported on stderr and exit the process with status 1 (2 for bad flags).
func Main(start func(p *Peer) (stop func(), err error)) {
	addr := flag.String("addr", "127.0.0.1:8080", "WebSocket listen address (port 0 picks a free one)")
	admin := flag.String("admin", "", "admin listen address serving expvar at /debug/vars (empty: none)")
	mode := flag.String("mode", string(Echo), "echo, broadcast or sink")
	def := os.Getenv(CompressionEnv)
	if def == "" {
		def = "off"
	}
	compression := flag.String("compression", def, "permessage-deflate: off, 0 (no context takeover) or 8 to 15 (context takeover, window bits); default $"+CompressionEnv+" or off")
	flag.Parse()
	switch Mode(*mode) {
	case Echo, Broadcast, Sink:
	default:
		fmt.Fprintf(os.Stderr, "unknown -mode %q: want echo, broadcast or sink\n", *mode)
		os.Exit(2)
	}
	bits, err := ParseCompression(*compression)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}

	p := &Peer{Mode: Mode(*mode), Compression: bits, Connections: expvar.NewInt("connections")}
	expvar.Publish("goroutines", expvar.Func(func() any { return runtime.NumGoroutine() }))

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	if *admin != "" {
		if err := serveAdmin(*admin); err != nil {
			fail(err)
		}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fail(err)
	}
	p.Listener = ln
	stop, err := start(p)
	if err != nil {
		fail(err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	<-ctx.Done()
	stop()
}

// ParseCompression reads a -compression value: "off" (CompressionOff), "0"
// or 8 to 15.
func ParseCompression(s string) (int, error) {
	if s == "off" {
		return CompressionOff, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || (n != 0 && (n < 8 || n > 15)) {
		return 0, fmt.Errorf("bad -compression %q: want off, 0 or 8 to 15", s)
	}
	return n, nil
}

// ServeHTTP serves h on the peer's listener with a plain net/http server and
// returns the function that closes it. Hijacked WebSocket connections are not
// closed by it; they end with the process.
func (p *Peer) ServeHTTP(h http.Handler) (stop func()) {
	srv := &http.Server{Handler: h}
	go func() {
		if err := srv.Serve(p.Listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fail(err)
		}
	}()
	return func() { _ = srv.Close() }
}

func serveAdmin(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/debug/vars", expvar.Handler())
	go func() { _ = http.Serve(ln, mux) }()
	return nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
