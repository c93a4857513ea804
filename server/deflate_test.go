package server_test

import (
	"bytes"
	"compress/flate"
	"strings"
	"testing"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/codec"
	"github.com/megaws/megaws/server"
)

// deflateRaw compresses p as a permessage-deflate payload (tail removed).
func deflateRaw(t *testing.T, p []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestSpeed)
	_, _ = fw.Write(p)
	_ = fw.Flush()
	return bytes.TrimSuffix(buf.Bytes(), []byte{0, 0, 0xff, 0xff})
}

func inflateRaw(t *testing.T, p []byte) []byte {
	t.Helper()
	var f codec.Inflater
	out, err := f.Inflate(p, 1<<30)
	if err != nil {
		t.Fatalf("inflate server frame: %v", err)
	}
	return append([]byte(nil), out...)
}

// compressedFrame builds a masked client frame with RSV1 as given.
func compressedFrame(op ws.OpCode, fin, rsv1 bool, payload []byte) []byte {
	h := ws.Header{Fin: fin, OpCode: op, Masked: true, Mask: [4]byte{5, 6, 7, 8}, Length: int64(len(payload))}
	if rsv1 {
		h.Rsv = 0x4
	}
	b := codec.AppendHeader(nil, h)
	start := len(b)
	b = append(b, payload...)
	ws.Cipher(b[start:], h.Mask, 0)
	return b
}

func dialDeflate(t *testing.T, addr string) *rawConn {
	t.Helper()
	c := dialRaw(t, addr)
	c.write([]byte(upgradeRequest("/", "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n")))
	resp := c.response()
	if resp.StatusCode != 101 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := resp.Header.Get("Sec-WebSocket-Extensions"); got != codec.DeflateResponse {
		t.Fatalf("extensions %q, want %q", got, codec.DeflateResponse)
	}
	return c
}

func TestDeflateEcho(t *testing.T) {
	_, addr := startServer(t, echo{}, server.Config{Compression: true, CompressionThreshold: 16})
	c := dialDeflate(t, addr)
	msg := []byte(strings.Repeat("megaws compresses repetitive game state. ", 200))

	// One compressed frame.
	c.write(compressedFrame(ws.OpText, true, true, deflateRaw(t, msg)))
	f := c.mustFrame()
	if f.h.Rsv != 0x4 || !bytes.Equal(inflateRaw(t, f.payload), msg) {
		t.Fatalf("echo: rsv %x, %d compressed bytes", f.h.Rsv, len(f.payload))
	}
	// A compressed message in three fragments: RSV1 only on the first.
	z := deflateRaw(t, msg)
	c.write(compressedFrame(ws.OpText, false, true, z[:10]))
	c.write(compressedFrame(ws.OpContinuation, false, false, z[10:20]))
	c.write(compressedFrame(ws.OpContinuation, true, false, z[20:]))
	if f := c.mustFrame(); !bytes.Equal(inflateRaw(t, f.payload), msg) {
		t.Fatal("fragmented compressed echo mismatch")
	}
	// Small messages go out uncompressed (threshold), uncompressed input is fine.
	c.writeFrame(ws.OpText, true, []byte("tiny"))
	if f := c.mustFrame(); f.h.Rsv != 0 || string(f.payload) != "tiny" {
		t.Fatalf("small message: rsv %x %q", f.h.Rsv, f.payload)
	}
}

func TestDeflateBomb(t *testing.T) {
	_, addr := startServer(t, echo{}, server.Config{Compression: true, MaxMessageSize: 1 << 20})
	c := dialDeflate(t, addr)
	bomb := deflateRaw(t, make([]byte, 64<<20)) // 64 MiB of zeros in ~64 KiB
	if len(bomb) > 128<<10 {
		t.Fatalf("bomb is %d bytes", len(bomb))
	}
	c.write(compressedFrame(ws.OpBinary, true, true, bomb))
	c.expectClose(ws.StatusMessageTooBig)
}

func TestDeflateInvalid(t *testing.T) {
	_, addr := startServer(t, echo{}, server.Config{Compression: true})
	t.Run("garbage", func(t *testing.T) {
		c := dialDeflate(t, addr)
		c.write(compressedFrame(ws.OpBinary, true, true, []byte{0xff, 0xff, 0xff, 0xff, 0x00}))
		c.expectClose(ws.StatusInvalidFramePayloadData)
	})
	t.Run("rsv1 on continuation", func(t *testing.T) {
		c := dialDeflate(t, addr)
		c.write(compressedFrame(ws.OpText, false, true, deflateRaw(t, []byte("ab"))))
		c.write(compressedFrame(ws.OpContinuation, true, true, nil))
		c.expectClose(ws.StatusProtocolError)
	})
	t.Run("rsv1 on control", func(t *testing.T) {
		c := dialDeflate(t, addr)
		c.write(compressedFrame(ws.OpPing, true, true, nil))
		c.expectClose(ws.StatusProtocolError)
	})
	t.Run("compressed invalid utf8", func(t *testing.T) {
		c := dialDeflate(t, addr)
		c.write(compressedFrame(ws.OpText, true, true, deflateRaw(t, []byte{0xce, 0xba, 0xed, 0xa0, 0x80})))
		c.expectClose(ws.StatusInvalidFramePayloadData)
	})
	t.Run("not negotiated", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.handshake("/")
		c.write(compressedFrame(ws.OpText, true, true, deflateRaw(t, []byte("x"))))
		c.expectClose(ws.StatusProtocolError)
	})
}

// TestDeflateSmallServerWindow: a client's server_max_window_bits below 15
// (Autobahn 13.3, 13.5) is honoured, not declined: the compressor keeps its
// back-references within the window the client asked for.
func TestDeflateSmallServerWindow(t *testing.T) {
	_, addr := startServer(t, echo{}, server.Config{Compression: true})
	c := dialRaw(t, addr)
	c.write([]byte(upgradeRequest("/", "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=9\r\n")))
	resp := c.response()
	if got := resp.Header.Get("Sec-WebSocket-Extensions"); resp.StatusCode != 101 || !strings.Contains(got, "server_max_window_bits=9") {
		t.Fatalf("status %d, extensions %q", resp.StatusCode, got)
	}
	msg := []byte(strings.Repeat("megaws honours small windows; ", 100))
	c.write(compressedFrame(ws.OpText, true, true, deflateRaw(t, msg)))
	f := c.mustFrame()
	if f.h.Rsv != 0x4 || !bytes.Equal(inflateRaw(t, f.payload), msg) {
		t.Fatalf("echo: rsv %x, %d bytes", f.h.Rsv, len(f.payload))
	}
}
