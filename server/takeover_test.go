package server_test

import (
	"bytes"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/codec"
	"github.com/megaws/megaws/server"
)

// takeoverClient is a client side of permessage-deflate with context
// takeover in both directions, on codec's window compressor.
type takeoverClient struct {
	*rawConn
	d       *codec.WindowDeflater
	f       codec.WindowInflater
	out, in codec.History
	takeIn  bool
}

func dialTakeover(t *testing.T, addr, offer string) (*takeoverClient, string) {
	t.Helper()
	c := dialRaw(t, addr)
	c.write([]byte(upgradeRequest("/", "Sec-WebSocket-Extensions: "+offer+"\r\n")))
	resp := c.response()
	if resp.StatusCode != 101 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	ext := resp.Header.Get("Sec-WebSocket-Extensions")
	tc := &takeoverClient{rawConn: c, d: codec.NewWindowDeflater(6)}
	tc.out.SetWindowBits(15)
	tc.in.SetWindowBits(15)
	tc.takeIn = !strings.Contains(ext, "server_no_context_takeover")
	return tc, ext
}

func (tc *takeoverClient) send(msg []byte) {
	tc.write(compressedFrame(ws.OpText, true, true, tc.d.AppendCompress(nil, &tc.out, msg, true)))
}

func (tc *takeoverClient) recv(t *testing.T) []byte {
	t.Helper()
	f := tc.mustFrame()
	if f.h.Rsv != 0x4 {
		return f.payload
	}
	p, err := tc.f.Inflate(&tc.in, f.payload, 1<<24, tc.takeIn)
	if err != nil {
		t.Fatalf("inflate: %v", err)
	}
	return append([]byte(nil), p...)
}

// gameState is a small JSON game tick: repetitive from one tick to the next.
func gameState(tick int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"t":"state","tick":%d,"players":[`, tick)
	for i := range 8 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"x":%d,"y":%d,"hp":100,"name":"player-%d"}`, i, 100+i*7+tick%5, 200+i*3, i)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// TestDeflateTakeover: with CompressionWindowBits the server agrees to
// context takeover both ways, decompresses a client that keeps its window,
// and compresses its echoes, broadcasts and Sends against each connection's
// own window, in wire order — while a client without takeover and a client
// without compression on the same broadcast get what they can read.
func TestDeflateTakeover(t *testing.T) {
	var sp atomic.Pointer[server.Server]
	h := &funcHandler{onMessage: func(c *server.Conn, op ws.OpCode, p []byte) {
		switch {
		case bytes.HasPrefix(p, []byte("bcast ")):
			_ = sp.Load().Broadcast(op, p[6:])
		case bytes.HasPrefix(p, []byte("send ")):
			q := server.Clone(p[5:])
			go func() { _ = c.Send(op, q) }()
		default:
			_ = c.WriteMessage(op, p)
		}
	}}
	s, addr := startServer(t, h, server.Config{Loops: 2, Compression: true, CompressionWindowBits: 10, CompressionThreshold: 16})
	sp.Store(s)
	tk, ext := dialTakeover(t, addr, "permessage-deflate; client_max_window_bits")
	if ext != "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10" {
		t.Fatalf("extensions %q", ext)
	}
	tk.out.SetWindowBits(10) // as the server asked
	noTake, ext2 := dialTakeover(t, addr, "permessage-deflate; server_no_context_takeover; client_no_context_takeover")
	if !strings.Contains(ext2, "server_no_context_takeover") || !strings.Contains(ext2, "client_no_context_takeover") {
		t.Fatalf("no-takeover extensions %q", ext2)
	}
	plain := dialRaw(t, addr)
	plain.handshake("/")

	wire, raw := 0, 0
	for tick := range 50 {
		msg := gameState(tick)
		tk.send(msg)
		f := tk.mustFrame()
		wire += len(f.payload)
		raw += len(msg)
		p, err := tk.f.Inflate(&tk.in, f.payload, 1<<24, true)
		if err != nil || !bytes.Equal(p, msg) {
			t.Fatalf("tick %d: echo %q %v", tick, p, err)
		}
	}
	t.Logf("50 game ticks of ~%d B echoed with takeover: %.1f%% of the bytes on the wire", raw/50, 100*float64(wire)/float64(raw))
	if wire*100 > raw*35 {
		t.Fatalf("takeover left %d of %d bytes: the window is not shared", wire, raw)
	}
	for tick := 50; tick < 60; tick++ {
		msg := gameState(tick)
		tk.send(append([]byte("bcast "), msg...))
		for _, c := range []interface{ recv(*testing.T) []byte }{tk, noTake} {
			if got := c.recv(t); !bytes.Equal(got, msg) {
				t.Fatalf("broadcast tick %d: got %q", tick, got)
			}
		}
		if f := plain.mustFrame(); !bytes.Equal(f.payload, msg) || f.h.Rsv != 0 {
			t.Fatalf("plain client: rsv %x %q", f.h.Rsv, f.payload)
		}
		tk.send(append([]byte("send "), msg...))
		if got := tk.recv(t); !bytes.Equal(got, msg) {
			t.Fatalf("send tick %d: got %q", tick, got)
		}
	}
}
