//go:build linux

package loop_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/megaws/megaws/client"
	"github.com/megaws/megaws/client/loop"
	"github.com/megaws/megaws/codec"
	"github.com/megaws/megaws/server"
)

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// block is two periods of a 251-byte pattern, so any window of 251 fits.
var block = func() []byte {
	b := make([]byte, 2*251)
	for i := range b {
		b[i] = byte(i % 251 * 7)
	}
	return b
}()

// payload fills p with seq and then a window of the pattern chosen by seq
// (copies, not a byte loop: the race detector makes byte loops slow).
func payload(p []byte, seq uint64) []byte {
	binary.LittleEndian.PutUint64(p, seq)
	win := block[seq%251:][:251]
	for i := 8; i < len(p); i += copy(p[i:], win) {
	}
	return p
}

// state is what pingPong keeps per connection, in Conn.Context.
type state struct{ sent, got uint64 }

// pingPong sends one message per connection at open and another after each
// verified echo, until each connection has had rounds round trips, then
// closes it.
type pingPong struct {
	loop.NopHandler
	op     ws.OpCode
	size   int
	rounds uint64
	buf    []byte
	want   []byte
	done   *atomic.Int64
}

func (h *pingPong) send(c *loop.Conn) {
	st := c.Context().(*state)
	c.Send(h.op, payload(h.buf, st.sent))
	st.sent++
}

func (h *pingPong) OnOpen(c *loop.Conn) {
	c.SetContext(&state{})
	h.send(c)
}

func (h *pingPong) OnMessage(c *loop.Conn, op ws.OpCode, p []byte) {
	if op == ws.OpPong {
		return
	}
	st := c.Context().(*state)
	if op != h.op || !bytes.Equal(p, payload(h.want, st.got)) {
		c.Abort(fmt.Errorf("echo %d differs", st.got))
		return
	}
	st.got++
	if st.got < h.rounds {
		h.send(c)
		return
	}
	h.done.Add(1)
	c.Close(ws.StatusNormalClosure, "")
}

