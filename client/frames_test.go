package client_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/megaws/megaws/client"
	"github.com/megaws/megaws/codec"
)

// TestServerFragments: fragmented messages from the server, with control
// frames between the fragments, are reassembled; the ping in between is
// answered with its payload.
func TestServerFragments(t *testing.T) {
	pong := make(chan string, 1)
	s := newScripted(t, func(p *peer) {
		p.send(ws.OpText, false, []byte("hel"))
		p.send(ws.OpPing, true, []byte("mid"))
		p.send(ws.OpContinuation, false, []byte{})
		p.send(ws.OpContinuation, false, []byte("lo wö"[:6])) // "lo w" + first byte of ö
		p.send(ws.OpContinuation, true, []byte("lo wö"[6:]+"rld"))
		p.send(ws.OpBinary, false, pattern(70000))
		p.send(ws.OpContinuation, true, pattern(70000))
		h, b, err := p.recv()
		if err != nil || h.OpCode != ws.OpPong {
			t.Errorf("expected a pong, got %v %v", h.OpCode, err)
		}
		pong <- string(b)
		p.recv() // the client's close
	})
	c := dial(t, s.URL, nil)
	if op, p := read(t, c); op != ws.OpText || string(p) != "hello wörld" {
		t.Fatalf("got %v %q", op, p)
	}
	want := append(pattern(70000), pattern(70000)...)
	if op, p := read(t, c); op != ws.OpBinary || !bytes.Equal(p, want) {
		t.Fatalf("got %v, %d bytes", op, len(p))
	}
	if got := <-pong; got != "mid" {
		t.Fatalf("pong payload %q", got)
	}
}

// TestPipelinedWithHandshake: frames that arrive in the same packet as the
// 101 response are not lost.
func TestPipelinedWithHandshake(t *testing.T) {
	s := newScripted(t, func(p *peer) { p.recv() })
	s.respond = func(_ *http.Request, key string) string {
		b := codec.AppendUpgradeResponse(nil, []byte(key), "", "")
		b = codec.AppendFrame(b, ws.OpText, true, []byte("welcome"))
		return string(b)
	}
	c := dial(t, s.URL, nil)
	if _, p := read(t, c); string(p) != "welcome" {
		t.Fatalf("got %q", p)
	}
}

// TestReadResumesAfterTimeout: a read cut short by ctx or a deadline,
// mid-header or mid-payload, leaves the connection usable.
func TestReadResumesAfterTimeout(t *testing.T) {
	step := make(chan struct{})
	s := newScripted(t, func(p *peer) {
		frame := codec.AppendFrame(nil, ws.OpBinary, true, pattern(100000))
		for _, part := range [][]byte{frame[:1], frame[1:3], frame[3:50000], frame[50000:]} {
			<-step
			_, _ = p.nc.Write(part)
		}
		p.recv()
	})
	c := dial(t, s.URL, nil)
	for i := range 4 {
		step <- struct{}{}
		if i < 3 {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			_, _, err := c.ReadMessage(ctx)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("step %d: %v, want a deadline", i, err)
			}
			if i == 1 {
				// The same through SetReadDeadline and through cancel.
				_ = c.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
				if _, _, err := c.ReadMessage(context.Background()); !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("deadline: %v", err)
				}
				_ = c.SetReadDeadline(time.Time{})
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(30*time.Millisecond, cancel)
				if _, _, err := c.ReadMessage(ctx); !errors.Is(err, context.Canceled) {
					t.Fatalf("cancel: %v", err)
				}
			}
			continue
		}
		if _, p := read(t, c); !bytes.Equal(p, pattern(100000)) {
			t.Fatalf("resumed read: %d bytes, wrong content", len(p))
		}
	}
}

