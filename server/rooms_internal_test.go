package server

import (
	"context"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/codec"
)

type openRecorder struct {
	BaseHandler
	opened chan *Conn
}

func (h *openRecorder) OnOpen(c *Conn) { h.opened <- c }

func startInternal(t *testing.T, h Handler, cfg Config) *Server {
	t.Helper()
	s := New(h, cfg)
	errc := make(chan error, 1)
	go func() { errc <- s.ListenAndServe("127.0.0.1:0") }()
	select {
	case <-s.Ready():
	case err := <-errc:
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = s.Stop(ctx)
		<-errc
	})
	return s
}

// dialUpgraded opens a WebSocket connection with a raw client and returns
// the server's Conn for it.
func dialUpgraded(t *testing.T, s *Server, h *openRecorder) (net.Conn, *Conn) {
	t.Helper()
	nc, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := nc.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-h.opened:
		return nc, c
	case <-time.After(10 * time.Second):
		t.Fatal("no OnOpen")
		return nil, nil
	}
}

func (s *Server) storedRooms() int {
	s.roomsMu.Lock()
	defer s.roomsMu.Unlock()
	return len(s.rooms)
}

// TestRoomsFreedWhenEmpty: 200,000 match rooms, each joined and left again,
// leave nothing behind — no map entry, no memory — and a handle of an
// emptied room works when the room fills again.
func TestRoomsFreedWhenEmpty(t *testing.T) {
	h := &openRecorder{opened: make(chan *Conn, 4)}
	s := startInternal(t, h, Config{Loops: 2})
	_, c := dialUpgraded(t, s, h)

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	const rooms = 200_000
	done := make(chan struct{})
	for i := 0; i < rooms; i++ {
		r := s.Room("match-" + itoa(i))
		if err := r.Join(c); err != nil {
			t.Fatal(err)
		}
		if err := r.Leave(c); err != nil {
			t.Fatal(err)
		}
		if i%10_000 == 0 {
			// Let the loop catch up so the queue stays short.
			_ = c.Do(func(*Conn) { done <- struct{}{} })
			<-done
		}
	}
	_ = c.Do(func(*Conn) { close(done) })
	<-done
	if n := s.storedRooms(); n != 0 {
		t.Fatalf("%d rooms stored after every member left", n)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 2<<20 {
		t.Fatalf("heap grew by %d KiB for %d emptied rooms", grew>>10, rooms)
	}
	t.Logf("%d rooms joined and left: %d stored, heap %+d KiB", rooms, s.storedRooms(), (int64(after.HeapAlloc)-int64(before.HeapAlloc))>>10)

	// The handle of an emptied room still works.
	r := s.Room("again")
	if err := r.Join(c); err != nil {
		t.Fatal(err)
	}
	waitLen(t, r, 1)
	if err := r.Leave(c); err != nil {
		t.Fatal(err)
	}
	waitLen(t, r, 0)
	if err := r.Join(c); err != nil {
		t.Fatal(err)
	}
	waitLen(t, r, 1)
	if s.Room("again") != r.state().room {
		t.Fatal("Server.Room does not return the live room's handle")
	}
}

func waitLen(t *testing.T, r *Room, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for r.Len() != n {
		if time.Now().After(deadline) {
			t.Fatalf("room %s: Len %d, want %d", r.Name(), r.Len(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestPublishOnlyToLoopsWithMembers: a room whose members are all on one
// loop is queued on that loop only: the per-loop reference counts that
// fanoutTo reads say so, and the member gets the message.
func TestPublishOnlyToLoopsWithMembers(t *testing.T) {
	h := &openRecorder{opened: make(chan *Conn, 4)}
	s := startInternal(t, h, Config{Loops: 2})
	nc, c := dialUpgraded(t, s, h)
	r := s.Room("one-loop")
	if err := r.Join(c); err != nil {
		t.Fatal(err)
	}
	waitLen(t, r, 1)
	st := r.state()
	for i := range st.loops {
		want := int32(0)
		if i == c.l.idx {
			want = 1
		}
		if got := st.loops[i].refs.Load(); got != want {
			t.Fatalf("loop %d refs %d, want %d", i, got, want)
		}
	}
	if err := r.Publish(ws.OpText, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 512)
	n, err := nc.Read(buf) // 101 response, then the frame
	for err == nil && !containsFrame(buf[:n], "hi") {
		var m int
		m, err = nc.Read(buf[n:])
		n += m
	}
	if err != nil {
		t.Fatalf("member did not get the message: %v", err)
	}
}

func containsFrame(b []byte, payload string) bool {
	f := codec.AppendFrame(nil, ws.OpText, true, []byte(payload))
	return len(b) >= len(f) && string(b[len(b)-len(f):]) == string(f)
}

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	for {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			break
		}
	}
	return string(b[n:])
}
