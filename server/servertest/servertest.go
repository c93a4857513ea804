// Package servertest runs megaws servers in tests: on a free loopback port,
// stopped when the test ends, with helpers to wait for what happens on the
// event loops. Use it with any client (the client package, gobwas/ws,
// gorilla) to test a Handler end to end.
//
//	func TestChat(t *testing.T) {
//		s := servertest.Start(t, &chat{}, server.Config{})
//		c, _, err := client.Dial(ctx, servertest.URL(s, "/chat"), nil)
//		...
//		servertest.Eventually(t, 5*time.Second, func() bool { return s.Room("lobby").Len() == 1 })
//	}
package servertest

import (
	"context"
	"testing"
	"time"

	"github.com/megaws/megaws/server"
)

// StopTimeout bounds the graceful stop at the end of a test (peers that do
// not answer the close handshake cost at most this).
const StopTimeout = 3 * time.Second

// Start runs a server with h and cfg on 127.0.0.1 at a free port and stops
// it when tb ends (Stop, then waits for ListenAndServe to return). It fails
// tb if the server does not start within 10 s. A zero cfg.Loops is 2, so
// tests exercise more than one loop.
func Start(tb testing.TB, h server.Handler, cfg server.Config) *server.Server {
	tb.Helper()
	if cfg.Loops == 0 {
		cfg.Loops = 2
	}
	s := server.New(h, cfg)
	Serve(tb, s)
	return s
}

// Serve runs s, made with server.New, like Start: for tests that need the
// *Server before it runs (a handler that keeps it).
func Serve(tb testing.TB, s *server.Server) {
	tb.Helper()
	errc := make(chan error, 1)
	go func() { errc <- s.ListenAndServe("127.0.0.1:0") }()
	select {
	case <-s.Ready():
	case err := <-errc:
		tb.Fatalf("servertest: ListenAndServe: %v", err)
	case <-time.After(10 * time.Second):
		tb.Fatal("servertest: the server did not start within 10 s")
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), StopTimeout)
		defer cancel()
		_ = s.Stop(ctx)
		select {
		case err := <-errc:
			if err != nil {
				tb.Errorf("servertest: ListenAndServe: %v", err)
			}
		case <-time.After(StopTimeout + 5*time.Second):
			tb.Error("servertest: the server did not stop")
		}
	})
}

// Addr returns the address s listens on ("127.0.0.1:PORT").
func Addr(s *server.Server) string { return s.Addr().String() }

// URL returns the ws:// URL of path on s.
func URL(s *server.Server, path string) string { return "ws://" + Addr(s) + path }

// WaitFor polls cond every 5 ms until it holds or d has passed, and reports
// whether it held: for effects that happen on the loops after a call
// returns (a Join, a close).
func WaitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Eventually is WaitFor that fails tb when cond never holds.
func Eventually(tb testing.TB, d time.Duration, cond func() bool) {
	tb.Helper()
	if !WaitFor(d, cond) {
		tb.Fatalf("servertest: condition not met within %v", d)
	}
}