// TestProtocolErrors: a server that breaks RFC 6455 gets the close code the
// RFC asks for, and ReadMessage returns it.
func TestProtocolErrors(t *testing.T) {
	masked := codec.AppendFrameMasked(nil, ws.OpText, true, []byte("hi"), [4]byte{1, 2, 3, 4})
	for _, tc := range []struct {
		name  string
		bytes []byte
		code  ws.StatusCode
		err   error
	}{
		{name: "masked frame", bytes: masked, code: 1002, err: codec.ErrMaskedFrame},
		{name: "reserved bits", bytes: []byte{0x80 | 0x40 | 0x1, 0}, code: 1002, err: codec.ErrReservedBits},
		{name: "reserved opcode", bytes: []byte{0x83, 0}, code: 1002, err: codec.ErrReservedOpCode},
		{name: "continuation first", bytes: codec.AppendFrame(nil, ws.OpContinuation, true, []byte("x")), code: 1002, err: codec.ErrUnexpectedContinue},
		{name: "new message mid-fragments", bytes: codec.AppendFrame(codec.AppendFrame(nil, ws.OpText, false, []byte("a")), ws.OpText, true, []byte("b")), code: 1002, err: codec.ErrExpectedContinue},
		{name: "long ping", bytes: codec.AppendFrame(nil, ws.OpPing, true, make([]byte, 126)), code: 1002, err: codec.ErrControlTooLong},
		{name: "fragmented ping", bytes: codec.AppendFrame(nil, ws.OpPing, false, nil), code: 1002, err: codec.ErrControlFragmented},
		{name: "invalid UTF-8", bytes: codec.AppendFrame(nil, ws.OpText, true, []byte{'a', 0xff}), code: 1007, err: codec.ErrInvalidUTF8},
		{name: "UTF-8 cut at the end", bytes: codec.AppendFrame(nil, ws.OpText, true, []byte("ö")[:1]), code: 1007, err: codec.ErrInvalidUTF8},
		{name: "invalid UTF-8 across fragments", bytes: codec.AppendFrame(codec.AppendFrame(nil, ws.OpText, false, []byte{0xe2, 0x82}), ws.OpContinuation, true, []byte{0x41}), code: 1007, err: codec.ErrInvalidUTF8},
		{name: "close code 1005 on the wire", bytes: codec.AppendFrame(nil, ws.OpClose, true, closePayload(1005, "")), code: 1002, err: codec.ErrCloseCode},
		{name: "close with 1 byte", bytes: codec.AppendFrame(nil, ws.OpClose, true, []byte{3}), code: 1002, err: codec.ErrCloseLength},
		{name: "64-bit length MSB", bytes: []byte{0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0}, code: 1002, err: codec.ErrLengthMSB},
		{name: "compressed without deflate", bytes: []byte{0x80 | 0x40 | 0x2, 0}, code: 1002, err: codec.ErrReservedBits},
	} {
		t.Run(tc.name, func(t *testing.T) {
			closed := make(chan []byte, 1)
			s := newScripted(t, func(p *peer) {
				_, _ = p.nc.Write(tc.bytes)
				h, b, err := p.recv()
				if err != nil || h.OpCode != ws.OpClose {
					t.Errorf("peer expected a close frame: %v %v", h.OpCode, err)
				}
				closed <- b
			})
			c := dial(t, s.URL, nil)
			_, _, err := c.ReadMessage(testCtx(t))
			var ce *client.CloseError
			if !errors.As(err, &ce) || ce.Code != tc.code || !errors.Is(err, tc.err) || ce.Remote {
				t.Fatalf("ReadMessage: %v, want close %d (%v)", err, tc.code, tc.err)
			}
			if b := <-closed; len(b) < 2 || ws.StatusCode(b[0])<<8|ws.StatusCode(b[1]) != tc.code {
				t.Fatalf("server received close payload %v, want code %d", b, tc.code)
			}
		})
	}
}

func TestServerDropsTCP(t *testing.T) {
	s := newScripted(t, func(p *peer) {
		_, _ = p.nc.Write(codec.AppendFrame(nil, ws.OpBinary, true, []byte("one")))
		_, _ = p.nc.Write(codec.AppendFrame(nil, ws.OpBinary, true, []byte("two"))[:4])
	})
	c := dial(t, s.URL, nil)
	read(t, c)
	_, _, err := c.ReadMessage(testCtx(t))
	if client.CloseStatus(err) != ws.StatusAbnormalClosure || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("ReadMessage: %v, want 1006 unexpected EOF", err)
	}
}

