package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/megaws/megaws/client"
	"github.com/megaws/megaws/codec"
	"github.com/megaws/megaws/server"
)

func TestMegawsEcho(t *testing.T) {
	url := startMegaws(t, echo{}, server.Config{})
	c := dial(t, url, nil)
	for _, tc := range []struct {
		name string
		op   ws.OpCode
		size int
	}{
		{name: "empty text", op: ws.OpText, size: 0},
		{name: "small text", op: ws.OpText, size: 5},
		{name: "binary 125", op: ws.OpBinary, size: 125},
		{name: "binary 126", op: ws.OpBinary, size: 126},
		{name: "binary 64 KiB", op: ws.OpBinary, size: 65535},
		{name: "binary 64 KiB + 1", op: ws.OpBinary, size: 65536},
		{name: "binary 1 MiB", op: ws.OpBinary, size: 1 << 20},
		{name: "text 200 KiB", op: ws.OpText, size: 200 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := pattern(tc.size)
			if tc.op == ws.OpText {
				p = bytes.Repeat([]byte("héllo wörld "), tc.size/13+1)[:0]
				for len(p) < tc.size {
					p = append(p, "abcdefghij"...)
				}
				p = p[:tc.size]
			}
			if err := c.WriteMessage(tc.op, p); err != nil {
				t.Fatal(err)
			}
			op, got := read(t, c)
			if op != tc.op || !bytes.Equal(got, p) {
				t.Fatalf("echo: op %v, %d bytes; want op %v, %d bytes", op, len(got), tc.op, len(p))
			}
		})
	}
}

func TestMegawsMessageSizeLimit(t *testing.T) {
	url := startMegaws(t, echo{}, server.Config{})
	t.Run("16 MiB accepted by default", func(t *testing.T) {
		c := dial(t, url, nil)
		if err := c.WriteMessage(ws.OpText, []byte(fmt.Sprintf("send %d", 16<<20))); err != nil {
			t.Fatal(err)
		}
		_, p := read(t, c)
		if len(p) != 16<<20 || !bytes.Equal(p[:1000], pattern(1000)) {
			t.Fatalf("got %d bytes", len(p))
		}
	})
	for _, tc := range []struct {
		name  string
		limit int
		send  int
	}{
		{name: "default limit, 16 MiB + 1", limit: 0, send: 16<<20 + 1},
		{name: "64 KiB limit, 100 KiB", limit: 64 << 10, send: 100 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, url, &client.Options{MaxMessageSize: tc.limit})
			if err := c.WriteMessage(ws.OpText, []byte(fmt.Sprintf("send %d", tc.send))); err != nil {
				t.Fatal(err)
			}
			_, _, err := c.ReadMessage(testCtx(t))
			if client.CloseStatus(err) != ws.StatusMessageTooBig || !errors.Is(err, codec.ErrMessageTooBig) {
				t.Fatalf("ReadMessage: %v, want close 1009", err)
			}
			if _, _, again := c.ReadMessage(testCtx(t)); again != err {
				t.Fatalf("second ReadMessage: %v, want the same error", again)
			}
			if err := c.WriteMessage(ws.OpText, []byte("x")); err == nil {
				t.Fatal("write after the connection failed succeeded")
			}
		})
	}
}

// closeRecorder records how the server saw each connection end.
type closeRecorder struct {
	echo
	mu   sync.Mutex
	errs []error
	got  chan struct{}
}

func (h *closeRecorder) OnClose(c *server.Conn, err error) {
	h.mu.Lock()
	h.errs = append(h.errs, err)
	h.mu.Unlock()
	h.got <- struct{}{}
}

