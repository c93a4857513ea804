package server_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/codec"
	"github.com/megaws/megaws/server"
)

// echo is the handler most tests run: every message goes back to its sender.
type echo struct{ server.BaseHandler }

func (echo) OnMessage(c *server.Conn, op ws.OpCode, p []byte) { _ = c.WriteMessage(op, p) }

// startServer runs a server on 127.0.0.1:0 for the test and stops it at cleanup.
func startServer(tb testing.TB, h server.Handler, cfg server.Config) (*server.Server, string) {
	tb.Helper()
	if cfg.Loops == 0 {
		cfg.Loops = 2
	}
	s := server.New(h, cfg)
	errc := make(chan error, 1)
	go func() { errc <- s.ListenAndServe("127.0.0.1:0") }()
	select {
	case <-s.Ready():
	case err := <-errc:
		tb.Fatalf("ListenAndServe: %v", err)
	case <-time.After(5 * time.Second):
		tb.Fatal("server did not start")
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = s.Stop(ctx)
		select {
		case <-errc:
		case <-time.After(5 * time.Second):
			tb.Error("server did not stop")
		}
	})
	return s, s.Addr().String()
}

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
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
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
