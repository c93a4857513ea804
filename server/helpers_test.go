package server_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/codec"
	"github.com/megaws/megaws/server"
	"github.com/megaws/megaws/server/servertest"
)

// echo is the handler most tests run: every message goes back to its sender.
type echo struct{ server.BaseHandler }

func (echo) OnMessage(c *server.Conn, op ws.OpCode, p []byte) { _ = c.WriteMessage(op, p) }

// startServer runs a server on 127.0.0.1:0 for the test and stops it at cleanup.
func startServer(tb testing.TB, h server.Handler, cfg server.Config) (*server.Server, string) {
	tb.Helper()
	s := servertest.Start(tb, h, cfg)
	return s, servertest.Addr(s)
}

// waitFor polls cond until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool { return servertest.WaitFor(d, cond) }

// rawConn is a raw TCP client that speaks WebSocket by hand, for tests that
// must send exactly the bytes they choose.
type rawConn struct {
	tb testing.TB
	net.Conn
	br *bufio.Reader
}

func dialRaw(tb testing.TB, addr string) *rawConn {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		tb.Fatalf("dial: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	return &rawConn{tb: tb, Conn: c, br: bufio.NewReaderSize(c, 64<<10)}
}

func newKey() string {
	var k [16]byte
	_, _ = rand.Read(k[:])
	return base64.StdEncoding.EncodeToString(k[:])
}

// upgradeRequest returns a valid handshake request with extra header lines.
func upgradeRequest(path, extra string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + newKey() + "\r\nSec-WebSocket-Version: 13\r\n" + extra + "\r\n"
}

// handshake sends a valid upgrade request and checks the 101 response.
func (c *rawConn) handshake(path string) {
	c.tb.Helper()
	c.write([]byte(upgradeRequest(path, "")))
	resp := c.response()
	if resp.StatusCode != 101 {
		c.tb.Fatalf("handshake: status %d", resp.StatusCode)
	}
}

func (c *rawConn) write(b []byte) {
	c.tb.Helper()
	if _, err := c.Conn.Write(b); err != nil {
		c.tb.Fatalf("write: %v", err)
	}
}

// response reads an HTTP response head (and body, for non-101).
func (c *rawConn) response() *http.Response {
	c.tb.Helper()
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.tb.Fatalf("read response: %v", err)
	}
	if resp.StatusCode != 101 {
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	return resp
}

// writeFrame sends one masked client frame.
func (c *rawConn) writeFrame(op ws.OpCode, fin bool, payload []byte) {
	c.tb.Helper()
	c.write(codec.AppendFrameMasked(nil, op, fin, payload, [4]byte{1, 2, 3, 4}))
}

type frame struct {
	h       ws.Header
	payload []byte
}

// readFrame reads one server frame.
func (c *rawConn) readFrame() (frame, error) {
	h, err := ws.ReadHeader(c.br)
	if err != nil {
		return frame{}, err
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(c.br, p); err != nil {
		return frame{}, err
	}
	if h.Masked {
		ws.Cipher(p, h.Mask, 0)
	}
	return frame{h, p}, nil
}

func (c *rawConn) mustFrame() frame {
	c.tb.Helper()
	f, err := c.readFrame()
	if err != nil {
		c.tb.Fatalf("read frame: %v", err)
	}
	return f
}

// expectClose reads frames until a close frame and checks its code; then the
// server must close TCP.
func (c *rawConn) expectClose(code ws.StatusCode) {
	c.tb.Helper()
	for {
		f, err := c.readFrame()
		if err != nil {
			c.tb.Fatalf("waiting for close %d: %v", code, err)
		}
		if f.h.OpCode != ws.OpClose {
			continue
		}
		got, _, _ := codec.ParseClose(f.payload)
		if len(f.payload) == 0 {
			got = ws.StatusNoStatusRcvd
		}
		if got != code {
			c.tb.Fatalf("close code %d, want %d", got, code)
		}
		break
	}
	c.expectEOF()
}

// expectEOF checks that the server closes the TCP connection.
func (c *rawConn) expectEOF() {
	c.tb.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c.br)
	if err != nil && !isReset(err) {
		c.tb.Fatalf("expected EOF, got %v (after %q)", err, b)
	}
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "reset") || strings.Contains(err.Error(), "broken pipe"))
}

func closePayload(code ws.StatusCode, reason string) []byte {
	return append([]byte{byte(code >> 8), byte(code)}, reason...)
}

// ioTimeout bounds each read or write of a test client, generously: a
// loaded machine running -race must never hit it; a hung server does.
const ioTimeout = time.Minute

// testMask is the masking key of the frames built by clientFrame.
var testMask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// clientFrame returns the wire bytes of one masked client frame. rsv sets the
// reserved bits (RFC 6455 §5.2) and op may be any opcode, reserved ones
// included, so that conformance cases can build invalid frames too.
func clientFrame(op ws.OpCode, fin bool, rsv byte, payload []byte) []byte {
	h := ws.Header{Fin: fin, Rsv: rsv, OpCode: op, Masked: true, Mask: testMask, Length: int64(len(payload))}
	b := codec.AppendHeader(make([]byte, 0, codec.MaxHeaderSize+len(payload)), h)
	start := len(b)
	b = append(b, payload...)
	ws.Cipher(b[start:], testMask, 0)
	return b
}

// concat joins wire chunks into one write.
func concat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// writeChopped writes b in pieces of at most chop bytes, pausing between them.
func (c *rawConn) writeChopped(b []byte, chop int, pause time.Duration) {
	c.tb.Helper()
	if err := c.tryWriteChopped(b, chop, pause); err != nil {
		c.tb.Fatalf("write: %v", err)
	}
}

