package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/codec"
	"github.com/megaws/megaws/server"
)

// everywhere calls every method the docs call safe from any goroutine from
// every kind of callback, and records what each call site saw.
type everywhere struct {
	server.BaseHandler
	s atomic.Pointer[server.Server]

	mu   sync.Mutex
	seen map[string]string // call site -> "" or the first problem
	tick atomic.Bool
}

func (h *everywhere) exercise(site string, c *server.Conn) {
	s := h.s.Load()
	problem := ""
	note := func(format string, args ...any) {
		if problem == "" {
			problem = fmt.Sprintf(format, args...)
		}
	}
	room := s.Room("everyone")
	if c != nil {
		// Join before the loop has run it, then count: Len may or may not
		// see it yet, but it must answer at once.
		if err := room.Join(c); err != nil && !errors.Is(err, server.ErrClosed) {
			note("Join: %v", err)
		}
	}
	_ = room.Len()
	st := s.Stats()
	if c != nil && st.Handshakes < 1 {
		note("Stats from %s left the calling loop out: %+v", site, st)
	}
	_ = s.Conns()
	if err := room.Publish(ws.OpText, []byte("room")); err != nil {
		note("Publish: %v", err)
	}
	if err := room.PublishExcept(c, ws.OpText, []byte("room")); err != nil {
		note("PublishExcept: %v", err)
	}
	if err := s.Broadcast(ws.OpText, []byte("all")); err != nil {
		note("Broadcast: %v", err)
	}
	if c != nil {
		if err := s.SendTo([]*server.Conn{c}, ws.OpText, []byte("to")); err != nil {
			note("SendTo: %v", err)
		}
		if err := c.Send(ws.OpText, []byte("send")); err != nil && !errors.Is(err, server.ErrClosed) {
			note("Send: %v", err)
		}
		if err := c.Ping([]byte("p")); err != nil && !errors.Is(err, server.ErrClosed) {
			note("Ping: %v", err)
		}
		if err := c.Do(func(*server.Conn) {}); err != nil && !errors.Is(err, server.ErrClosed) {
			note("Do: %v", err)
		}
		_, _, _, _, _ = c.ID(), c.Path(), c.Protocol(), c.Compressed(), c.Loop().Index()
		if err := room.Leave(c); err != nil && !errors.Is(err, server.ErrClosed) {
			note("Leave: %v", err)
		}
	}
	h.mu.Lock()
	if _, ok := h.seen[site]; !ok || problem != "" {
		h.seen[site] = problem
	}
	h.mu.Unlock()
}

func (h *everywhere) OnUpgrade(c *server.Conn, r *server.Request) error {
	h.exercise("OnUpgrade", nil)
	return nil
}

func (h *everywhere) OnOpen(c *server.Conn) {
	h.exercise("OnOpen", c)
	c.AfterFunc(time.Millisecond, func(c *server.Conn) { h.exercise("Conn.AfterFunc", c) })
	c.Loop().AfterFunc(time.Millisecond, func() { h.exercise("Loop.AfterFunc", nil) })
	go func() { _ = c.Do(func(c *server.Conn) { h.exercise("Conn.Do", c) }) }()
}

func (h *everywhere) OnMessage(c *server.Conn, op ws.OpCode, p []byte) {
	h.exercise("OnMessage", c)
	if string(p) == "close" {
		_ = c.Close(4000, "bye")
	}
}

func (h *everywhere) OnClose(c *server.Conn, err error) { h.exercise("OnClose", c) }

func (h *everywhere) OnTick(l *server.Loop) {
	if h.tick.CompareAndSwap(false, true) {
		h.exercise("OnTick", nil)
	}
}

func (h *everywhere) ServeHTTP(r *server.Request) (int, string, []byte) {
	h.exercise("ServeHTTP", nil)
	return 200, "text/plain", []byte("ok")
}

