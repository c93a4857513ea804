package server_test

import (
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/server"
)

// TestStatsWhileLoopBlocked: Stats reads per-loop counters without waiting
// for the loop, so a loop stuck in a handler still reports what it has
// done (once, Stats asked the loop and, after 1 s, left it out: a saturated
// server reported zero handshakes and zero messages).
func TestStatsWhileLoopBlocked(t *testing.T) {
	release := make(chan struct{})
	h := &funcHandler{onMessage: func(c *server.Conn, op ws.OpCode, p []byte) {
		if string(p) == "block" {
			<-release
		}
		_ = c.WriteMessage(op, p)
	}}
	s, addr := startServer(t, h, server.Config{Loops: 1})
	defer close(release)
	c := dialRaw(t, addr)
	c.handshake("/")
	for range 2 {
		c.writeFrame(ws.OpText, true, []byte("hi"))
		c.mustFrame()
	}
	c.writeFrame(ws.OpText, true, []byte("block"))
	time.Sleep(100 * time.Millisecond) // the loop is now inside OnMessage
	start := time.Now()
	st := s.Stats()
	took := time.Since(start)
	if st.Handshakes != 1 || st.MessagesIn < 2 || st.Conns != 1 || st.Loops != 1 {
		t.Fatalf("Stats while the loop is blocked: Handshakes %d, MessagesIn %d, Conns %d, Loops %d; want 1, >= 2, 1, 1", st.Handshakes, st.MessagesIn, st.Conns, st.Loops)
	}
	t.Logf("Stats answered in %v while the loop was blocked", took)
}
