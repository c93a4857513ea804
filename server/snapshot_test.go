package server_test

import (
	"encoding/binary"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/server"
)

// readSnapshots reads frames until the "end" text message and returns the
// snapshot numbers seen, in order.
func readSnapshots(t *testing.T, c *rawConn) []uint32 {
	t.Helper()
	var seen []uint32
	for {
		f := c.mustFrame()
		if f.h.OpCode == ws.OpText {
			if string(f.payload) != "end" {
				t.Fatalf("unexpected %q", f.payload)
			}
			return seen
		}
		seen = append(seen, binary.BigEndian.Uint32(f.payload))
	}
}

func checkSnapshots(t *testing.T, seen []uint32, n int) {
	t.Helper()
	if len(seen) == 0 || seen[len(seen)-1] != uint32(n-1) {
		t.Fatalf("last snapshot %v, want %d", seen[max(0, len(seen)-3):], n-1)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] <= seen[i-1] {
			t.Fatalf("snapshots out of order: %d after %d", seen[i], seen[i-1])
		}
	}
	if len(seen) >= n {
		t.Fatalf("all %d snapshots delivered: none was replaced", n)
	}
	t.Logf("%d of %d snapshots reached the lagging reader, the newest last", len(seen), n)
}

// TestSnapshotReplaces: a peer that lags gets the newest snapshot, not every
// one in turn; a message written after them still comes after the last one.
func TestSnapshotReplaces(t *testing.T) {
	const n = 2000 // x 8 KiB: 16 MB, more than the sockets hold
	h := &funcHandler{onMessage: func(c *server.Conn, op ws.OpCode, p []byte) {
		snap := make([]byte, 8<<10)
		for i := range n {
			binary.BigEndian.PutUint32(snap, uint32(i))
			if err := c.WriteSnapshot(ws.OpBinary, snap); err != nil {
				panic(err)
			}
		}
		_ = c.WriteMessage(ws.OpText, []byte("end"))
	}}
	s, addr := startServer(t, h, server.Config{Loops: 1, MaxWriteQueue: 64 << 20})
	c := dialRaw(t, addr)
	c.handshake("/")
	c.writeFrame(ws.OpText, true, []byte("go"))
	time.Sleep(200 * time.Millisecond) // read late
	checkSnapshots(t, readSnapshots(t, c), n)
	if s.Stats().SnapshotsReplaced == 0 {
		t.Fatal("SnapshotsReplaced 0")
	}
}

// TestSendSnapshotFromGoroutine: the same through SendSnapshot.
func TestSendSnapshotFromGoroutine(t *testing.T) {
	const n = 2000
	h := &funcHandler{onMessage: func(c *server.Conn, op ws.OpCode, p []byte) {
		go func() {
			snap := make([]byte, 8<<10)
			for i := range n {
				binary.BigEndian.PutUint32(snap, uint32(i))
				_ = c.SendSnapshot(ws.OpBinary, snap)
			}
			_ = c.Send(ws.OpText, []byte("end"))
		}()
	}}
	_, addr := startServer(t, h, server.Config{Loops: 1, MaxWriteQueue: 64 << 20})
	c := dialRaw(t, addr)
	c.handshake("/")
	c.writeFrame(ws.OpText, true, []byte("go"))
	time.Sleep(500 * time.Millisecond)
	checkSnapshots(t, readSnapshots(t, c), n)
	c.closeNormal()
}

// TestPublishSnapshot: a room member that lags gets the newest of the room's
// snapshots waiting for it.
func TestPublishSnapshot(t *testing.T) {
	const n = 2000
	s, c, _ := roomMember(t, server.Config{Loops: 1, MaxWriteQueue: 64 << 20})
	snap := make([]byte, 8<<10)
	for i := range n {
		binary.BigEndian.PutUint32(snap, uint32(i))
		_ = s.Room("r").PublishSnapshot(ws.OpBinary, snap)
	}
	_ = s.Room("r").Publish(ws.OpText, []byte("end"))
	time.Sleep(300 * time.Millisecond)
	checkSnapshots(t, readSnapshots(t, c), n)
	c.closeNormal()
}

