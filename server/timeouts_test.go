package server_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/server"
)

// TestHandshakeTimeoutNotEarly: a silent client is closed at or after the
// handshake timeout, never before — also while the loop is busy with other
// connections (the loop's clock used to lag behind real time under load, and
// deadlines taken from it fired early).
func TestHandshakeTimeoutNotEarly(t *testing.T) {
	const timeout = 400 * time.Millisecond
	_, addr := startServer(t, echo{}, server.Config{Loops: 1, HandshakeTimeout: timeout})

	// Keep the loop busy: a client echoing 256 KiB messages as fast as it can.
	busy := dialRaw(t, addr)
	busy.handshake("/")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		payload := bytes.Repeat([]byte("b"), 256<<10)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := busy.Conn.Write(clientFrame(ws.OpBinary, true, 0, payload)); err != nil {
				return
			}
			if _, err := busy.readFrame(); err != nil {
				return
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	const n = 20
	var mu sync.Mutex
	var early []time.Duration
	var cwg sync.WaitGroup
	for i := 0; i < n; i++ {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			start := time.Now() // the server cannot accept before the dial starts
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			_, _ = io.Copy(io.Discard, c)
			if el := time.Since(start); el < timeout {
				mu.Lock()
				early = append(early, el)
				mu.Unlock()
			}
		}()
		time.Sleep(7 * time.Millisecond) // spread the deadlines over the ticks
	}
	cwg.Wait()
	if len(early) > 0 {
		t.Fatalf("%d of %d silent connections closed before the %v handshake timeout: %v", len(early), n, timeout, early)
	}
}

// TestKeepaliveCounters: keepalive pings and the pongs that answer them are
// counted, and so is a close handshake the server started that the peer
// answered (Stop), for reports such as the million-connection run's.
func TestKeepaliveCounters(t *testing.T) {
	s, addr := startServer(t, echo{}, server.Config{Loops: 1, PingInterval: 50 * time.Millisecond, IdleTimeout: time.Minute})
	c := dialRaw(t, addr)
	c.handshake("/")
	for range 3 {
		f := c.mustFrame()
		if f.h.OpCode != ws.OpPing {
			t.Fatalf("got %v, want a keepalive ping", f.h.OpCode)
		}
		c.writeFrame(ws.OpPong, true, f.payload)
	}
	if !waitFor(5*time.Second, func() bool { st := s.Stats(); return st.PingsSent >= 3 && st.PongsIn >= 3 }) {
		t.Fatalf("Stats %+v: want 3 pings sent and 3 pongs in", s.Stats())
	}
	answered := make(chan error, 1)
	go func() { answered <- c.answerClose(ws.StatusGoingAway) }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-answered; err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.ClosesAnswered != 1 || st.CloseTimeouts != 0 {
		t.Fatalf("ClosesAnswered %d, CloseTimeouts %d", st.ClosesAnswered, st.CloseTimeouts)
	}
}