// echoServer is a plain server (gobwas/ws primitives, a goroutine per
// connection) that echoes every frame, or corrupts each echo, or answers
// the handshake with a wrong accept.
func echoServer(t *testing.T, badAccept, corrupt bool) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				br := bufio.NewReader(nc)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				key := []byte(req.Header.Get("Sec-WebSocket-Key"))
				if badAccept {
					key = append(key, 'x')
				}
				if _, err := nc.Write(codec.AppendUpgradeResponse(nil, key, "", "")); err != nil {
					return
				}
				for {
					var f ws.Frame
					if f.Header, err = ws.ReadHeader(br); err != nil {
						return
					}
					f.Payload = make([]byte, f.Header.Length)
					if _, err := io.ReadFull(br, f.Payload); err != nil {
						return
					}
					ws.Cipher(f.Payload, f.Header.Mask, 0)
					if corrupt && len(f.Payload) > 8 {
						f.Payload[len(f.Payload)-1] ^= 0x20
					}
					if _, err := nc.Write(codec.AppendFrame(nil, f.Header.OpCode, true, f.Payload)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestEchoVerified(t *testing.T) {
	addr := echoServer(t, false, false)
	for _, size := range []int{8, 64, 125, 126, 1024, 65535, 65536, 300_000} {
		var done atomic.Int64
		p, err := loop.New(loop.Config{
			Addr:      addr,
			Loops:     2,
			SourceIPs: []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")},
		}, func(*loop.Loop) loop.Handler {
			return &pingPong{op: ws.OpBinary, size: size, rounds: 5, buf: make([]byte, size), want: make([]byte, size), done: &done}
		})
		if err != nil {
			t.Fatal(err)
		}
		n := int64(50)
		if size > 10_000 {
			n = 10 // large frames are slow under the race detector
		}
		p.Dial(int(n))
		waitFor(t, "echoes", 30*time.Second, func() bool { c := p.Counters(); return c.Closed+c.Aborted == n })
		c := p.Counters()
		p.Close()
		if c.Errors() != 0 || c.Recv != n*5 || done.Load() != n {
			t.Fatalf("size %d: counters %+v, errors %v", size, c, p.Errors())
		}
	}
}

func TestWrongByteAborts(t *testing.T) {
	var closed atomic.Int64
	h := &abortCounter{pingPong: pingPong{op: ws.OpBinary, size: 64, rounds: 3, buf: make([]byte, 64), want: make([]byte, 64), done: new(atomic.Int64)}, closed: &closed}
	p, err := loop.New(loop.Config{Addr: echoServer(t, false, true)}, func(*loop.Loop) loop.Handler { return h })
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Dial(3)
	waitFor(t, "aborts", 5*time.Second, func() bool { return p.Counters().Aborted == 3 })
	if c := p.Counters(); c.Recv != 3 || c.Open != 0 || c.Dropped != 0 || closed.Load() != 3 {
		t.Fatalf("counters %+v, OnClose %d", c, closed.Load())
	}
	if errs := p.Errors(); errs["echo 0 differs"] != 3 {
		t.Fatalf("errors %v", errs)
	}
}

type abortCounter struct {
	pingPong
	closed *atomic.Int64
}

func (h *abortCounter) OnClose(c *loop.Conn, err error) {
	if err != nil && err.Error() == "echo 0 differs" {
		h.closed.Add(1)
	}
}

func TestBadAcceptFails(t *testing.T) {
	p, err := loop.New(loop.Config{Addr: echoServer(t, true, false)}, func(*loop.Loop) loop.Handler { return loop.NopHandler{} })
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Dial(4)
	waitFor(t, "failures", 5*time.Second, func() bool { return p.Counters().Failed == 4 })
	if c := p.Counters(); c.Established != 0 {
		t.Fatalf("counters %+v", c)
	}
}

func TestRefusedFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p, err := loop.New(loop.Config{Addr: addr}, func(*loop.Loop) loop.Handler { return loop.NopHandler{} })
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Dial(2)
	waitFor(t, "failures", 5*time.Second, func() bool { return p.Counters().Failed == 2 })
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []loop.Config{
		{Addr: "localhost:80"},
		{Addr: "[::1]:80"},
		{Addr: "127.0.0.1:80", Header: http.Header{"Sec-WebSocket-Key": {"x"}}},
		{Addr: "127.0.0.1:80", Header: http.Header{"X-A": {"a\r\nb: c"}}},
	} {
		if p, err := loop.New(cfg, func(*loop.Loop) loop.Handler { return loop.NopHandler{} }); err == nil {
			p.Close()
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

// TestIdleHoldsAndCloses holds 2000 connections to megaws on one loop
// with no goroutine per connection (on either side), and closes them in
// order.
func TestIdleHoldsAndCloses(t *testing.T) {
	addr := megaws(t, &scripted{}, server.Config{})
	time.Sleep(20 * time.Millisecond)
	g0 := runtime.NumGoroutine()
	p, err := loop.New(loop.Config{Addr: addr, SourceIPs: []netip.Addr{netip.MustParseAddr("127.0.0.5")}}, func(*loop.Loop) loop.Handler { return loop.NopHandler{} })
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const n = 2000
	p.Dial(n)
	waitFor(t, "open", 20*time.Second, func() bool { return p.Counters().Open == n })
	if g := runtime.NumGoroutine() - g0; g > 5 {
		t.Errorf("goroutines grew by %d for %d connections", g, n)
	}
	p.CloseAll()
	waitFor(t, "closed", 20*time.Second, func() bool { return p.Counters().Closed == n })
	if c := p.Counters(); c.Errors() != 0 {
		t.Fatalf("counters %+v %v", c, p.Errors())
	}
}

// megaws runs an in-process megaws server.
func megaws(t *testing.T, h server.Handler, cfg server.Config) string {
	t.Helper()
	cfg.Loops = 1
	s := server.New(h, cfg)
	errc := make(chan error, 1)
	go func() { errc <- s.ListenAndServe("127.0.0.1:0") }()
	select {
	case <-s.Ready():
	case err := <-errc:
		t.Fatalf("ListenAndServe: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = s.Stop(ctx)
		<-errc
	})
	return s.Addr().String()
}

// scripted answers each message: "close" closes with 4001, "ping" pings,
// "big" sends a 2 MiB message, anything else is echoed. It records the
// Origin of each upgrade.
type scripted struct {
	server.BaseHandler
	origin atomic.Value
}

func (h *scripted) OnUpgrade(c *server.Conn, r *server.Request) error {
	h.origin.Store(r.Header("Origin"))
	return nil
}

func (h *scripted) OnMessage(c *server.Conn, op ws.OpCode, p []byte) {
	switch string(p) {
	case "close":
		_ = c.Close(4001, "bye")
	case "ping":
		_ = c.Ping([]byte("hi"))
		_ = c.WriteMessage(ws.OpText, []byte("pinged"))
	case "big":
		_ = c.WriteMessage(ws.OpBinary, make([]byte, 2<<20))
	default:
		_ = c.WriteMessage(op, p)
	}
}

// recorder collects what a loop's handler sees.
type recorder struct {
	loop.NopHandler
	mu     sync.Mutex
	msgs   []string
	ops    []ws.OpCode
	closes []error
}

func (r *recorder) OnMessage(c *loop.Conn, op ws.OpCode, p []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, string(p))
	r.ops = append(r.ops, op)
}

func (r *recorder) OnClose(c *loop.Conn, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closes = append(r.closes, err)
}

func (r *recorder) numCloses() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.closes)
}

func (r *recorder) lastClose() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.closes) == 0 {
		return nil
	}
	return r.closes[len(r.closes)-1]
}

