package server_test

import (
	"bytes"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/codec"
	"github.com/megaws/megaws/server"
)

// TestBackpressure sends an echo server 24 MiB of requests before reading
// any answer. The server stops handling this peer's input while more than
// WriteHighWater waits for it, holds the rest of the input (under
// MaxReadQueue), and resumes as the peer reads: every echo arrives, in order.
func TestBackpressure(t *testing.T) {
	s, addr := startServer(t, echo{}, server.Config{Loops: 1, IdleTimeout: -1, PingInterval: -1, MaxReadQueue: 64 << 20})
	c := dialRaw(t, addr)
	c.handshake("/")
	// A small receive window, so the echoes back up on the server at once.
	_ = c.Conn.(*net.TCPConn).SetReadBuffer(32 << 10)
	payload := bytes.Repeat([]byte("x"), 1024)
	frame := codec.AppendFrameMasked(nil, ws.OpBinary, true, payload, [4]byte{1, 2, 3, 4})
	const n = 24 << 10 // 24 MiB: more than the sockets' buffers hold
	wrote := make(chan error, 1)
	go func() { _, err := c.Conn.Write(bytes.Repeat(frame, n)); wrote <- err }()
	// The whole burst is accepted (held by the server) before the client
	// reads a single echo.
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(2 * ioTimeout))
	for i := 0; i < n; i++ {
		f, err := c.readFrame()
		if err != nil {
			t.Fatalf("echo %d of %d: %v", i, n, err)
		}
		if !bytes.Equal(f.payload, payload) {
			t.Fatalf("echo %d: wrong payload", i)
		}
	}
	checkEcho(t, c, "done")
	st := s.Stats()
	if st.ReadPauses == 0 || st.ReadQueueDrops != 0 || st.QueueDrops != 0 {
		t.Fatalf("Stats %+v: want read pauses, no drops", st)
	}
	t.Logf("24 MiB echoed before the client read: %d read pauses", st.ReadPauses)
}

// TestBackpressureNeverReads: a peer that sends without ever reading is
// closed with 1008 (ErrReadQueueFull) once its unhandled input passes
// MaxReadQueue; the server's memory stays bounded meanwhile.
func TestBackpressureNeverReads(t *testing.T) {
	rec := newRecorder()
	s, addr := startServer(t, rec, server.Config{Loops: 1, MaxReadQueue: 2 << 20})
	c := dialRaw(t, addr)
	c.handshake("/")
	baseHeap := liveHeap()
	frame := codec.AppendFrameMasked(nil, ws.OpBinary, true, bytes.Repeat([]byte("x"), 1024), [4]byte{1, 2, 3, 4})
	batch := bytes.Repeat(frame, 64)
	sent := 0
	var werr error
	for sent < 1<<30 {
		_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		n, err := c.Conn.Write(batch)
		sent += n
		if err != nil {
			werr = err
			break
		}
	}
	if werr == nil || errors.Is(werr, os.ErrDeadlineExceeded) {
		t.Fatalf("after %d MiB the server neither read nor closed: %v", sent>>20, werr)
	}
	_, errs := rec.waitClosed(t)
	if len(errs) != 1 || server.CloseStatus(errs[0]) != 1008 || !errors.Is(errs[0], server.ErrReadQueueFull) {
		t.Fatalf("OnClose %v, want 1008 ErrReadQueueFull", errs)
	}
	if h := liveHeap(); h > baseHeap+heapSlack {
		t.Fatalf("live heap grew by %d MiB", (h-baseHeap)>>20)
	}
	if st := s.Stats(); st.ReadQueueDrops != 1 {
		t.Fatalf("ReadQueueDrops %d", st.ReadQueueDrops)
	}
	t.Logf("closed after the client wrote %.1f MiB without reading", float64(sent)/(1<<20))
}