// TestCallsFromCallbacks: Room.Len, Stats and the other methods documented
// as safe from any goroutine answer at once from every callback kind, never
// wait for the caller's own loop and never return partial figures.
func TestCallsFromCallbacks(t *testing.T) {
	h := &everywhere{seen: map[string]string{}}
	s, addr := startServer(t, h, server.Config{Loops: 1, TickInterval: 20 * time.Millisecond})
	h.s.Store(s)
	c := dialRaw(t, addr)
	c.handshake("/")
	c.writeFrame(ws.OpText, true, []byte("hello"))
	// The connection stays open until its timers and Do have run.
	seenAll := func(sites ...string) func() bool {
		return func() bool {
			h.mu.Lock()
			defer h.mu.Unlock()
			for _, site := range sites {
				if _, ok := h.seen[site]; !ok {
					return false
				}
			}
			return true
		}
	}
	open := []string{"OnUpgrade", "OnOpen", "OnMessage", "OnTick", "Conn.AfterFunc", "Loop.AfterFunc", "Conn.Do"}
	ok := waitFor(20*time.Second, seenAll(open...))
	c.writeFrame(ws.OpText, true, []byte("close"))
	if err := c.answerClose(4000); err != nil {
		t.Fatal(err)
	}
	plain := dialRaw(t, addr)
	plain.write([]byte("GET /page HTTP/1.1\r\nHost: x\r\n\r\n"))
	if resp := plain.response(); resp.StatusCode != 200 {
		t.Fatalf("ServeHTTP status %d", resp.StatusCode)
	}
	sites := append(open, "OnClose", "ServeHTTP")
	ok = ok && waitFor(20*time.Second, seenAll(sites...))
	h.mu.Lock()
	defer h.mu.Unlock()
	if !ok {
		t.Fatalf("call sites that never completed (a loop waited for itself?): have %v", h.seen)
	}
	for _, site := range sites {
		if p := h.seen[site]; p != "" {
			t.Errorf("%s: %s", site, p)
		}
	}
}

// TestRoomLenNoDeadlock is the reported case: Room.Len from OnMessage used to
// wait for a task only its own loop could run. The loop must keep answering
// and accepting.
func TestRoomLenNoDeadlock(t *testing.T) {
	var rp atomic.Pointer[server.Room]
	h := &funcHandler{onOpen: func(c *server.Conn) { _ = rp.Load().Join(c) }, onMessage: func(c *server.Conn, op ws.OpCode, p []byte) {
		_ = c.WriteMessage(ws.OpText, []byte(fmt.Sprint(rp.Load().Len())))
	}}
	s, addr := startServer(t, h, server.Config{Loops: 1})
	room := s.Room("r")
	rp.Store(room)
	a, b := dialRaw(t, addr), dialRaw(t, addr)
	a.handshake("/")
	b.handshake("/")
	if !waitFor(5*time.Second, func() bool { return room.Len() == 2 }) {
		t.Fatalf("Len %d, want 2", room.Len())
	}
	a.writeFrame(ws.OpText, true, []byte("len?"))
	if f := a.mustFrame(); string(f.payload) != "2" {
		t.Fatalf("Len from OnMessage: %q, want 2", f.payload)
	}
	c := dialRaw(t, addr)
	c.handshake("/")
}

// funcHandler adapts functions to server.Handler.
type funcHandler struct {
	server.BaseHandler
	onOpen    func(*server.Conn)
	onMessage func(*server.Conn, ws.OpCode, []byte)
	onClose   func(*server.Conn, error)
}

func (h *funcHandler) OnOpen(c *server.Conn) {
	if h.onOpen != nil {
		h.onOpen(c)
	}
}

func (h *funcHandler) OnMessage(c *server.Conn, op ws.OpCode, p []byte) {
	if h.onMessage != nil {
		h.onMessage(c, op, p)
	}
}

func (h *funcHandler) OnClose(c *server.Conn, err error) {
	if h.onClose != nil {
		h.onClose(c, err)
	}
}