func TestAgainstMegaws(t *testing.T) {
	h := &scripted{}
	addr := megaws(t, h, server.Config{})
	rec := &recorder{}
	p, err := loop.New(loop.Config{Addr: addr, Header: http.Header{"Origin": {"https://bots.example"}}, MaxMessageSize: 1 << 20},
		func(*loop.Loop) loop.Handler { return rec })
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	send := func(op ws.OpCode, s string) *loop.Conn {
		var c *loop.Conn
		p.Loops()[0].Do(func() {
			c = p.Loops()[0].Open()[0]
			c.Send(op, []byte(s))
		})
		return c
	}
	p.Dial(1)
	waitFor(t, "open", 5*time.Second, func() bool { return p.Counters().Open == 1 })
	if o, _ := h.origin.Load().(string); o != "https://bots.example" {
		t.Errorf("server saw Origin %q", o)
	}
	var hs time.Duration
	p.Loops()[0].Do(func() { hs = p.Loops()[0].Open()[0].HandshakeDuration() })
	if hs <= 0 {
		t.Errorf("HandshakeDuration %v", hs)
	}

	send(ws.OpText, "héllo")
	send(ws.OpBinary, "\x00\x01")
	send(ws.OpText, "ping")
	waitFor(t, "echoes", 5*time.Second, func() bool { return p.Counters().Recv == 3 })
	rec.mu.Lock()
	if fmt.Sprint(rec.msgs) != "[héllo \x00\x01 pinged]" || rec.ops[0] != ws.OpText || rec.ops[1] != ws.OpBinary {
		t.Errorf("got %q %v", rec.msgs, rec.ops)
	}
	rec.mu.Unlock()
	waitFor(t, "server ping", 5*time.Second, func() bool { return p.Counters().Pings == 1 })
	p.Loops()[0].Do(func() { p.Loops()[0].Open()[0].Ping([]byte("p1")) })
	waitFor(t, "pong", 5*time.Second, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return rec.ops[len(rec.ops)-1] == ws.OpPong && rec.msgs[len(rec.msgs)-1] == "p1"
	})

	// The server closes: the loop answers and reports the code.
	send(ws.OpText, "close")
	waitFor(t, "close", 5*time.Second, func() bool { return rec.numCloses() == 1 })
	var ce *client.CloseError
	if err := rec.lastClose(); !errors.As(err, &ce) || ce.Code != 4001 || ce.Reason != "bye" || !ce.Remote {
		t.Fatalf("OnClose got %v", err)
	}

	// A message over MaxMessageSize: 1009.
	p.Dial(1)
	waitFor(t, "open", 5*time.Second, func() bool { return p.Counters().Open == 1 })
	send(ws.OpText, "big")
	waitFor(t, "1009", 5*time.Second, func() bool { return rec.numCloses() == 2 })
	if err := rec.lastClose(); client.CloseStatus(err) != ws.StatusMessageTooBig {
		t.Fatalf("OnClose got %v", err)
	}

	// An orderly close with a code.
	p.Dial(1)
	waitFor(t, "open", 5*time.Second, func() bool { return p.Counters().Open == 1 })
	p.Loops()[0].Do(func() { p.Loops()[0].Open()[0].Close(4100, "done") })
	waitFor(t, "closed", 5*time.Second, func() bool { return rec.numCloses() == 3 })
	if err := rec.lastClose(); err != nil {
		t.Fatalf("orderly close: OnClose got %v", err)
	}
	c := p.Counters()
	if c.Established != 3 || c.Open != 0 || c.Failed != 0 || c.Aborted != 0 || c.Dropped != 2 || c.ProtocolErrors != 1 || c.Closed != 1 {
		t.Fatalf("counters %+v", c)
	}
}