func TestMegawsCloseHandshake(t *testing.T) {
	h := &closeRecorder{got: make(chan struct{}, 10)}
	url := startMegaws(t, h, server.Config{})

	t.Run("client closes", func(t *testing.T) {
		c := dial(t, url, nil)
		if err := c.Close(4000, "bye"); err != nil {
			t.Fatalf("Close: %v", err)
		}
		<-h.got
		h.mu.Lock()
		var ce *server.CloseError
		ok := errors.As(h.errs[len(h.errs)-1], &ce)
		h.mu.Unlock()
		if !ok || ce.Code != 4000 || ce.Reason != "bye" || !ce.Remote {
			t.Fatalf("server saw %+v", ce)
		}
		if _, _, err := c.ReadMessage(testCtx(t)); client.CloseStatus(err) != 4000 {
			t.Fatalf("ReadMessage after Close: %v", err)
		}
		if err := c.WriteMessage(ws.OpText, []byte("late")); !errors.Is(err, client.ErrClosed) {
			t.Fatalf("write after Close: %v", err)
		}
		if err := c.Close(1000, ""); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})

	t.Run("client closes while another goroutine reads", func(t *testing.T) {
		c := dial(t, url, nil)
		errc := make(chan error, 1)
		go func() {
			_, _, err := c.ReadMessage(testCtx(t))
			errc <- err
		}()
		time.Sleep(20 * time.Millisecond)
		if err := c.Close(ws.StatusGoingAway, "away"); err != nil {
			t.Fatalf("Close: %v", err)
		}
		err := <-errc
		var ce *client.CloseError
		if !errors.As(err, &ce) || ce.Code != ws.StatusGoingAway || ce.Remote || ce.Err != nil {
			t.Fatalf("reader got %v", err)
		}
		<-h.got
	})

	t.Run("server closes", func(t *testing.T) {
		c := dial(t, url, nil)
		if err := c.WriteMessage(ws.OpText, []byte("close 4001 done")); err != nil {
			t.Fatal(err)
		}
		_, _, err := c.ReadMessage(testCtx(t))
		var ce *client.CloseError
		if !errors.As(err, &ce) || ce.Code != 4001 || ce.Reason != "done" || !ce.Remote || ce.Err != nil {
			t.Fatalf("ReadMessage: %v, want the server's 4001 done", err)
		}
		<-h.got
		h.mu.Lock()
		var se *server.CloseError
		errors.As(h.errs[len(h.errs)-1], &se)
		h.mu.Unlock()
		if se == nil || se.Code != 4001 || se.Err != nil {
			t.Fatalf("server saw %v: the client did not answer its close", h.errs[len(h.errs)-1])
		}
		if err := c.Close(1000, ""); err != nil {
			t.Fatalf("Close after the server's close: %v", err)
		}
	})

	t.Run("invalid close codes are refused", func(t *testing.T) {
		c := dial(t, url, nil)
		for _, code := range []ws.StatusCode{1005, 1006, 1015, 999, 2000, 5000} {
			if err := c.Close(code, ""); !errors.Is(err, client.ErrInvalidCloseCode) {
				t.Errorf("Close(%d): %v", code, err)
			}
		}
		if err := c.Close(1000, strings.Repeat("x", 124)); !errors.Is(err, client.ErrControlTooLong) {
			t.Errorf("Close with a 124-byte reason: %v", err)
		}
	})
}

func TestMegawsPing(t *testing.T) {
	url := startMegaws(t, echo{}, server.Config{})
	pongs := make(chan string, 1)
	c := dial(t, url, &client.Options{OnPong: func(p []byte) { pongs <- string(p) }})
	if err := c.Ping([]byte("are you there")); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteMessage(ws.OpText, []byte("after")); err != nil {
		t.Fatal(err)
	}
	if _, p := read(t, c); string(p) != "after" {
		t.Fatalf("got %q", p)
	}
	select {
	case p := <-pongs:
		if p != "are you there" {
			t.Fatalf("pong %q", p)
		}
	default:
		t.Fatal("no pong seen before the echo that followed the ping")
	}
	if err := c.Ping(make([]byte, 126)); !errors.Is(err, client.ErrControlTooLong) {
		t.Fatalf("126-byte ping: %v", err)
	}
}

// pinger answers "ping me" with a ping, then the text "pinged".
type pinger struct{ echo }

func (pinger) OnMessage(c *server.Conn, op ws.OpCode, p []byte) {
	_ = c.Ping([]byte("server ping"))
	_ = c.WriteMessage(ws.OpText, []byte("pinged"))
}

func TestMegawsServerPing(t *testing.T) {
	url := startMegaws(t, pinger{}, server.Config{})
	pings := make(chan string, 1)
	c := dial(t, url, &client.Options{OnPing: func(p []byte) { pings <- string(p) }})
	if err := c.WriteMessage(ws.OpText, []byte("ping me")); err != nil {
		t.Fatal(err)
	}
	if _, p := read(t, c); string(p) != "pinged" {
		t.Fatalf("got %q", p)
	}
	// megaws may queue the ping behind the message: read on (short reads
	// that time out leave the connection usable) until it is seen.
	for deadline := time.Now().Add(5 * time.Second); ; {
		select {
		case p := <-pings:
			if p != "server ping" {
				t.Fatalf("ping %q", p)
			}
			return
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("no ping seen")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		_, p, err := c.ReadMessage(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("ReadMessage: %q %v", p, err)
		}
	}
}

// upgradeRecorder keeps what OnUpgrade saw.
type upgradeRecorder struct {
	echo
	mu                     sync.Mutex
	origin, token, offered string
	agent, host            string
}

func (h *upgradeRecorder) OnUpgrade(c *server.Conn, r *server.Request) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.origin, h.token, h.agent, h.host = r.Header("Origin"), r.Header("X-Token"), r.Header("User-Agent"), r.Header("Host")
	h.offered = strings.Join(r.Protocols(), ",")
	return nil
}

