package main_test

import (
	"bufio"
	"context"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// scrape fetches /metrics from the admin listener and returns every sample by
// its name and labels as printed ("megaws_closes_total{code=\"1000\"}").
func scrape(t *testing.T, admin string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: status %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("GET /metrics: Content-Type %q, want the text exposition format", ct)
	}
	samples := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("bad sample line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample value in %q: %v", line, err)
		}
		samples[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read /metrics: %v", err)
	}
	return samples
}

// waitMetric scrapes until sample reaches want (close codes are counted when
// the server's side of the close completes, a moment after the client's).
func waitMetric(t *testing.T, admin, sample string, want float64) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		m := scrape(t, admin)
		if m[sample] == want {
			return m
		}
		if time.Now().After(deadline) {
			got, ok := m[sample]
			t.Fatalf("%s = %v (present %v), want %v", sample, got, ok, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMetrics(t *testing.T) {
	admin := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	addr := startMegaws(t, "--admin", admin, "--loops", "2", "--log-level", "warn")
	waitForPort(t, admin, 5*time.Second)

	m := scrape(t, admin)
	for name, want := range map[string]float64{
		"megaws_connections":               0,
		"megaws_event_loops":               2,
		"megaws_handshakes_accepted_total": 0,
		"megaws_messages_received_total":   0,
		"megaws_write_queue_drops_total":   0,
		"megaws_memory_releases_total":     0,
		"megaws_budget_drops_total":        0,
		"megaws_read_queue_drops_total":    0,
		"megaws_queued_bytes":              0,
	} {
		if got, ok := m[name]; !ok || got != want {
			t.Errorf("fresh server: %s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	for _, name := range []string{"go_goroutines", "process_open_fds", "process_resident_memory_bytes"} {
		if _, ok := m[name]; !ok {
			t.Errorf("%s missing: the Go and process collectors are not registered", name)
		}
	}

	// A WebSocket client that echoes five messages and closes cleanly.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, _, err := ws.Dial(ctx, "ws://"+addr+"/")
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	const msgs, size = 5, 100
	payload := []byte(strings.Repeat("m", size))
	for i := range msgs {
		if err := wsutil.WriteClientText(conn, payload); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		got, err := wsutil.ReadServerText(conn)
		if err != nil || len(got) != size {
			t.Fatalf("echo %d: %d bytes, %v", i, len(got), err)
		}
	}
	// The loops publish their counters after writing the answers: the
	// client may read an echo a moment before a scrape counts it.
	for name, want := range map[string]float64{
		"megaws_connections":               1,
		"megaws_handshakes_accepted_total": 1,
		"megaws_messages_received_total":   msgs,
		"megaws_received_bytes_total":      msgs * size,
		"megaws_messages_sent_total":       msgs,
		"megaws_sent_bytes_total":          msgs * size,
	} {
		waitMetric(t, admin, name, want)
	}
	if err := wsutil.WriteClientMessage(conn, ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye")); err != nil {
		t.Fatalf("write close: %v", err)
	}
	_, _ = io.Copy(io.Discard, conn) // the server echoes the close and hangs up
	_ = conn.Close()

	// A plain GET on the WebSocket port: 426 Upgrade Required.
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("plain GET: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("plain GET: status %d, want 426", resp.StatusCode)
	}

	// An unmasked client frame: close 1002 (RFC 6455 §5.1).
	conn2, _, _, err := ws.Dial(ctx, "ws://"+addr+"/")
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if err := ws.WriteFrame(conn2, ws.NewTextFrame([]byte("unmasked"))); err != nil {
		t.Fatalf("write unmasked frame: %v", err)
	}
	// Read the close frame itself: the server closes TCP right after it
	// (RFC 6455 §7.1.7), so a client that answers it may see a broken pipe.
	_ = conn2.SetReadDeadline(time.Now().Add(5 * time.Second))
	h, err := ws.ReadHeader(conn2)
	closeBody := make([]byte, max(h.Length, 0))
	if err == nil {
		_, err = io.ReadFull(conn2, closeBody)
	}
	if err != nil || h.OpCode != ws.OpClose {
		t.Errorf("after an unmasked frame: %v (opcode %v), want a close frame", err, h.OpCode)
	} else if code, _ := ws.ParseCloseFrameData(closeBody); code != ws.StatusProtocolError {
		t.Errorf("after an unmasked frame: close %d, want 1002", code)
	}
	_ = conn2.Close()

	waitMetric(t, admin, `megaws_closes_total{code="1002"}`, 1)
	m = waitMetric(t, admin, "megaws_connections", 0)
	for name, want := range map[string]float64{
		"megaws_handshakes_accepted_total":                                2,
		`megaws_handshakes_rejected_total{status="426"}`:                  1,
		`megaws_closes_total{code="1000"}`:                                1,
		`megaws_closes_total{code="1002"}`:                                1,
		`megaws_protocol_errors_total{kind="client_frame_is_not_masked"}`: 1,
		"megaws_messages_received_total":                                  msgs,
		"megaws_write_queue_drops_total":                                  0,
		"megaws_event_loops":                                              2,
		"megaws_connections":                                              0,
		"megaws_received_bytes_total":                                     msgs * size,
	} {
		if got, ok := m[name]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	// /healthz is a page served, not a refusal.
	resp, err = http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	_ = resp.Body.Close()
	m = waitMetric(t, admin, `megaws_http_served_total{status="200"}`, 1)
	if _, ok := m[`megaws_handshakes_rejected_total{status="200"}`]; ok {
		t.Errorf("a served /healthz is counted as a rejected handshake")
	}
	// The loop that served the first connection reports its lag.
	for _, name := range []string{`megaws_loop_lag_seconds{loop="0"}`, `megaws_loop_lag_max_seconds{loop="0"}`} {
		if _, ok := m[name]; !ok {
			t.Errorf("%s missing", name)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if strings.HasPrefix(k, "megaws_") {
			t.Logf("%s %v", k, m[k])
		}
	}
}
