package server_test

import (
	"errors"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/server"
)

// TestRateLimitDrop: past its burst, a connection's messages are dropped
// (not handed to OnMessage) and counted; the bucket refills with time.
func TestRateLimitDrop(t *testing.T) {
	s, addr := startServer(t, echo{}, server.Config{Loops: 1, RateLimit: server.RateLimit{Messages: 10, MessageBurst: 5}})
	c := dialRaw(t, addr)
	c.handshake("/")
	for i := range 20 {
		c.writeFrame(ws.OpText, true, []byte{byte('a' + i)})
	}
	c.writeFrame(ws.OpPing, true, []byte("sync"))
	got := 0
	for {
		f := c.mustFrame()
		if f.h.OpCode == ws.OpPong {
			break
		}
		got++
	}
	// 5 of burst, plus what 10/s refilled while the 20 arrived (at most a
	// few on a slow machine).
	if got < 5 || got > 10 {
		t.Fatalf("%d of 20 messages echoed, want the burst of 5 (and a few refilled)", got)
	}
	if st := s.Stats(); st.RateLimited != uint64(20-got) {
		t.Fatalf("RateLimited %d, want %d", st.RateLimited, 20-got)
	}
	time.Sleep(600 * time.Millisecond) // refills 5 or more
	checkEcho(t, c, "again")
}

// TestRateLimitClose: with Close, going over the byte rate closes with 1008.
func TestRateLimitClose(t *testing.T) {
	rec := newRecorder()
	s, addr := startServer(t, rec, server.Config{Loops: 1, RateLimit: server.RateLimit{Bytes: 1000, ByteBurst: 2000, Close: true}})
	c := dialRaw(t, addr)
	c.handshake("/")
	checkEcho(t, c, "small")
	c.writeFrame(ws.OpBinary, true, make([]byte, 3000))
	c.expectClose(ws.StatusPolicyViolation)
	_, errs := rec.waitClosed(t)
	if len(errs) != 1 || !errors.Is(errs[0], server.ErrRateLimited) {
		t.Fatalf("OnClose %v, want ErrRateLimited", errs)
	}
	if s.Stats().RateLimited != 1 {
		t.Fatalf("RateLimited %d", s.Stats().RateLimited)
	}
}
