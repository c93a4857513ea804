package client_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/megaws/megaws/client"
	"github.com/megaws/megaws/codec"
	"github.com/megaws/megaws/server"
)

// TestMain fails the package if a goroutine of package client outlives the
// tests: the client starts none of its own.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := clientGoroutines(2 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines of package client left after the tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// clientGoroutines waits up to d for every goroutine running client code
// (a keepalive timer callback, say) to end and returns the stacks of those
// that did not.
func clientGoroutines(d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var left []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "megaws/megaws/client.") && !strings.Contains(g, "client_test.") && !strings.Contains(g, "clientGoroutines") {
				left = append(left, g)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return strings.Join(left, "\n\n")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const testTimeout = 10 * time.Second

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// startMegaws runs a megaws server on 127.0.0.1:0 and returns its ws:// URL.
func startMegaws(t *testing.T, h server.Handler, cfg server.Config) string {
	t.Helper()
	if cfg.Loops == 0 {
		cfg.Loops = 2
	}
	s := server.New(h, cfg)
	errc := make(chan error, 1)
	go func() { errc <- s.ListenAndServe("127.0.0.1:0") }()
	select {
	case <-s.Ready():
	case err := <-errc:
		t.Fatalf("ListenAndServe: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("server did not start")
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = s.Stop(ctx)
		select {
		case <-errc:
		case <-time.After(5 * time.Second):
			t.Error("server did not stop")
		}
	})
	return "ws://" + s.Addr().String() + "/"
}

// echo sends every message back; a text message "close <code> <reason>"
// makes the server close instead, and "send <n>" makes it send n bytes.
type echo struct{ server.BaseHandler }

func (echo) OnMessage(c *server.Conn, op ws.OpCode, p []byte) {
	s := string(p)
	if op == ws.OpText && strings.HasPrefix(s, "close ") {
		var code int
		var reason string
		fmt.Sscanf(s, "close %d %s", &code, &reason)
		_ = c.Close(ws.StatusCode(code), reason)
		return
	}
	if op == ws.OpText && strings.HasPrefix(s, "send ") {
		var n int
		fmt.Sscanf(s, "send %d", &n)
		_ = c.WriteMessage(ws.OpBinary, pattern(n))
		return
	}
	_ = c.WriteMessage(op, p)
}

// pattern returns n bytes that repeat every 251 bytes (a prime, so no
// frame or chunk boundary lines up with it).
func pattern(n int) []byte {
	var block [251]byte
	for i := range block {
		block[i] = byte(i*7 + 1)
	}
	b := make([]byte, n)
	for i := 0; i < n; i += copy(b[i:], block[:]) {
	}
	return b
}

func dial(t *testing.T, url string, o *client.Options) *client.Conn {
	t.Helper()
	c, resp, err := client.Dial(testCtx(t), url, o)
	if err != nil {
		t.Fatalf("Dial %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	t.Cleanup(func() { _ = c.Close(ws.StatusNormalClosure, "") })
	return c
}

func read(t *testing.T, c *client.Conn) (ws.OpCode, []byte) {
	t.Helper()
	op, p, err := c.ReadMessage(testCtx(t))
	if err != nil {
		t.Fatalf("ReadMessage: %v", err)
	}
	return op, p
}

// scripted is a hand-written WebSocket server: it answers the handshake (or
// lets respond do it) and then runs script on the connection, so a test
// sends exactly the bytes it wants.
type scripted struct {
	t       *testing.T
	ln      net.Listener
	URL     string
	wg      sync.WaitGroup
	respond func(req *http.Request, key string) string // the response head; nil: a valid 101
	script  func(s *peer)
}

// peer is the server side of one scripted connection.
type peer struct {
	t   *testing.T
	nc  net.Conn
	br  *bufio.Reader
	req *http.Request
}

func newScripted(t *testing.T, script func(p *peer)) *scripted {
	s := &scripted{t: t, script: script}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.ln, s.URL = ln, "ws://"+ln.Addr().String()+"/"
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer nc.Close()
				_ = nc.SetDeadline(time.Now().Add(testTimeout))
				s.serve(nc)
			}()
		}
	}()
	return s
}

func (s *scripted) serve(nc net.Conn) {
	br := bufio.NewReader(nc)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	key := req.Header.Get("Sec-WebSocket-Key")
	var head string
	if s.respond != nil {
		head = s.respond(req, key)
	} else {
		head = string(codec.AppendUpgradeResponse(nil, []byte(key), "", ""))
	}
	if _, err := io.WriteString(nc, head); err != nil {
		return
	}
	if s.script != nil {
		s.script(&peer{t: s.t, nc: nc, br: br, req: req})
	}
}

// send writes one unmasked frame.
func (p *peer) send(op ws.OpCode, fin bool, payload []byte) {
	if _, err := p.nc.Write(codec.AppendFrame(nil, op, fin, payload)); err != nil {
		p.t.Errorf("peer write: %v", err)
	}
}

// recv reads one frame from the client, checks it is masked and unmasks it.
func (p *peer) recv() (ws.Header, []byte, error) {
	h, err := ws.ReadHeader(p.br)
	if err != nil {
		return h, nil, err
	}
	b := make([]byte, h.Length)
	if _, err := io.ReadFull(p.br, b); err != nil {
		return h, nil, err
	}
	if !h.Masked {
		p.t.Errorf("client frame %v is not masked", h.OpCode)
	}
	ws.Cipher(b, h.Mask, 0)
	return h, b, nil
}

// closePayload encodes a close frame's payload.
func closePayload(code ws.StatusCode, reason string) []byte {
	return append([]byte{byte(code >> 8), byte(code)}, reason...)
}