func TestMegawsHeadersOriginSubprotocol(t *testing.T) {
	h := &upgradeRecorder{}
	url := startMegaws(t, h, server.Config{Subprotocols: []string{"game.v2", "game.v1"}, AllowedOrigins: []string{"https://game.example"}})
	hdr := http.Header{}
	hdr.Set("X-Token", "s3cret")
	hdr.Set("User-Agent", "megaws-test")
	c := dial(t, url, &client.Options{Header: hdr, Origin: "https://game.example", Subprotocols: []string{"game.v1", "game.v2"}})
	h.mu.Lock()
	if h.origin != "https://game.example" || h.token != "s3cret" || h.agent != "megaws-test" || h.offered != "game.v1,game.v2" {
		t.Errorf("server saw origin %q token %q agent %q protocols %q", h.origin, h.token, h.agent, h.offered)
	}
	h.mu.Unlock()
	if p := c.Subprotocol(); p != "game.v2" {
		t.Errorf("Subprotocol %q, want the server's preference game.v2", p)
	}

	_, resp, err := client.Dial(testCtx(t), url, &client.Options{Origin: "https://evil.example"})
	var he *client.HandshakeError
	if !errors.As(err, &he) || he.StatusCode != http.StatusForbidden || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("wrong origin: %v", err)
	}

	hdr.Set("Host", "game.example:8080")
	dial(t, url, &client.Options{Header: hdr, Origin: "https://game.example"})
	h.mu.Lock()
	if h.host != "game.example:8080" {
		t.Errorf("Host %q", h.host)
	}
	h.mu.Unlock()
	for _, bad := range []string{"Sec-WebSocket-Key", "Upgrade", "Connection", "Sec-WebSocket-Extensions"} {
		_, _, err := client.Dial(testCtx(t), url, &client.Options{Header: http.Header{bad: {"x"}}})
		if err == nil || !strings.Contains(err.Error(), "set by the handshake") {
			t.Errorf("header %s: %v", bad, err)
		}
	}
	if _, _, err := client.Dial(testCtx(t), url, &client.Options{Header: http.Header{"X-Bad": {"a\r\nInjected: 1"}}}); err == nil {
		t.Error("a header value with CRLF was sent")
	}
}

// compressedEcho echoes and tells whether deflate was negotiated.
type compressedEcho struct {
	echo
	negotiated atomic.Bool
}

func (h *compressedEcho) OnOpen(c *server.Conn) { h.negotiated.Store(c.Compressed()) }

func TestMegawsDeflate(t *testing.T) {
	h := &compressedEcho{}
	url := startMegaws(t, h, server.Config{Compression: true, CompressionThreshold: 1})
	c := dial(t, url, &client.Options{Compression: true, CompressionThreshold: 1})
	if !c.Compressed() || !h.negotiated.Load() {
		t.Fatalf("deflate not negotiated: client %v server %v", c.Compressed(), h.negotiated.Load())
	}
	text := bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog; "), 5000)
	for _, m := range []struct {
		op ws.OpCode
		p  []byte
	}{{ws.OpText, text}, {ws.OpBinary, pattern(300 << 10)}, {ws.OpText, []byte("a")}, {ws.OpBinary, []byte{}}} {
		if err := c.WriteMessage(m.op, m.p); err != nil {
			t.Fatal(err)
		}
		op, got := read(t, c)
		if op != m.op || !bytes.Equal(got, m.p) {
			t.Fatalf("deflate echo of %d bytes: op %v, %d bytes back", len(m.p), op, len(got))
		}
	}
	// Without the option nothing is offered.
	plain := dial(t, url, nil)
	if plain.Compressed() {
		t.Fatal("deflate negotiated without Options.Compression")
	}
}

func TestMegawsConcurrentWriters(t *testing.T) {
	url := startMegaws(t, echo{}, server.Config{})
	c := dial(t, url, nil)
	const writers, each = 4, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := c.WriteMessage(ws.OpText, []byte(fmt.Sprintf("w%d-%d", w, i))); err != nil {
					t.Error(err)
					return
				}
				if i%50 == 0 {
					_ = c.Ping([]byte("p"))
				}
			}
		}()
	}
	next := make([]int, writers)
	for range writers * each {
		_, p := read(t, c)
		var w, i int
		if _, err := fmt.Sscanf(string(p), "w%d-%d", &w, &i); err != nil || i != next[w] {
			t.Fatalf("message %q out of order (want w%d-%d)", p, w, next[w])
		}
		next[w]++
	}
	wg.Wait()
}

// TestMegawsNoGoroutinePerConn holds connections and counts goroutines:
// a Conn has none of its own.
func TestMegawsNoGoroutinePerConn(t *testing.T) {
	url := startMegaws(t, echo{}, server.Config{})
	c0 := dial(t, url, &client.Options{PingInterval: time.Hour})
	_ = c0
	time.Sleep(50 * time.Millisecond)
	before := runtime.NumGoroutine()
	const n = 200
	conns := make([]*client.Conn, n)
	for i := range conns {
		conns[i] = dial(t, url, &client.Options{PingInterval: time.Hour})
		if err := conns[i].WriteMessage(ws.OpBinary, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		read(t, conns[i])
	}
	if after := runtime.NumGoroutine(); after > before+5 {
		t.Fatalf("goroutines %d → %d with %d more connections", before, after, n)
	}
}
