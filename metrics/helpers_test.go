package metrics

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/codec"
	"github.com/megaws/megaws/server"
	"github.com/megaws/megaws/server/servertest"
	"github.com/prometheus/client_golang/prometheus"
)

// TestMain fails the run when the tests leave goroutines behind (a server
// not stopped, a scrape that never returned).
func TestMain(m *testing.M) {
	flag.Parse()
	before := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<20)
			fmt.Fprintf(os.Stderr, "FAIL: %d goroutines leaked by the tests:\n%s\n", n-before, buf[:runtime.Stack(buf, true)])
			code = 1
		}
	}
	os.Exit(code)
}

// gather scrapes reg and returns every sample by its name and labels as the
// text format prints them (`megaws_closes_total{code="1000"}`, labels sorted
// by name), and every metric family's type ("counter", "gauge") by name.
func gather(t *testing.T, reg prometheus.Gatherer) (samples map[string]float64, types map[string]string) {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	samples, types = map[string]float64{}, map[string]string{}
	for _, mf := range fams {
		types[mf.GetName()] = strings.ToLower(mf.GetType().String())
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			slices.Sort(labels)
			key := mf.GetName()
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			var v float64
			switch {
			case m.GetCounter() != nil:
				v = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				v = m.GetGauge().GetValue()
			default:
				t.Fatalf("%s: neither a counter nor a gauge", key)
			}
			samples[key] = v
		}
	}
	return samples, types
}

// waitSample gathers until sample has the value want (a close is counted
// when the server's side of it completes, a moment after the client saw it).
func waitSample(t *testing.T, reg prometheus.Gatherer, sample string, want float64) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, _ := gather(t, reg)
		if got, ok := m[sample]; ok && got == want {
			return m
		}
		if time.Now().After(deadline) {
			got, ok := m[sample]
			t.Fatalf("%s = %v (present %v), want %v", sample, got, ok, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitSamples gathers until every sample has its value in want (the loops
// publish their counters after writing the answers, so a client may see an
// echo a moment before the scrape counts it).
func waitSamples(t *testing.T, reg prometheus.Gatherer, want map[string]float64) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, _ := gather(t, reg)
		var wrong []string
		for k, x := range want {
			if got, ok := m[k]; !ok || got != x {
				wrong = append(wrong, fmt.Sprintf("%s = %v (present %v), want %v", k, got, ok, x))
			}
		}
		if len(wrong) == 0 {
			return m
		}
		if time.Now().After(deadline) {
			slices.Sort(wrong)
			t.Fatalf("after 10 s:\n%s", strings.Join(wrong, "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startServer runs a server on 127.0.0.1:0 for the test and stops it at cleanup.
func startServer(t *testing.T, h server.Handler, cfg server.Config) (*server.Server, string) {
	t.Helper()
	s := servertest.Start(t, h, cfg)
	return s, servertest.Addr(s)
}

// rawConn is a TCP client that speaks HTTP and WebSocket by hand, so a test
// can send exactly the bytes it chooses, broken ones included.
type rawConn struct {
	t *testing.T
	net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	return &rawConn{t: t, Conn: c, br: bufio.NewReader(c)}
}

// get sends a GET for path, an upgrade request if upgrade is set, and
// returns the response status.
func (c *rawConn) get(path string, upgrade bool) int {
	c.t.Helper()
	req := "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	if upgrade {
		req += "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	}
	c.write([]byte(req + "\r\n"))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.t.Fatalf("GET %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// upgrade opens a WebSocket connection on path.
func (c *rawConn) upgrade(path string) {
	c.t.Helper()
	if status := c.get(path, true); status != http.StatusSwitchingProtocols {
		c.t.Fatalf("upgrade %s: status %d", path, status)
	}
}

func (c *rawConn) write(b []byte) {
	c.t.Helper()
	if _, err := c.Conn.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// send writes one masked client frame, as RFC 6455 §5.1 requires.
func (c *rawConn) send(op ws.OpCode, payload []byte) {
	c.t.Helper()
	c.write(codec.AppendFrameMasked(nil, op, true, payload, [4]byte{7, 1, 8, 2}))
}

// readFrame reads one server frame.
func (c *rawConn) readFrame() (ws.Header, []byte) {
	c.t.Helper()
	h, err := ws.ReadHeader(c.br)
	if err != nil {
		c.t.Fatalf("read frame: %v", err)
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(c.br, p); err != nil {
		c.t.Fatalf("read frame: %v", err)
	}
	return h, p
}

// expectClose reads a close frame with code.
func (c *rawConn) expectClose(code ws.StatusCode) {
	c.t.Helper()
	h, p := c.readFrame()
	if h.OpCode != ws.OpClose {
		c.t.Fatalf("frame %v, want a close frame", h.OpCode)
	}
	if got, _, _ := codec.ParseClose(p); got != code {
		c.t.Fatalf("close %d, want %d", got, code)
	}
}