// TestStopFromCallback: Stop called from OnMessage cannot wait for its own
// loop; it returns at once and the graceful stop completes in the background.
func TestStopFromCallback(t *testing.T) {
	var s *server.Server
	returned := make(chan error, 1)
	h := &funcHandler{onMessage: func(c *server.Conn, op ws.OpCode, p []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		returned <- s.Stop(ctx)
	}}
	s = server.New(h, server.Config{Loops: 2})
	done := make(chan error, 1)
	go func() { done <- s.ListenAndServe("127.0.0.1:0") }()
	<-s.Ready()
	cs := []*rawConn{dialRaw(t, s.Addr().String()), dialRaw(t, s.Addr().String())}
	for _, c := range cs {
		c.handshake("/")
	}
	cs[0].writeFrame(ws.OpText, true, []byte("stop"))
	select {
	case err := <-returned:
		if err != nil {
			t.Fatalf("Stop from a callback: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Stop from a callback did not return: the loop waits for itself")
	}
	for _, c := range cs {
		if err := c.answerClose(ws.StatusGoingAway); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ListenAndServe: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ListenAndServe did not return after Stop from a callback")
	}
}

// TestAfterCloseAndStop: the documented answers after a connection closed
// and after the server stopped; Stats keeps its last figures.
func TestAfterCloseAndStop(t *testing.T) {
	var conn atomic.Pointer[server.Conn]
	rec := newRecorder()
	h := &funcHandler{
		onOpen:    func(c *server.Conn) { conn.Store(c) },
		onMessage: func(c *server.Conn, op ws.OpCode, p []byte) { _ = c.WriteMessage(op, p) },
		onClose:   rec.OnClose,
	}
	s := server.New(h, server.Config{Loops: 1})
	done := make(chan error, 1)
	go func() { done <- s.ListenAndServe("127.0.0.1:0") }()
	<-s.Ready()
	addr := s.Addr().String()
	c := dialRaw(t, addr)
	c.handshake("/")
	checkEcho(t, c, "one")
	first := conn.Load()
	c.closeNormal()
	rec.waitClosed(t)
	if err := first.Do(func(*server.Conn) { t.Error("Do ran on a closed connection") }); !errors.Is(err, server.ErrClosed) {
		t.Fatalf("Do after close: %v, want ErrClosed", err)
	}
	if err := first.Send(ws.OpText, []byte("x")); !errors.Is(err, server.ErrClosed) {
		t.Fatalf("Send after close: %v, want ErrClosed", err)
	}
	if err := s.Room("r").Join(first); !errors.Is(err, server.ErrClosed) {
		t.Fatalf("Join after close: %v, want ErrClosed", err)
	}
	c2 := dialRaw(t, addr)
	c2.handshake("/")
	checkEcho(t, c2, "two")
	second := conn.Load()
	before := s.Stats()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	answered := make(chan error, 1)
	go func() { answered <- c2.answerClose(ws.StatusGoingAway) }()
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := <-answered; err != nil {
		t.Fatal(err)
	}
	<-done
	for name, err := range map[string]error{
		"Broadcast":     s.Broadcast(ws.OpText, []byte("x")),
		"Publish":       s.Room("r").Publish(ws.OpText, []byte("x")),
		"PublishExcept": s.Room("r").PublishExcept(nil, ws.OpText, []byte("x")),
		"SendTo":        s.SendTo([]*server.Conn{second}, ws.OpText, []byte("x")),
		"Join":          s.Room("r").Join(second),
	} {
		if !errors.Is(err, server.ErrServerStopped) && !errors.Is(err, server.ErrClosed) {
			t.Errorf("%s after Stop: %v, want ErrServerStopped", name, err)
		}
	}
	if err := second.Do(func(*server.Conn) {}); err == nil {
		t.Error("Do after Stop returned nil")
	}
	after := s.Stats()
	if after.Handshakes != before.Handshakes || after.MessagesIn < before.MessagesIn || after.MessagesIn == 0 {
		t.Fatalf("Stats after Stop %+v, before %+v: figures lost", after, before)
	}
}

// TestConcurrentUse hammers every goroutine-safe method from many goroutines
// while the loops read frames, answer pings and close connections: run with
// -race (CI does), it proves they share no unsynchronized state with the loops.
func TestConcurrentUse(t *testing.T) {
	var mu sync.Mutex
	var conns []*server.Conn
	h := &funcHandler{
		onOpen: func(c *server.Conn) {
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		},
		onMessage: func(c *server.Conn, op ws.OpCode, p []byte) { _ = c.WriteMessage(op, p) },
	}
	s, addr := startServer(t, h, server.Config{Loops: 2, Compression: true, Subprotocols: []string{"chat"}, PingInterval: 5 * time.Millisecond})
	const n = 8
	clients := make([]*rawConn, n)
	for i := range clients {
		clients[i] = dialRaw(t, addr)
		clients[i].write([]byte(upgradeRequest("/p", "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Extensions: permessage-deflate\r\n")))
		if resp := clients[i].response(); resp.StatusCode != 101 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		go func(c *rawConn) { // drain everything the server sends
			for {
				if _, err := c.readFrame(); err != nil {
					return
				}
			}
		}(clients[i])
	}
	if !waitFor(5*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(conns) == n }) {
		t.Fatal("connections did not open")
	}
	mu.Lock()
	cs := append([]*server.Conn(nil), conns...)
	mu.Unlock()
	room := s.Room("all")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				c := cs[(g+i)%n]
				_ = room.Join(c)
				_ = c.Send(ws.OpBinary, []byte("payload that is long enough to be compressed maybe, payload payload payload"))
				_ = c.Ping(nil)
				_, _, _, _ = c.Compressed(), c.Protocol(), c.Path(), c.ID()
				_ = c.Do(func(c *server.Conn) { c.SetContext(i) })
				_ = room.Publish(ws.OpText, []byte("pub"))
				_ = s.Broadcast(ws.OpText, []byte("b"))
				_ = s.SendTo(cs[:2], ws.OpText, []byte("t"))
				_, _ = room.Len(), s.Stats()
				_ = room.Leave(c)
				if i == 50 && g == 0 {
					_ = cs[n-1].Close(1000, "")
				}
			}
		}(g)
	}
	for i := 0; i < 200; i++ {
		clients[i%(n-1)].writeFrame(ws.OpPing, true, []byte("client ping"))
		clients[i%(n-1)].writeFrame(ws.OpText, true, []byte("msg"))
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
}

