package server_test

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/server"
)

// panicky panics in the callback named by where; the paths and messages of a
// connection say when. Everything else echoes.
type panicky struct {
	recorder
	where string
}

func (h *panicky) OnUpgrade(c *server.Conn, r *server.Request) error {
	if h.where == "OnUpgrade" && r.Path() == "/boom" {
		panic("boom in OnUpgrade")
	}
	return nil
}

func (h *panicky) OnOpen(c *server.Conn) {
	h.recorder.OnOpen(c)
	if c.Path() != "/boom" {
		return
	}
	switch h.where {
	case "OnOpen":
		panic("boom in OnOpen")
	case "Conn.AfterFunc":
		c.AfterFunc(time.Millisecond, func(*server.Conn) { panic("boom in a timer") })
	case "Conn.Do":
		go func() { _ = c.Do(func(*server.Conn) { panic(errors.New("boom in Do")) }) }()
	case "Loop.AfterFunc":
		c.Loop().AfterFunc(time.Millisecond, func() { panic("boom in a loop timer") })
	}
}

func (h *panicky) OnMessage(c *server.Conn, op ws.OpCode, p []byte) {
	if string(p) == "boom" && h.where == "OnMessage" {
		_ = c.WriteMessage(ws.OpText, []byte("half an answer"))
		panic("boom in OnMessage")
	}
	_ = c.WriteMessage(op, p)
}

func (h *panicky) OnClose(c *server.Conn, err error) {
	h.recorder.OnClose(c, err)
	if h.where == "OnClose" && c.Path() == "/boom" {
		panic("boom in OnClose")
	}
}

func (h *panicky) ServeHTTP(r *server.Request) (int, string, []byte) {
	if h.where == "ServeHTTP" && r.Path() == "/boom" {
		panic("boom in ServeHTTP")
	}
	return 0, "", nil
}

type tickPanic struct {
	echo
	mu    sync.Mutex
	ticks int
}

func (h *tickPanic) OnTick(*server.Loop) {
	h.mu.Lock()
	h.ticks++
	h.mu.Unlock()
	panic("boom in OnTick")
}

// syncBuffer is a log destination shared by the loops and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestPanicRecovered panics in every kind of user code megaws runs. The
// panicking connection gets the RFC's answer (close 1011, or HTTP 500 before
// the upgrade), the panic is logged with its stack and counted, and the
// loop's other connections go on as if nothing happened.
func TestPanicRecovered(t *testing.T) {
	cases := []struct {
		where string
		want  string // "1011", "500", "none" (the panicking connection is not affected)
	}{
		{where: "OnUpgrade", want: "500"},
		{where: "ServeHTTP", want: "500"},
		{where: "OnOpen", want: "1011"},
		{where: "OnMessage", want: "1011"},
		{where: "Conn.AfterFunc", want: "1011"},
		{where: "Conn.Do", want: "1011"},
		{where: "Loop.AfterFunc", want: "none"},
		{where: "OnClose", want: "none"},
	}
	for _, tc := range cases {
		t.Run(tc.where, func(t *testing.T) {
			logs := &syncBuffer{}
			h := &panicky{recorder: *newRecorder(), where: tc.where}
			s, addr := startServer(t, h, server.Config{Loops: 1, Logger: slog.New(slog.NewTextHandler(logs, nil))})
			healthy := dialRaw(t, addr)
			healthy.handshake("/")
			checkEcho(t, healthy, "before")

			c := dialRaw(t, addr)
			switch tc.want {
			case "500":
				if tc.where == "ServeHTTP" {
					c.write([]byte("GET /boom HTTP/1.1\r\nHost: x\r\n\r\n"))
				} else {
					c.write([]byte(upgradeRequest("/boom", "")))
				}
				if resp := c.response(); resp.StatusCode != 500 {
					t.Fatalf("status %d, want 500", resp.StatusCode)
				}
			case "1011":
				c.handshake("/boom")
				if tc.where == "OnMessage" {
					c.writeFrame(ws.OpText, true, []byte("boom"))
					if f := c.mustFrame(); string(f.payload) != "half an answer" {
						t.Fatalf("first frame %q", f.payload)
					}
				}
				c.expectClose(ws.StatusInternalServerError)
				_, errs := h.waitClosed(t)
				var ce *server.CloseError
				if len(errs) != 1 || !errors.As(errs[0], &ce) || ce.Code != 1011 || !errors.Is(errs[0], server.ErrHandlerPanic) {
					t.Fatalf("OnClose errors %v, want one CloseError 1011 matching ErrHandlerPanic", errs)
				}
				var pe *server.PanicError
				if !errors.As(errs[0], &pe) || pe.Callback != tc.where || len(pe.Stack) == 0 {
					t.Fatalf("PanicError %+v, want callback %s with a stack", pe, tc.where)
				}
			case "none":
				c.handshake("/boom")
				if tc.where == "OnClose" {
					c.closeNormal()
					h.waitClosed(t)
				} else {
					checkEcho(t, c, "still here")
				}
			}
			if !waitFor(5*time.Second, func() bool { return s.Stats().Panics == 1 }) {
				t.Fatalf("Stats.Panics %d, want 1", s.Stats().Panics)
			}
			if n := s.Stats().PanicsByCallback[tc.where]; n != 1 {
				t.Fatalf("PanicsByCallback %v, want %s: 1", s.Stats().PanicsByCallback, tc.where)
			}
			checkEcho(t, healthy, "after")
			// A new connection on the same loop works too.
			again := dialRaw(t, addr)
			again.handshake("/")
			checkEcho(t, again, "new")
			out := logs.String()
			if !strings.Contains(out, "recovered panic") || !strings.Contains(out, "callback="+tc.where) || !strings.Contains(out, "panic_test.go") {
				t.Fatalf("log lacks the panic, its callback or its stack:\n%s", out)
			}
		})
	}
}

