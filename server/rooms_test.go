package server_test

import (
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/server"
)

// observer records room joins and leaves and answers "members" with the
// number of members it sees through Members, "rooms" with Conn.Rooms.
type observer struct {
	server.BaseHandler
	room   atomic.Pointer[server.Room]
	mu     sync.Mutex
	events []string
}

func (o *observer) OnOpen(c *server.Conn) { _ = o.room.Load().Join(c) }

func (o *observer) OnMessage(c *server.Conn, op ws.OpCode, p []byte) {
	switch string(p) {
	case "members":
		_ = c.WriteMessage(ws.OpText, []byte{byte('0' + len(o.room.Load().Members()))})
	case "rooms":
		rs := c.Rooms()
		names := ""
		for _, r := range rs {
			names += r.Name()
		}
		_ = c.WriteMessage(ws.OpText, []byte(names))
	case "leave":
		_ = o.room.Load().Leave(c)
	}
}

func (o *observer) OnJoin(r *server.Room, c *server.Conn) {
	o.mu.Lock()
	o.events = append(o.events, "join "+r.Name()+" "+c.Path())
	o.mu.Unlock()
}

func (o *observer) OnLeave(r *server.Room, c *server.Conn) {
	o.mu.Lock()
	o.events = append(o.events, "leave "+r.Name()+" "+c.Path())
	o.mu.Unlock()
}

func (o *observer) seen() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.events...)
}

// TestRoomMembership: Members from a callback and from another goroutine,
// Each on the members' loops, Conn.Rooms, and the RoomObserver hooks for
// joins, leaves and the leaves of closing connections.
func TestRoomMembership(t *testing.T) {
	o := &observer{}
	s, addr := startServer(t, o, server.Config{Loops: 2})
	room := s.Room("lobby")
	o.room.Store(room)
	a, b := dialRaw(t, addr), dialRaw(t, addr)
	a.handshake("/a")
	b.handshake("/b")
	if !waitFor(5*time.Second, func() bool { return len(room.Members()) == 2 }) {
		t.Fatalf("Members %d, want 2", len(room.Members()))
	}
	a.writeFrame(ws.OpText, true, []byte("members"))
	if f := a.mustFrame(); string(f.payload) != "2" {
		t.Fatalf("Members from a callback: %q", f.payload)
	}
	a.writeFrame(ws.OpText, true, []byte("rooms"))
	if f := a.mustFrame(); string(f.payload) != "lobby" {
		t.Fatalf("Rooms: %q", f.payload)
	}
	var visited sync.Map
	if err := room.Each(func(c *server.Conn) {
		visited.Store(c.Path(), true)
		_ = c.WriteMessage(ws.OpText, []byte("each "+c.Path()))
	}); err != nil {
		t.Fatal(err)
	}
	if f := a.mustFrame(); string(f.payload) != "each /a" {
		t.Fatalf("Each wrote %q", f.payload)
	}
	if f := b.mustFrame(); string(f.payload) != "each /b" {
		t.Fatalf("Each wrote %q", f.payload)
	}
	a.writeFrame(ws.OpText, true, []byte("leave"))
	if !waitFor(5*time.Second, func() bool { return room.Len() == 1 }) {
		t.Fatal("leave")
	}
	b.closeNormal()
	if !waitFor(5*time.Second, func() bool { return room.Len() == 0 && len(o.seen()) == 4 }) {
		t.Fatalf("events %v", o.seen())
	}
	ev := o.seen()
	sort.Strings(ev[:2])
	want := []string{"join lobby /a", "join lobby /b", "leave lobby /a", "leave lobby /b"}
	for i := range want {
		if ev[i] != want[i] {
			t.Fatalf("events %v, want %v", ev, want)
		}
	}
	if room.Members() != nil {
		t.Fatalf("an empty room has members %v", room.Members())
	}
}