// answerClose reads frames until the server's close frame, checks its code,
// answers it as a client does, and waits for the server to close TCP. It
// returns an error instead of failing, so goroutines may call it.
func (c *rawConn) answerClose(code ws.StatusCode) error {
	for {
		f, err := c.readFrame()
		if err != nil {
			return fmt.Errorf("waiting for close %d: %w", code, err)
		}
		if f.h.OpCode != ws.OpClose {
			continue
		}
		if got, _, _ := codec.ParseClose(f.payload); got != code {
			return fmt.Errorf("close code %d, want %d", got, code)
		}
		if _, err := c.Conn.Write(clientFrame(ws.OpClose, true, 0, f.payload)); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadAll(c.br); err != nil && !isReset(err) {
			return fmt.Errorf("after the close handshake: %w", err)
		}
		return nil
	}
}

// TestLoopLag: a callback that blocks its loop shows up as loop lag.
func TestLoopLag(t *testing.T) {
	blocked, release := make(chan struct{}), make(chan struct{})
	h := &funcHandler{onMessage: func(c *server.Conn, op ws.OpCode, p []byte) {
		close(blocked)
		<-release // a handler that blocks: what the figure is for
		_ = c.WriteMessage(op, p)
	}}
	s, addr := startServer(t, h, server.Config{Loops: 1})
	c := dialRaw(t, addr)
	c.handshake("/")
	c.writeFrame(ws.OpText, true, []byte("block"))
	<-blocked
	// Work queued while the loop is blocked waits for it.
	_ = s.Broadcast(ws.OpText, []byte("queued"))
	time.Sleep(300 * time.Millisecond)
	close(release)
	c.mustFrame()
	c.mustFrame()
	st := s.Stats()
	if len(st.LoopLagMax) != 1 || st.LoopLagMax[0] < 200*time.Millisecond {
		t.Fatalf("LoopLagMax %v, want >= 200ms after a 300 ms block", st.LoopLagMax)
	}
	t.Logf("loop lag %v, max %v", st.LoopLag, st.LoopLagMax)
}