// TestPanicOnTick: a ticker that panics every tick is logged (rate-limited)
// and the loop keeps ticking and serving.
func TestPanicOnTick(t *testing.T) {
	logs := &syncBuffer{}
	h := &tickPanic{}
	s, addr := startServer(t, h, server.Config{Loops: 1, TickInterval: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	c := dialRaw(t, addr)
	c.handshake("/")
	if !waitFor(10*time.Second, func() bool { return s.Stats().PanicsByCallback["OnTick"] >= 30 }) {
		t.Fatalf("ticks after panics: %v", s.Stats().PanicsByCallback)
	}
	checkEcho(t, c, "alive")
	if n := strings.Count(logs.String(), "recovered panic"); n > 12 {
		t.Fatalf("%d panic log lines for %d panics: the log is not rate-limited", n, s.Stats().Panics)
	}
}

// TestNoRecover: with Config.NoRecover a panic crashes the process with its
// own stack, as plain Go does (run in a child process).
func TestNoRecover(t *testing.T) {
	if os.Getenv("MEGAWS_NORECOVER_CHILD") == "1" {
		h := &panicky{recorder: *newRecorder(), where: "OnMessage"}
		_, addr := startServer(t, h, server.Config{Loops: 1, NoRecover: true})
		c := dialRaw(t, addr)
		c.handshake("/")
		c.writeFrame(ws.OpText, true, []byte("boom"))
		time.Sleep(10 * time.Second)
		t.Fatal("the panic did not crash the process")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestNoRecover$", "-test.count=1")
	cmd.Env = append(os.Environ(), "MEGAWS_NORECOVER_CHILD=1")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("child exited with %v, want a crash\n%s", err, out)
	}
	if !strings.Contains(string(out), "panic: boom in OnMessage") || !strings.Contains(string(out), "panic_test.go") {
		t.Fatalf("child output lacks the original panic and stack:\n%s", out)
	}
}

// headered answers plain GETs with extra header lines, some malformed.
type headered struct {
	server.BaseHandler
}

func (headered) ServeHTTP(r *server.Request) (int, string, []byte) {
	return 200, "text/plain", []byte("page")
}

func (headered) HTTPHeader(r *server.Request, status int) string {
	switch r.Path() {
	case "/good":
		return "X-Content-Type-Options: nosniff\r\nContent-Security-Policy: default-src 'none'\r\n"
	case "/split":
		return "X-A: 1\r\n\r\nInjected body"
	case "/boom":
		panic("boom in HTTPHeader")
	}
	return ""
}

// TestHTTPHeaderer: a responder's extra header lines are sent; malformed
// ones (that would split the response) are dropped; a panic in HTTPHeader
// answers 500 like one in ServeHTTP.
func TestHTTPHeaderer(t *testing.T) {
	_, addr := startServer(t, headered{}, server.Config{Loops: 1})
	get := func(path string) (int, string, string) {
		c := dialRaw(t, addr)
		c.write([]byte("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n"))
		resp := c.response()
		return resp.StatusCode, resp.Header.Get("X-Content-Type-Options"), resp.Header.Get("X-A")
	}
	if st, nosniff, _ := get("/good"); st != 200 || nosniff != "nosniff" {
		t.Fatalf("/good: %d %q", st, nosniff)
	}
	if st, _, xa := get("/split"); st != 200 || xa != "" {
		t.Fatalf("/split: %d, X-A %q: a malformed header was sent", st, xa)
	}
	if st, _, _ := get("/boom"); st != 500 {
		t.Fatalf("/boom: %d, want 500", st)
	}
}
