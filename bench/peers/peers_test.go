package peers

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// benchDir is the bench module, seen from this package's directory.
const benchDir = ".."

const ioTimeout = 10 * time.Second

// TestPeers builds every peer, runs it in each mode and talks to it with a
// gorilla/websocket client. JS peers need scripts/bench-peers-install.sh to
// have run; without it their subtests fail and say so.
func TestPeers(t *testing.T) {
	binDir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel) // not defer: the parallel subtests run after this function returns
	for _, p := range All() {
		t.Run(p.Name, func(t *testing.T) {
			t.Parallel()
			if err := p.Build(ctx, benchDir, binDir); err != nil {
				t.Fatal(err)
			}
			t.Run("echo", func(t *testing.T) { testEcho(t, p, binDir) })
			t.Run("broadcast", func(t *testing.T) { testBroadcast(t, p, binDir) })
			t.Run("sink", func(t *testing.T) { testSink(t, p, binDir) })
		})
	}
}

func testEcho(t *testing.T, p Peer, binDir string) {
	s := start(t, p, binDir, "echo")
	c := dial(t, s.addr, "/")
	for _, tc := range []struct {
		name    string
		op      int
		payload []byte
	}{
		{name: "text", op: websocket.TextMessage, payload: []byte("hello, megaws ✓")},
		{name: "binary 1 MiB", op: websocket.BinaryMessage, payload: randomBytes(t, 1<<20)},
		// Above nbio's 4 MiB default limit, under the 16 MiB every peer sets.
		{name: "binary 5 MiB", op: websocket.BinaryMessage, payload: randomBytes(t, 5<<20)},
	} {
		write(t, c, tc.op, tc.payload)
		expectMessage(t, c, tc.name, tc.op, tc.payload)
	}

	vars := debugVars(t, s.admin)
	want := []string{"connections", "rss"}
	if p.Kind == KindGo {
		want = []string{"connections", "goroutines"}
	}
	for _, k := range want {
		if _, ok := vars[k]; !ok {
			t.Errorf("/debug/vars has no %q: %v", k, vars)
		}
	}
	if got := vars["connections"]; got != 1 {
		t.Errorf("/debug/vars connections = %v, want 1", got)
	}
}

func testBroadcast(t *testing.T, p Peer, binDir string) {
	s := start(t, p, binDir, "broadcast")
	a := dial(t, s.addr, "/")
	b := dial(t, s.addr, "/any/path?room=1")
	waitConnections(t, s.admin, 2)

	text := []byte("from a")
	write(t, a, websocket.TextMessage, text)
	expectMessage(t, a, "a's text at a", websocket.TextMessage, text)
	expectMessage(t, b, "a's text at b", websocket.TextMessage, text)

	bin := randomBytes(t, 64<<10)
	write(t, b, websocket.BinaryMessage, bin)
	expectMessage(t, a, "b's binary at a", websocket.BinaryMessage, bin)
	expectMessage(t, b, "b's binary at b", websocket.BinaryMessage, bin)
}

func testSink(t *testing.T, p Peer, binDir string) {
	s := start(t, p, binDir, "sink")
	c := dial(t, s.addr, "/")
	write(t, c, websocket.BinaryMessage, randomBytes(t, 1<<20))
	write(t, c, websocket.TextMessage, []byte("dropped"))

	// The peer answers nothing but control frames: a ping must come back as
	// a pong, and no data message may arrive before it.
	pong := make(chan struct{})
	c.SetPongHandler(func(string) error { close(pong); return nil })
	if err := c.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(ioTimeout)); err != nil {
		t.Fatal(err)
	}
	read := make(chan error, 1)
	go func() {
		_ = c.SetReadDeadline(time.Now().Add(ioTimeout))
		op, msg, err := c.ReadMessage()
		if err == nil {
			err = fmt.Errorf("sink sent a message: opcode %d, %d bytes", op, len(msg))
		}
		read <- err
	}()
	select {
	case <-pong:
	case err := <-read:
		t.Fatalf("no pong: %v", err)
	}
	if got := debugVars(t, s.admin)["connections"]; got != 1 {
		t.Errorf("/debug/vars connections = %v, want 1", got)
	}
}

// server is a running peer.
type server struct {
	addr  string // WebSocket address from the ready line
	admin string // admin address serving /debug/vars
}

