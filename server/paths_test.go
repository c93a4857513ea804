package server_test

import (
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/server"
)

// pathTeller sends every connection its own Path once it is open, from a
// goroutine of its own (Path is safe from any goroutine), and again on the
// loop for every message.
type pathTeller struct {
	server.BaseHandler
	wg sync.WaitGroup
}

func (h *pathTeller) OnOpen(c *server.Conn) {
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		_ = c.Send(ws.OpText, []byte(c.Path()))
	}()
}

func (h *pathTeller) OnMessage(c *server.Conn, _ ws.OpCode, _ []byte) {
	_ = c.WriteMessage(ws.OpText, []byte(c.Path()))
}

// TestPaths checks Conn.Path for paths that are interned (the first 255
// distinct ones, shared by many connections) and for those that are not (a
// path beyond the table's room, a long one), from the loop and from other
// goroutines.
func TestPaths(t *testing.T) {
	h := &pathTeller{}
	_, addr := startServer(t, h, server.Config{})
	defer h.wg.Wait()
	long := "/" + strings.Repeat("x", 300)
	var paths []string
	for i := range 300 { // more distinct paths than the table holds
		paths = append(paths, "/room/"+strconv.Itoa(i))
	}
	paths = append(paths, "/", "/", long, "/room/7", "/room/299", long)
	for _, p := range paths {
		c := dialRaw(t, addr)
		c.handshake(p)
		if f := c.mustFrame(); string(f.payload) != p {
			t.Fatalf("Path from a goroutine: got %q, want %q", truncate(f.payload), p)
		}
		c.writeFrame(ws.OpText, true, []byte("path?"))
		if f := c.mustFrame(); string(f.payload) != p {
			t.Fatalf("Path on the loop: got %q, want %q", truncate(f.payload), p)
		}
		_ = c.Close()
	}
}
