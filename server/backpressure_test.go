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

// TestBackpressure floods an echo server with requests without reading the
// answers. The server must stop reading from that peer (TCP pushes back, the
// client's writes stall) instead of buffering without bound or dropping the
// connection, and every echo must arrive once the client reads.
func TestBackpressure(t *testing.T) {
	s, addr := startServer(t, echo{}, server.Config{Loops: 1, IdleTimeout: -1, PingInterval: -1})
	c := dialRaw(t, addr)
	c.handshake("/")

	payload := bytes.Repeat([]byte("x"), 1024)
	frame := codec.AppendFrameMasked(nil, ws.OpBinary, true, payload, [4]byte{1, 2, 3, 4})
	batch := bytes.Repeat(frame, 64)
	sent := 0
	const limit = 256 << 20 // far beyond what loopback buffers hold
	for sent < limit {
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		n, err := c.Conn.Write(batch)
		sent += n
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			t.Fatalf("write: %v", err)
		}
	}
	if sent >= limit {
		t.Fatalf("the client wrote %d MiB without reading and was never pushed back", sent>>20)
	}
	st := s.Stats()
	if st.ReadPauses == 0 {
		t.Fatalf("server never paused reading: %+v", st)
	}
	t.Logf("client wrote %.1f MiB before TCP pushed back; server read pauses %d", float64(sent)/(1<<20), st.ReadPauses)

	// Now read everything back: every complete frame sent is echoed, in order.
	whole := sent / len(frame)
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	if rest := sent % len(frame); rest != 0 {
		// Complete the partial frame; the write may wait until the reads
		// below drain the server's queue and reading resumes.
		go func() { _, _ = c.Conn.Write(frame[rest:]) }()
		whole++
	}
	for i := 0; i < whole; i++ {
		f, err := c.readFrame()
		if err != nil {
			t.Fatalf("echo %d of %d: %v", i, whole, err)
		}
		if !bytes.Equal(f.payload, payload) {
			t.Fatalf("echo %d: wrong payload", i)
		}
	}
	// The connection is still healthy.
	c.writeFrame(ws.OpText, true, []byte("done"))
	if f := c.mustFrame(); string(f.payload) != "done" {
		t.Fatalf("after backpressure: %q", f.payload)
	}
	if s.Conns() != 1 {
		t.Fatalf("conns %d", s.Conns())
	}
}