// start runs the peer in mode on a free port and stops it with SIGTERM when
// the test ends, failing the test unless it exits cleanly and printed
// exactly the one ready line.
func start(t *testing.T, p Peer, binDir, mode string) server {
	t.Helper()
	admin := freeAddr(t)
	cmd := p.Command(benchDir, binDir, "127.0.0.1:0", admin, mode, 1)
	stdout := &lineWriter{ready: make(chan string, 1)}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("%s exited with %v after SIGTERM; stderr:\n%s", p.Name, err, stderr.Bytes())
			}
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("%s did not exit within 5s of SIGTERM", p.Name)
		}
		if out := stdout.String(); strings.Count(out, "\n") != 1 {
			t.Errorf("%s printed %q on stdout, want only the ready line", p.Name, out)
		}
	})

	var line string
	select {
	case line = <-stdout.ready:
	case err := <-exited:
		exited <- err
		t.Fatalf("%s exited before it was ready (%v); stderr:\n%s", p.Name, err, stderr.Bytes())
	case <-time.After(15 * time.Second):
		t.Fatalf("%s printed no ready line within 15s; stderr:\n%s", p.Name, stderr.Bytes())
	}
	addr, ok := strings.CutPrefix(line, "listening on ")
	if !ok {
		t.Fatalf("%s ready line %q, want \"listening on ADDR\"", p.Name, line)
	}
	return server{addr: addr, admin: admin}
}

// lineWriter is a process's stdout: it keeps everything and hands the first
// line to ready.
type lineWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	ready chan string
	sent  bool
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if line, _, ok := bytes.Cut(w.buf.Bytes(), []byte("\n")); ok && !w.sent {
		w.sent = true
		w.ready <- string(line)
	}
	return len(p), nil
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// dial connects offering permessage-deflate, and fails the test if the peer
// accepts it: every peer must have compression off.
func dial(t *testing.T, addr, path string) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: ioTimeout, EnableCompression: true}
	c, resp, err := d.Dial("ws://"+addr+path, nil)
	if err != nil {
		t.Fatalf("dial %s%s: %v", addr, path, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
		t.Errorf("peer negotiated %q, want no extension", ext)
	}
	return c
}

func write(t *testing.T, c *websocket.Conn, op int, payload []byte) {
	t.Helper()
	_ = c.SetWriteDeadline(time.Now().Add(ioTimeout))
	if err := c.WriteMessage(op, payload); err != nil {
		t.Fatal(err)
	}
}

func expectMessage(t *testing.T, c *websocket.Conn, what string, op int, payload []byte) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(ioTimeout))
	gotOp, got, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if gotOp != op || !bytes.Equal(got, payload) {
		t.Fatalf("%s: got opcode %d and %d bytes, want opcode %d and the %d bytes sent", what, gotOp, len(got), op, len(payload))
	}
}

// debugVars fetches /debug/vars and returns its numeric top-level values.
func debugVars(t *testing.T, admin string) map[string]float64 {
	t.Helper()
	var resp *http.Response
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err = http.Get("http://" + admin + "/debug/vars")
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw map[string]json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatalf("/debug/vars: %v", err)
	}
	vars := make(map[string]float64)
	for k, v := range raw {
		var f float64
		if json.Unmarshal(v, &f) == nil {
			vars[k] = f
		}
	}
	return vars
}

func waitConnections(t *testing.T, admin string, n float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := debugVars(t, admin)["connections"]
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/debug/vars connections = %v, want %v", got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestVersionsMatchManifests keeps the table's versions equal to what
// bench/go.mod and bench/peers/package.json pin.
func TestVersionsMatchManifests(t *testing.T) {
	gomod, err := os.ReadFile(benchDir + "/go.mod")
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := os.ReadFile("package.json")
	if err != nil {
		t.Fatal(err)
	}
	var manifest struct{ Dependencies map[string]string }
	if err := json.Unmarshal(pkg, &manifest); err != nil {
		t.Fatal(err)
	}
	for _, p := range All() {
		switch p.Kind {
		case KindGo:
			m := regexp.MustCompile(`(?m)^\s*(?:require\s+)?` + regexp.QuoteMeta(p.Library) + `\s+(\S+)`).FindSubmatch(gomod)
			if m == nil || string(m[1]) != p.Version {
				t.Errorf("%s: table says %s %s, go.mod has %q", p.Name, p.Library, p.Version, m)
			}
		case KindJS:
			if !pinned(manifest.Dependencies, p) {
				t.Errorf("%s: table says %s@%s, package.json has %v", p.Name, p.Library, p.Version, manifest.Dependencies)
			}
		default:
			t.Errorf("%s: unknown kind %q", p.Name, p.Kind)
		}
	}
}

// pinned reports whether deps pins p's package at p's exact version, under
// its own name or as an npm: alias.
func pinned(deps map[string]string, p Peer) bool {
	for name, spec := range deps {
		if (name == p.Library && spec == p.Version) || spec == "npm:"+p.Library+"@"+p.Version {
			return true
		}
	}
	return false
}