// tryWriteChopped is writeChopped for input the server may refuse before it
// has all arrived: it stops at the first write error and returns it.
func (c *rawConn) tryWriteChopped(b []byte, chop int, pause time.Duration) error {
	for len(b) > 0 {
		n := min(chop, len(b))
		_ = c.SetWriteDeadline(time.Now().Add(ioTimeout))
		if _, err := c.Conn.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
		if pause > 0 && len(b) > 0 {
			time.Sleep(pause)
		}
	}
	return nil
}

// nextFrame reads the next server frame and checks that it is well formed as
// RFC 6455 §5 requires of a server: unmasked, no reserved bits or opcodes,
// control frames whole and at most 125 bytes.
func (c *rawConn) nextFrame() frame {
	c.tb.Helper()
	_ = c.SetReadDeadline(time.Now().Add(ioTimeout))
	f, err := c.readFrame()
	if err != nil {
		c.tb.Fatalf("read frame: %v", err)
	}
	h := f.h
	switch {
	case h.Masked:
		c.tb.Fatalf("server frame is masked")
	case h.Rsv != 0:
		c.tb.Fatalf("server frame has reserved bits %03b", h.Rsv)
	case h.OpCode.IsReserved():
		c.tb.Fatalf("server frame has reserved opcode %d", h.OpCode)
	case h.OpCode.IsControl() && (!h.Fin || h.Length > codec.MaxControlPayload):
		c.tb.Fatalf("bad server control frame: fin %v length %d", h.Fin, h.Length)
	}
	return f
}

// expectMessage checks that the next frame is the whole data message op with
// payload: no other frame comes first.
func (c *rawConn) expectMessage(op ws.OpCode, payload []byte) {
	c.tb.Helper()
	f := c.nextFrame()
	if f.h.OpCode != op || !f.h.Fin || !bytes.Equal(f.payload, payload) {
		c.tb.Fatalf("got %v fin %v len %d %q, want %v len %d %q", f.h.OpCode, f.h.Fin, len(f.payload),
			truncate(f.payload), op, len(payload), truncate(payload))
	}
}

// expectPong checks that the next frame is a pong with payload.
func (c *rawConn) expectPong(payload []byte) {
	c.tb.Helper()
	c.expectMessage(ws.OpPong, payload)
}

// expectCloseNext checks that the next frame is a close frame with code (an
// empty close payload counts as 1005) and that the server then closes TCP.
func (c *rawConn) expectCloseNext(code ws.StatusCode) {
	c.tb.Helper()
	f := c.nextFrame()
	if f.h.OpCode != ws.OpClose {
		c.tb.Fatalf("got %v %q, want close %d", f.h.OpCode, truncate(f.payload), code)
	}
	got := ws.StatusNoStatusRcvd
	if len(f.payload) > 0 {
		var err error
		if got, _, err = codec.ParseClose(f.payload); err != nil {
			c.tb.Fatalf("server close frame %x: %v", f.payload, err)
		}
	}
	if got != code {
		c.tb.Fatalf("close code %d, want %d", got, code)
	}
	c.expectEOF()
}

// closeNormal runs a clean closing handshake started by the client: close
// 1000 out, close 1000 back, then the server closes TCP.
func (c *rawConn) closeNormal() {
	c.tb.Helper()
	c.write(clientFrame(ws.OpClose, true, 0, closePayload(ws.StatusNormalClosure, "")))
	c.expectCloseNext(ws.StatusNormalClosure)
}

// expectQuiet checks that the server sends nothing for d. It can pass
// vacuously on a slow machine but never fails because of one.
func (c *rawConn) expectQuiet(d time.Duration) {
	c.tb.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := c.br.Peek(1)
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	var ne net.Error
	if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
		c.tb.Fatalf("expected silence for %v, got %v (%d bytes buffered)", d, err, c.br.Buffered())
	}
}

func truncate(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

// recorder is an echo handler that records what happened to each connection,
// for tests that check OnOpen and OnClose.
type recorder struct {
	echo
	mu     sync.Mutex
	opens  int
	closes map[uint64][]error // OnClose errors by connection ID
	closed chan uint64        // IDs as OnClose sees them; never blocks OnClose
}

func newRecorder() *recorder {
	return &recorder{closes: map[uint64][]error{}, closed: make(chan uint64, 1<<16)}
}

func (r *recorder) OnOpen(c *server.Conn) {
	r.mu.Lock()
	r.opens++
	r.mu.Unlock()
}

func (r *recorder) OnClose(c *server.Conn, err error) {
	r.mu.Lock()
	r.closes[c.ID()] = append(r.closes[c.ID()], err)
	r.mu.Unlock()
	select {
	case r.closed <- c.ID():
	default:
	}
}

// counts returns the number of OnOpen and OnClose calls so far.
func (r *recorder) counts() (opens, closes int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, errs := range r.closes {
		closes += len(errs)
	}
	return r.opens, closes
}

// errs returns the OnClose errors of connection id.
func (r *recorder) errs(id uint64) []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.closes[id]...)
}

// waitClosed waits for the next OnClose and returns its connection's errors.
func (r *recorder) waitClosed(tb testing.TB) (uint64, []error) {
	tb.Helper()
	select {
	case id := <-r.closed:
		return id, r.errs(id)
	case <-time.After(ioTimeout):
		tb.Fatal("OnClose was not called")
		return 0, nil
	}
}

// checkEcho checks that c, an open connection, still gets its messages back.
func checkEcho(tb testing.TB, c *rawConn, msg string) {
	tb.Helper()
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	c.writeFrame(ws.OpText, true, []byte(msg))
	f := c.mustFrame()
	if f.h.OpCode != ws.OpText || string(f.payload) != msg {
		tb.Fatalf("healthy connection: got %v %q, want echo of %q", f.h.OpCode, truncate(f.payload), msg)
	}
}