// TestProtocolErrorsFromServer: frames that break the RFC fail the
// connection with the RFC's code.
func TestProtocolErrorsFromServer(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame []byte
		code  ws.StatusCode
	}{
		{name: "invalid UTF-8", frame: codec.AppendFrame(nil, ws.OpText, true, []byte{0xc3, 0x28}), code: 1007},
		{name: "UTF-8 split then broken", frame: codec.AppendFrame(codec.AppendFrame(nil, ws.OpText, false, []byte{0xe2}), ws.OpContinuation, true, []byte{0x41}), code: 1007},
		{name: "reserved bits", frame: []byte{0xc2, 0}, code: 1002},
		{name: "masked", frame: codec.AppendFrameMasked(nil, ws.OpBinary, true, []byte("x"), [4]byte{1, 2, 3, 4}), code: 1002},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			got := make(chan []byte, 1)
			go func() {
				nc, err := ln.Accept()
				if err != nil {
					return
				}
				defer nc.Close()
				br := bufio.NewReader(nc)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				resp := codec.AppendUpgradeResponse(nil, []byte(req.Header.Get("Sec-WebSocket-Key")), "", "")
				_, _ = nc.Write(append(resp, tc.frame...))
				h, err := ws.ReadHeader(br)
				if err != nil {
					got <- nil
					return
				}
				b := make([]byte, h.Length)
				_, _ = io.ReadFull(br, b)
				ws.Cipher(b, h.Mask, 0)
				got <- b
			}()
			rec := &recorder{}
			p, err := loop.New(loop.Config{Addr: ln.Addr().String()}, func(*loop.Loop) loop.Handler { return rec })
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			p.Dial(1)
			waitFor(t, "failure", 5*time.Second, func() bool { return rec.numCloses() == 1 })
			if err := rec.lastClose(); client.CloseStatus(err) != tc.code {
				t.Fatalf("OnClose got %v, want %d", err, tc.code)
			}
			if b := <-got; len(b) != 2 || ws.StatusCode(binary.BigEndian.Uint16(b)) != tc.code {
				t.Fatalf("server got close payload %v", b)
			}
		})
	}
}