// TestCloseTimeout: Close gives up on a server that never answers.
func TestCloseTimeout(t *testing.T) {
	s := newScripted(t, func(p *peer) {
		p.recv() // the close frame, never answered
		time.Sleep(time.Second)
	})
	c := dial(t, s.URL, &client.Options{CloseTimeout: 100 * time.Millisecond})
	start := time.Now()
	if err := c.Close(1000, ""); !errors.Is(err, client.ErrCloseTimeout) {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d < 90*time.Millisecond || d > time.Second {
		t.Fatalf("Close took %v", d)
	}
	_, _, err := c.ReadMessage(testCtx(t))
	if !errors.Is(err, client.ErrCloseTimeout) {
		t.Fatalf("ReadMessage after Close: %v", err)
	}
}

// TestCloseDiscardsData: Close reads past data the server was still sending.
func TestCloseDiscardsData(t *testing.T) {
	s := newScripted(t, func(p *peer) {
		for range 3 {
			p.send(ws.OpBinary, true, pattern(10000))
		}
		h, b, _ := p.recv()
		if h.OpCode != ws.OpClose {
			t.Errorf("got %v", h.OpCode)
		}
		p.send(ws.OpClose, true, b)
	})
	c := dial(t, s.URL, nil)
	if err := c.Close(4100, "done"); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func TestKeepalive(t *testing.T) {
	t.Run("dead server", func(t *testing.T) {
		pings := make(chan struct{}, 10)
		s := newScripted(t, func(p *peer) {
			for {
				h, _, err := p.recv()
				if err != nil {
					return
				}
				if h.OpCode == ws.OpPing {
					pings <- struct{}{}
				}
			}
		})
		c := dial(t, s.URL, &client.Options{PingInterval: 50 * time.Millisecond})
		start := time.Now()
		_, _, err := c.ReadMessage(testCtx(t))
		if !errors.Is(err, client.ErrKeepaliveTimeout) || client.CloseStatus(err) != ws.StatusAbnormalClosure {
			t.Fatalf("ReadMessage: %v", err)
		}
		if d := time.Since(start); d < 90*time.Millisecond || d > 2*time.Second {
			t.Fatalf("keepalive gave up after %v", d)
		}
		if len(pings) == 0 {
			t.Fatal("no keepalive ping was sent")
		}
	})
	t.Run("live server", func(t *testing.T) {
		s := newScripted(t, func(p *peer) {
			for {
				h, b, err := p.recv()
				if err != nil {
					return
				}
				switch h.OpCode {
				case ws.OpPing:
					p.send(ws.OpPong, true, b)
				case ws.OpClose:
					p.send(ws.OpClose, true, b)
					return
				}
			}
		})
		c := dial(t, s.URL, &client.Options{PingInterval: 30 * time.Millisecond})
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		if _, _, err := c.ReadMessage(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("ReadMessage: %v, want the 300 ms deadline (the server answers pings)", err)
		}
		if err := c.Close(1000, ""); err != nil {
			t.Fatal(err)
		}
	})
}

// TestServerCompressedFragments: a compressed message split over frames
// (RSV1 on the first only) is inflated; a deflate bomb stops at the limit.
func TestServerCompressedFragments(t *testing.T) {
	d, _ := codec.NewDeflater(9)
	text := []byte(strings.Repeat("compress me, ", 2000))
	z := d.AppendDeflate(nil, text)
	bomb := d.AppendDeflate(nil, make([]byte, 1<<20))
	s := newScripted(t, func(p *peer) {
		first := codec.AppendFrame(nil, ws.OpText, false, z[:10])
		first[0] |= 0x40
		_, _ = p.nc.Write(first)
		p.send(ws.OpContinuation, true, z[10:])
		f := codec.AppendFrame(nil, ws.OpBinary, true, bomb)
		f[0] |= 0x40
		_, _ = p.nc.Write(f)
		p.recv()
	})
	s.respond = func(_ *http.Request, key string) string {
		return string(codec.AppendUpgradeResponse(nil, []byte(key), "", codec.DeflateResponse))
	}
	c := dial(t, s.URL, &client.Options{Compression: true, MaxMessageSize: 100 << 10})
	if op, p := read(t, c); op != ws.OpText || !bytes.Equal(p, text) {
		t.Fatalf("got %v, %d bytes", op, len(p))
	}
	if _, _, err := c.ReadMessage(testCtx(t)); client.CloseStatus(err) != ws.StatusMessageTooBig {
		t.Fatalf("deflate bomb: %v", err)
	}
}