// TestPublishSnapshotWithinWriteQueue: room snapshots a lagging member will
// never get do not count against its write queue. 2,000 snapshots of 8 KiB
// (16 MB) with a room message after every tenth are published to a member
// that does not read, under the default 4 MiB MaxWriteQueue: the member is
// not dropped, gets the room messages in order and the newest snapshot last,
// and the replaced snapshots are counted.
func TestPublishSnapshotWithinWriteQueue(t *testing.T) {
	const n = 2000
	s, c, _ := roomMember(t, server.Config{Loops: 1})
	snap := make([]byte, 8<<10)
	for i := range n {
		binary.BigEndian.PutUint32(snap, uint32(i))
		_ = s.Room("r").PublishSnapshot(ws.OpBinary, snap)
		if i%10 == 9 {
			_ = s.Room("r").Publish(ws.OpText, []byte{'c', byte(i / 10)})
		}
	}
	_ = s.Room("r").Publish(ws.OpText, []byte("end"))
	time.Sleep(300 * time.Millisecond)
	var seen []uint32
	chats := 0
	for {
		f := c.mustFrame()
		if f.h.OpCode == ws.OpClose {
			t.Fatalf("closed with %v after %d snapshots and %d room messages (the skipped snapshots counted against MaxWriteQueue)", f.payload, len(seen), chats)
		}
		if f.h.OpCode == ws.OpText {
			if string(f.payload) == "end" {
				break
			}
			if f.payload[1] != byte(chats) {
				t.Fatalf("room message %d out of order: got %d", chats, f.payload[1])
			}
			chats++
			continue
		}
		seen = append(seen, binary.BigEndian.Uint32(f.payload))
	}
	if chats != n/10 {
		t.Fatalf("%d room messages, want %d", chats, n/10)
	}
	checkSnapshots(t, seen, n)
	st := s.Stats()
	if st.QueueDrops != 0 || st.SnapshotsReplaced == 0 {
		t.Fatalf("QueueDrops %d, SnapshotsReplaced %d; want 0 and > 0", st.QueueDrops, st.SnapshotsReplaced)
	}
	t.Logf("SnapshotsReplaced %d", st.SnapshotsReplaced)
	c.closeNormal()
}

// TestSendBufferFreshSnapshots: with Config.SendBuffer small, a member that
// stops reading holds few snapshots in the kernel, so the rest wait in
// megaws's queue where newer ones replace them: of 200 snapshots of 8 KiB
// (1.6 MB, less than an autotuned loopback send buffer takes), the member
// reads a fraction, the newest last.
func TestSendBufferFreshSnapshots(t *testing.T) {
	const n = 200
	run := func(sendBuffer int) (seen []uint32, replaced uint64) {
		s, c, member := roomMember(t, server.Config{Loops: 1, SendBuffer: sendBuffer})
		snap := make([]byte, 8<<10)
		for i := range n {
			binary.BigEndian.PutUint32(snap, uint32(i))
			_ = s.Room("r").PublishSnapshot(ws.OpBinary, snap)
		}
		_ = s.Room("r").Publish(ws.OpText, []byte("end"))
		// A task posted after the publishes runs after them: the member
		// then has all it will get.
		handled := make(chan struct{})
		if err := member.Do(func(*server.Conn) { close(handled) }); err != nil {
			t.Fatal(err)
		}
		<-handled
		seen = readSnapshots(t, c)
		c.closeNormal()
		return seen, s.Stats().SnapshotsReplaced
	}
	seen, replaced := run(16 << 10)
	checkSnapshots(t, seen, n)
	if replaced == 0 || len(seen) > n/2 {
		t.Fatalf("SendBuffer 16 KiB: %d of %d snapshots read, %d replaced; want most replaced", len(seen), n, replaced)
	}
	dseen, dreplaced := run(0)
	t.Logf("SendBuffer 16 KiB: %d of %d snapshots read (%d replaced); system default: %d read (%d replaced)", len(seen), n, replaced, len(dseen), dreplaced)
}

// roomMember starts a server whose connections join room "r" and dials one
// member: the server, the client's end and the server's end.
func roomMember(t *testing.T, cfg server.Config) (*server.Server, *rawConn, *server.Conn) {
	t.Helper()
	var sp atomic.Pointer[server.Server]
	var member atomic.Pointer[server.Conn]
	h := &funcHandler{
		onOpen: func(c *server.Conn) { member.Store(c); _ = sp.Load().Room("r").Join(c) },
	}
	s, addr := startServer(t, h, cfg)
	sp.Store(s)
	c := dialRaw(t, addr)
	c.handshake("/")
	if !waitFor(5*time.Second, func() bool { return s.Room("r").Len() == 1 }) {
		t.Fatal("no member")
	}
	return s, c, member.Load()
}
