//go:build !race

package server_test

import (
	"bytes"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/codec"
	"github.com/megaws/megaws/server"
)

// echoAllocSizes are the message sizes of the end-to-end allocation test.
var echoAllocSizes = []struct {
	name string
	size int
}{
	{name: "64B", size: 64},
	{name: "1KiB", size: 1 << 10},
	{name: "16KiB", size: 16 << 10},
}

// echoMessages is the number of measured round trips per size.
const echoMessages = 20_000

// allocClient is a raw client that allocates nothing per message: the masked
// frame is encoded once and replies are read into a fixed buffer.
type allocClient struct {
	conn  net.Conn
	r     io.Reader
	frame []byte
	reply []byte
	want  []byte
}

func newAllocClient(conn net.Conn, r io.Reader, size int) *allocClient {
	payload := bytes.Repeat([]byte("megaws!"), size/7+1)[:size]
	want := codec.AppendFrame(nil, ws.OpText, true, payload)
	return &allocClient{
		conn:  conn,
		r:     r,
		frame: codec.AppendFrameMasked(nil, ws.OpText, true, payload, [4]byte{0x11, 0x22, 0x33, 0x44}),
		reply: make([]byte, len(want)),
		want:  want,
	}
}

func (c *allocClient) roundTrip(tb testing.TB) {
	if _, err := c.conn.Write(c.frame); err != nil {
		tb.Fatalf("write: %v", err)
	}
	if _, err := io.ReadFull(c.r, c.reply); err != nil {
		tb.Fatalf("read: %v", err)
	}
}

// mallocsPerRoundTrip warms up, then counts the process's heap allocations
// over echoMessages round trips.
func (c *allocClient) mallocsPerRoundTrip(tb testing.TB) float64 {
	for range 2000 {
		c.roundTrip(tb)
	}
	if !bytes.Equal(c.reply, c.want) {
		tb.Fatalf("echo differs: % x...", c.reply[:min(16, len(c.reply))])
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range echoMessages {
		c.roundTrip(tb)
	}
	runtime.ReadMemStats(&after)
	if !bytes.Equal(c.reply, c.want) {
		tb.Fatal("echo differs")
	}
	return float64(after.Mallocs-before.Mallocs) / echoMessages
}

// TestEchoSteadyStateAllocs measures the heap allocations of a real server
// echoing text messages to a raw client in the same process, after warm-up.
// The client allocates nothing per message (the baseline subtest checks it
// against a plain TCP echo), so the count is the server's: the event loop,
// gnet, the codec and the handler. A coarse timer resolution keeps the timer
// driver's per-tick work (a few allocations per tick, not per message) out of
// the figure.
func TestEchoSteadyStateAllocs(t *testing.T) {
	t.Run("baseline-tcp-echo", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := conn.Read(buf)
				if err != nil {
					return
				}
				// The client expects the server frame: unmasked, 4 bytes shorter.
				if _, err := conn.Write(buf[:n]); err != nil {
					return
				}
			}
		}()
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(time.Minute))
		c := newAllocClient(conn, conn, 1<<10)
		c.reply = make([]byte, len(c.frame))
		c.want = c.frame
		per := c.mallocsPerRoundTrip(t)
		t.Logf("client + plain TCP echo: %.4f allocations per 1 KiB round trip", per)
		if per >= 0.01 {
			t.Errorf("the client itself allocates %.4f times per round trip", per)
		}
	})
	for _, sz := range echoAllocSizes {
		t.Run(sz.name, func(t *testing.T) {
			_, addr := startServer(t, echo{}, server.Config{Loops: 1, TimerResolution: time.Second})
			rc := dialRaw(t, addr)
			rc.handshake("/")
			_ = rc.SetDeadline(time.Now().Add(time.Minute))
			c := newAllocClient(rc.Conn, rc.br, sz.size)
			per := c.mallocsPerRoundTrip(t)
			t.Logf("server echo of %d-byte text messages: %.4f allocations per message (%d messages)", sz.size, per, echoMessages)
			if per >= 0.01 {
				t.Errorf("the server allocates %.4f times per echoed %d-byte message, want < 0.01", per, sz.size)
			}
		})
	}
}
