package server_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/codec"
	"github.com/megaws/megaws/server"
)

// FuzzConn feeds arbitrary bytes to a connection of a real echo server, after
// a valid opening handshake (upgrade) or in its place, then half-closes the
// connection and reads everything the server answers. The server must not
// panic (it runs in this process), must close the connection once the input
// has ended (no hang), and what it sends must be well formed: an HTTP
// response, and after a 101 only valid server frames whose text is UTF-8,
// nothing after a close frame and valid close codes. Seeds are in
// testdata/fuzz/FuzzConn; scripts/fuzz.sh runs it.
func FuzzConn(f *testing.F) {
	hello := clientFrame(ws.OpText, true, 0, []byte("hello"))
	f.Add(true, hello)
	f.Add(true, concat(text(false, []byte("frag")), ping([]byte("p")), cont(true, []byte("ment"))))
	f.Add(true, concat(hello, closeFrame(closePayload(1000, "bye"))))
	f.Add(true, bombHeader(ws.OpBinary, true, 1<<63-1))
	f.Add(false, []byte(upgradeRequest("/", "")))
	f.Add(false, append([]byte(upgradeRequest("/", "")), hello...))
	f.Add(false, []byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add(false, []byte{0x16, 0x03, 0x01, 0x00, 0xc4, 0x01})

	// A small message limit and one loop keep each run cheap. The timeouts
	// are longer than a run may take, so that a connection the server
	// forgets to close is caught as a hang rather than closed by a timer.
	_, addr := startServer(f, echo{}, server.Config{Loops: 1, MaxMessageSize: 1 << 20, HandshakeTimeout: time.Minute})
	f.Fuzz(func(t *testing.T, upgrade bool, in []byte) {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(ioTimeout))
		br := bufio.NewReader(c)
		if upgrade {
			if _, err := c.Write([]byte(upgradeRequest("/fuzz", ""))); err != nil {
				t.Fatalf("write handshake: %v", err)
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("handshake: %v %v", resp, err)
			}
		}
		// Read while writing: the server may answer (echo) as much as it
		// is sent, and it stops reading from a peer that does not read.
		out := make(chan []byte, 1)
		readErr := make(chan error, 1)
		go func() {
			b, err := io.ReadAll(br)
			out <- b
			readErr <- err
		}()
		// The server may refuse the input and close before it is all written.
		_, _ = c.Write(in)
		_ = c.(*net.TCPConn).CloseWrite()
		got, err := <-out, <-readErr
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the server did not close the connection after the input ended (%d bytes answered)", len(got))
		}
		if err != nil && !isReset(err) {
			t.Fatalf("read: %v", err)
		}
		if !upgrade {
			got, upgrade = checkHTTPAnswer(t, got)
		}
		if upgrade {
			checkServerFrames(t, got)
		}
	})
}

// checkHTTPAnswer checks the server's answer to a request head and returns
// the bytes after it, and whether it was a 101.
func checkHTTPAnswer(t *testing.T, out []byte) (rest []byte, upgraded bool) {
	t.Helper()
	if len(out) == 0 {
		return nil, false
	}
	br := bufio.NewReader(bytes.NewReader(out))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("answer is not an HTTP response: %v: %q", err, truncate(out))
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		rest, _ = io.ReadAll(br)
		return rest, true
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatalf("response body: %v", err)
	}
	if resp.StatusCode < 200 || !resp.Close {
		t.Fatalf("unexpected answer %s %v", resp.Status, resp.Header)
	}
	if extra, _ := io.ReadAll(br); len(extra) > 0 {
		t.Fatalf("%d bytes after the %s response (body %q)", len(extra), resp.Status, truncate(body))
	}
	return nil, false
}

// checkServerFrames checks a server's frame stream (RFC 6455 §5): unmasked,
// no reserved bits or opcodes, whole control frames of at most 125 bytes,
// valid UTF-8 text, a valid close frame last. The last frame may be cut
// short: a server that closes a connection sends what the socket takes.
func checkServerFrames(t *testing.T, b []byte) {
	t.Helper()
	closed := false
	for len(b) > 0 {
		h, n, err := codec.DecodeHeader(b)
		if err != nil {
			t.Fatalf("server frame header %x: %v", truncate(b), err)
		}
		if n == 0 || int64(len(b)-n) < h.Length {
			return // cut short
		}
		p := b[n : n+int(h.Length)]
		b = b[n+int(h.Length):]
		if closed {
			t.Fatalf("%v frame after the close frame", h.OpCode)
		}
		if err := codec.CheckServerHeader(h, 0, false); err != nil {
			t.Fatalf("server frame %+v: %v", h, err)
		}
		switch h.OpCode {
		case ws.OpContinuation:
			t.Fatal("the echo server fragmented a message")
		case ws.OpText:
			if !utf8.Valid(p) {
				t.Fatalf("server text frame is not UTF-8: %q", truncate(p))
			}
		case ws.OpClose:
			if len(p) > 0 {
				if _, _, err := codec.ParseClose(p); err != nil {
					t.Fatalf("server close frame %x: %v", p, err)
				}
			}
			closed = true
		}
	}
}

// TestFuzzSeeds checks that the committed seed corpus is where `go test`
// finds it, so that plain test runs replay it.
func TestFuzzSeeds(t *testing.T) {
	ents, err := os.ReadDir("testdata/fuzz/FuzzConn")
	if err != nil || len(ents) < 10 {
		t.Fatalf("seed corpus: %d files, %v", len(ents), err)
	}
	for _, e := range ents {
		b, err := os.ReadFile("testdata/fuzz/FuzzConn/" + e.Name())
		if err != nil || !bytes.HasPrefix(b, []byte("go test fuzz v1\nbool(")) {
			t.Fatalf("%s: not a FuzzConn corpus file: %v", e.Name(), err)
		}
	}
}
