package server_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/server"
)

// authEcho echoes and refuses upgrades without a token.
type authEcho struct{ echo }

func (authEcho) OnUpgrade(c *server.Conn, r *server.Request) error {
	if r.RawQuery() != "token=ok" {
		return server.Reject(401, "token required")
	}
	return nil
}

// startMounted runs a net/http server whose mux mounts megaws at /ws next to
// other routes; megaws runs without a listener of its own (Start).
func startMounted(t *testing.T, h server.Handler, cfg server.Config) (*server.Server, string) {
	t.Helper()
	s := server.New(h, cfg)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", s)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "fine") })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
		_ = s.Stop(ctx)
	})
	return s, ln.Addr().String()
}

// TestServeHTTPMount: megaws mounted on a net/http mux at /ws answers
// upgrades exactly as on its own listener (OnUpgrade refusals included) and
// serves them on its loops, while the mux's other routes keep working.
func TestServeHTTPMount(t *testing.T) {
	s, addr := startMounted(t, authEcho{}, server.Config{Loops: 2})
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "fine" {
		t.Fatalf("/healthz: %q", body)
	}
	resp, err = http.Get("http://" + addr + "/ws")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 426 {
		t.Fatalf("plain GET /ws: %d, want 426", resp.StatusCode)
	}
	refused := dialRaw(t, addr)
	refused.write([]byte(upgradeRequest("/ws", "")))
	if r := refused.response(); r.StatusCode != 401 {
		t.Fatalf("upgrade without a token: %d, want 401", r.StatusCode)
	}
	var cs []*rawConn
	for range 4 {
		c := dialRaw(t, addr)
		c.handshake("/ws?token=ok")
		cs = append(cs, c)
	}
	for i, c := range cs {
		checkEcho(t, c, strings.Repeat("m", 100*i+1))
	}
	d := ws.Dialer{Timeout: 5 * time.Second}
	nc, _, _, err := d.Dial(context.Background(), "ws://"+addr+"/ws?token=ok")
	if err != nil {
		t.Fatalf("gobwas dialer through the mount: %v", err)
	}
	nc.Close()
	if st := s.Stats(); st.Handshakes != 5 || st.Rejected[401] != 1 {
		t.Fatalf("Stats %+v", st)
	}
	for _, c := range cs {
		c.closeNormal()
	}
}

// TestServeHTTPWithListener: the same server may have its own listener and a
// mount at once.
func TestServeHTTPWithListener(t *testing.T) {
	s, native := startServer(t, echo{}, server.Config{Loops: 2})
	mux := http.NewServeMux()
	mux.Handle("/ws", s)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()
	a, b := dialRaw(t, native), dialRaw(t, ln.Addr().String())
	a.handshake("/")
	b.handshake("/ws")
	checkEcho(t, a, "native")
	checkEcho(t, b, "mounted")
}

func benchmarkHandshakes(b *testing.B, addr, path string) {
	req := []byte(upgradeRequest(path, ""))
	buf := make([]byte, 256)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if n, err := c.Read(buf); err != nil || !strings.HasPrefix(string(buf[:n]), "HTTP/1.1 101") {
			b.Fatalf("%q %v", buf[:n], err)
		}
		c.Close()
	}
}

// BenchmarkHandshakeNative and BenchmarkHandshakeMounted compare the cost of
// an upgrade on megaws's own listener and through a net/http mount (client
// and servers in one process: compare them side by side).
func BenchmarkHandshakeNative(b *testing.B) {
	_, addr := startServer(b, echo{}, server.Config{Loops: 1})
	benchmarkHandshakes(b, addr, "/")
}

func BenchmarkHandshakeMounted(b *testing.B) {
	s := server.New(echo{}, server.Config{Loops: 1})
	if err := s.Start(); err != nil {
		b.Fatal(err)
	}
	defer s.Stop(context.Background()) //nolint:errcheck
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	hs := &http.Server{Handler: s}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()
	benchmarkHandshakes(b, ln.Addr().String(), "/ws")
}
