package demo_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/megaws/megaws/cmd/megaws/internal/demo"
	"github.com/megaws/megaws/server"
)

func start(t *testing.T) string {
	t.Helper()
	d := demo.New()
	s := server.New(d, server.Config{Loops: 2})
	stop := d.Start(s)
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
		stop()
	})
	return s.Addr().String()
}

// msg is any server message; only the fields a test looks at.
type msg struct {
	T     string `json:"t"`
	You   uint64 `json:"you"`
	Color int    `json:"color"`
	W, H  int
	Cells string `json:"cells"`
	I     int    `json:"i"`
	C     int    `json:"c"`
	By    uint64 `json:"by"`
	Conns int64  `json:"conns"`
	Loops int    `json:"loops"`
}

type player struct {
	t *testing.T
	net.Conn
	r io.Reader // the hello may arrive with the 101 and sit in the dialer's buffer
}

func (p *player) Read(b []byte) (int, error) { return p.r.Read(b) }

func join(t *testing.T, addr string) (*player, msg) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, br, _, err := ws.Dial(ctx, "ws://"+addr+"/ws")
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	p := &player{t: t, Conn: c, r: c}
	if br != nil {
		p.r = io.MultiReader(br, c)
	}
	return p, p.next("hello")
}

// next returns the next message of type typ, skipping the others (stats
// arrive every second in between).
func (p *player) next(typ string) msg {
	p.t.Helper()
	for {
		b, err := wsutil.ReadServerText(p)
		if err != nil {
			p.t.Fatalf("waiting for %q: %v", typ, err)
		}
		var m msg
		if err := json.Unmarshal(b, &m); err != nil {
			p.t.Fatalf("bad message %q: %v", b, err)
		}
		if m.T == typ {
			return m
		}
	}
}

func (p *player) send(s string) {
	p.t.Helper()
	if err := wsutil.WriteClientText(p, []byte(s)); err != nil {
		p.t.Fatalf("send: %v", err)
	}
}

func TestBoard(t *testing.T) {
	addr := start(t)
	a, ha := join(t, addr)
	b, hb := join(t, addr)
	if ha.W != demo.Width || ha.H != demo.Height || len(ha.Cells) != demo.Width*demo.Height || strings.Trim(ha.Cells, "0") != "" {
		t.Fatalf("hello: %dx%d with %d cells %q, want an empty %dx%d board", ha.W, ha.H, len(ha.Cells), ha.Cells, demo.Width, demo.Height)
	}
	if ha.Color == hb.Color || ha.You == hb.You {
		t.Fatalf("players got the same identity: %+v %+v", ha, hb)
	}

	// Junk is ignored: not JSON, out of the board, unknown move.
	a.send("not json")
	a.send(`{"t":"paint","i":-1}`)
	a.send(`{"t":"paint","i":640}`)
	a.send(`{"t":"fly","i":3}`)
	a.send(`{"t":"paint","i":3}`)
	for _, p := range []*player{a, b} {
		if m := p.next("paint"); m.I != 3 || m.C != ha.Color || m.By != ha.You {
			t.Fatalf("paint: got %+v, want cell 3 color %d by %d", m, ha.Color, ha.You)
		}
	}
	b.send(`{"t":"paint","i":4}`)
	b.send(`{"t":"erase","i":3}`)
	for _, p := range []*player{a, b} {
		if m := p.next("paint"); m.I != 4 || m.C != hb.Color {
			t.Fatalf("paint: got %+v, want cell 4 color %d", m, hb.Color)
		}
		if m := p.next("paint"); m.I != 3 || m.C != 0 {
			t.Fatalf("erase: got %+v, want cell 3 color 0", m)
		}
	}

	// A late player gets the board as it is.
	_, hc := join(t, addr)
	if got, want := hc.Cells[3:5], "0"+string("0123456789abc"[hb.Color]); got != want {
		t.Fatalf("late hello: cells 3-4 = %q, want %q", got, want)
	}
	if m := a.next("stats"); m.Conns != 3 || m.Loops != 2 {
		t.Fatalf("stats: %+v, want 3 connections on 2 loops", m)
	}

	a.send(`{"t":"clear"}`)
	b.next("clear")
	_, hd := join(t, addr)
	if strings.Trim(hd.Cells, "0") != "" {
		t.Fatalf("board not empty after clear: %q", hd.Cells)
	}
}

func TestPage(t *testing.T) {
	addr := start(t)
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" || !strings.Contains(string(body), `new WebSocket(`) {
		t.Fatalf("GET /: %d %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
	resp, err = http.Get("http://" + addr + "/other")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("GET /other: %d, want megaws's 426", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, _, err := ws.Dial(ctx, "ws://"+addr+"/elsewhere"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("upgrade on /elsewhere: %v, want a 404 refusal", err)
	}
}

// The demo's header lines reach the browser through server.HTTPHeaderer.
var _ server.HTTPHeaderer = (*demo.Demo)(nil)

// TestPageSecurityHeaders: the page comes with its Content-Security-Policy
// (the inline script and style by hash, the socket to its own host) and
// X-Content-Type-Options: nosniff; other answers do not get the page's policy.
func TestPageSecurityHeaders(t *testing.T) {
	addr := start(t)
	for _, method := range []string{"GET", "HEAD"} {
		req, _ := http.NewRequest(method, "http://"+addr+"/", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		csp := resp.Header.Get("Content-Security-Policy")
		if csp == "" {
			t.Errorf("%s /: no Content-Security-Policy (the server must send an HTTPResponder's header lines: server.HTTPHeaderer)", method)
		}
		for _, want := range []string{"default-src 'none'", "script-src 'sha256-", "style-src 'sha256-",
			"connect-src 'self' ws://" + addr + " wss://" + addr, "frame-ancestors 'none'"} {
			if csp != "" && !strings.Contains(csp, want) {
				t.Errorf("%s /: Content-Security-Policy %q has no %q", method, csp, want)
			}
		}
		if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s /: X-Content-Type-Options %q, want nosniff", method, got)
		}
		if resp.StatusCode != 200 || len(resp.Header.Values("Content-Type")) != 1 {
			t.Errorf("%s /: status %d, Content-Type %q", method, resp.StatusCode, resp.Header.Values("Content-Type"))
		}
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Security-Policy") != "" {
		t.Errorf("GET /healthz: status %d, Content-Security-Policy %q; want megaws's own 200 without the page's headers", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
	}
}
