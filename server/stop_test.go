package server_test

// Hostile and unlucky peers over the life of a connection: slowloris
// handshakes, frame bombs, ping floods, slow readers, abrupt disconnects,
// connection churn and a graceful Stop. Each test keeps a healthy connection
// echoing through the attack, and checks that what the attack cost (fds,
// heap, goroutines) is given back.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/codec"
	"github.com/megaws/megaws/server"
)

// TestStop checks graceful shutdown: every client receives close 1001, new
// connections are refused, and Stop returns by its deadline whether or not
// the clients answer.
func TestStop(t *testing.T) {
	const n = 50
	t.Run("clients_answer", func(t *testing.T) {
		rec := newRecorder()
		s, addr := startServer(t, rec, server.Config{CloseTimeout: time.Minute})
		codes := make(chan ws.StatusCode, n)
		for range n {
			c := dialRaw(t, addr)
			c.handshake("/")
			go answerServerClose(c, codes)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		for range n {
			if code := <-codes; code != ws.StatusGoingAway {
				t.Fatalf("client got close %d, want 1001", code)
			}
		}
		rec.mu.Lock()
		for id, errs := range rec.closes {
			if len(errs) != 1 || server.CloseStatus(errs[0]) != ws.StatusGoingAway || !errors.Is(errs[0], server.ErrServerStopping) {
				t.Errorf("connection %d: OnClose %v, want once with 1001 ErrServerStopping", id, errs)
			}
		}
		rec.mu.Unlock()
		if o, cl := rec.counts(); o != n || cl != n {
			t.Fatalf("%d OnOpen, %d OnClose, want %d", o, cl, n)
		}
		if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
			c.Close()
			t.Fatal("a new connection was accepted after Stop")
		}
	})

	t.Run("clients_never_answer", func(t *testing.T) {
		rec := newRecorder()
		s, addr := startServer(t, rec, server.Config{CloseTimeout: time.Minute})
		var clients []*rawConn
		for range n {
			c := dialRaw(t, addr)
			c.handshake("/")
			clients = append(clients, c)
		}
		const deadline = 2 * time.Second
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		start := time.Now()
		stopped := make(chan error, 1)
		go func() { stopped <- s.Stop(ctx) }()

		// Reading (without answering) the close frame: 1001.
		first := clients[0]
		f := first.mustFrame()
		if f.h.OpCode != ws.OpClose {
			t.Fatalf("got %v, want close", f.h.OpCode)
		}
		if code, _, _ := codec.ParseClose(f.payload); code != ws.StatusGoingAway {
			t.Fatalf("close %d, want 1001", code)
		}
		// The server is stopping: a new client is not upgraded.
		if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
			_ = c.SetDeadline(time.Now().Add(ioTimeout))
			_, _ = c.Write([]byte(upgradeRequest("/", "")))
			got, _ := io.ReadAll(c)
			c.Close()
			if bytes.HasPrefix(got, []byte("HTTP/1.1 101")) {
				t.Fatal("a client was upgraded while the server was stopping")
			}
			t.Logf("new client while stopping: %q", firstLine(got))
		} else {
			t.Logf("new client while stopping: %v", err)
		}

		var err error
		select {
		case err = <-stopped:
		case <-time.After(deadline + time.Minute):
			t.Fatal("Stop did not return")
		}
		elapsed := time.Since(start)
		t.Logf("Stop returned %v after %v (deadline %v)", err, elapsed.Round(time.Millisecond), deadline)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Stop: %v, want context.DeadlineExceeded", err)
		}
		// Stop forces the remaining connections closed when ctx ends, which
		// takes milliseconds; the slack is for a loaded machine.
		if elapsed > deadline+time.Second {
			t.Fatalf("Stop took %v with a %v deadline", elapsed, deadline)
		}
		for i, c := range clients {
			if i > 0 {
				c.expectCloseNext(ws.StatusGoingAway)
			} else {
				c.expectEOF()
			}
		}
		if o, cl := rec.counts(); o != n || cl != n {
			t.Fatalf("%d OnOpen, %d OnClose, want %d", o, cl, n)
		}
		rec.mu.Lock()
		for id, errs := range rec.closes {
			if len(errs) != 1 || server.CloseStatus(errs[0]) != ws.StatusGoingAway || !errors.Is(errs[0], server.ErrServerStopping) {
				t.Errorf("connection %d: OnClose %v, want once with 1001 ErrServerStopping", id, errs)
			}
		}
		rec.mu.Unlock()
		if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
			c.Close()
			t.Fatal("a new connection was accepted after Stop")
		}
	})
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\r\n")
	return s
}

// TestStopManyConns: a loop with more connections than one chunk of the
// graceful stop (512) sends every one of them 1001 and counts every
// answered close handshake.
func TestStopManyConns(t *testing.T) {
	const n = 1500
	s, addr := startServer(t, newRecorder(), server.Config{Loops: 1, CloseTimeout: time.Minute})
	codes := make(chan ws.StatusCode, n)
	for range n {
		c := dialRaw(t, addr)
		c.handshake("/")
		go answerServerClose(c, codes)
	}
	if !waitFor(30*time.Second, func() bool { return s.Conns() == n }) {
		t.Fatalf("%d connections open, want %d", s.Conns(), n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	before := s.Stats().ClosesAnswered
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	for range n {
		if code := <-codes; code != ws.StatusGoingAway {
			t.Fatalf("client got close %d, want 1001", code)
		}
	}
	if got := s.Stats().ClosesAnswered - before; got != n {
		t.Fatalf("ClosesAnswered %d, want %d", got, n)
	}
}

// answerServerClose reads c until the server's close frame, answers it like
// a well-behaved client, and sends its code to codes (0 if the connection
// ended without one).
func answerServerClose(c *rawConn, codes chan<- ws.StatusCode) {
	for {
		f, err := c.readFrame()
		if err != nil {
			codes <- 0
			return
		}
		if f.h.OpCode == ws.OpClose {
			code, _, _ := codec.ParseClose(f.payload)
			_, _ = c.Conn.Write(clientFrame(ws.OpClose, true, 0, f.payload))
			_, _ = io.Copy(io.Discard, c.br)
			codes <- code
			return
		}
	}
}
