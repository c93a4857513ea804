package main_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/codec"
)

// serverVars is the part of megaws's /debug/vars the idle test reads.
type serverVars struct {
	PID         int `json:"pid"`
	Goroutines  int `json:"goroutines"`
	Connections int `json:"connections"`
	Memstats    struct {
		HeapInuse uint64 `json:"HeapInuse"`
		Sys       uint64 `json:"Sys"`
	} `json:"memstats"`
}

func readVars(t *testing.T, admin string) serverVars {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/debug/vars")
	if err != nil {
		t.Fatalf("GET /debug/vars: %v", err)
	}
	defer resp.Body.Close()
	var v serverVars
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("decode /debug/vars: %v", err)
	}
	return v
}

// rssBytes reads VmRSS of pid from /proc.
func rssBytes(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestIdle10k holds 10,000 idle WebSocket connections on one megaws process
// (the server runs in its own process, so the test's and the server's open
// files each stay under the 20,000 cap) and checks that the server's goroutine
// count does not grow with them. It reports RSS per connection.
func TestIdle10k(t *testing.T) {
	const n = 10_000
	admin := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	addr := startMegaws(t, "--admin", admin, "--loops", "2", "--ping-interval", "-1s", "--idle-timeout", "-1s", "--log-level", "warn")
	waitForPort(t, admin, 5*time.Second)

	// Warm up the runtime with a few connections so the baseline is not the
	// freshly started process.
	warm := dialIdle(t, addr, 100)
	closeAll(warm)
	time.Sleep(200 * time.Millisecond)
	base := readVars(t, admin)
	rss0 := rssBytes(t, base.PID)

	start := time.Now()
	conns := dialIdle(t, addr, n)
	defer closeAll(conns)
	elapsed := time.Since(start)

	var after serverVars
	deadline := time.Now().Add(10 * time.Second)
	for {
		after = readVars(t, admin)
		if after.Connections >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if after.Connections != n {
		t.Fatalf("server reports %d connections, want %d", after.Connections, n)
	}
	if grew := after.Goroutines - base.Goroutines; grew > 2 {
		t.Fatalf("goroutines grew from %d to %d with %d connections", base.Goroutines, after.Goroutines, n)
	}
	rss1 := rssBytes(t, after.PID)
	perConn := float64(rss1-rss0) / n
	heapPer := (float64(after.Memstats.HeapInuse) - float64(base.Memstats.HeapInuse)) / n
	t.Logf("%d idle connections in %v; server goroutines %d -> %d; RSS %.1f MiB -> %.1f MiB = %.0f B/conn; heap in use %.0f B/conn",
		n, elapsed.Round(time.Millisecond), base.Goroutines, after.Goroutines,
		float64(rss0)/(1<<20), float64(rss1)/(1<<20), perConn, heapPer)
	// A goroutine per connection alone would cost >= 8 KiB of stack.
	if perConn > 4096 {
		t.Fatalf("server RSS per idle connection %.0f B, want well under a goroutine stack", perConn)
	}

	// The connections are alive: every hundredth one still echoes.
	for i := 0; i < n; i += 100 {
		echoOnce(t, conns[i], []byte("still here "+strconv.Itoa(i)))
	}
}

func dialIdle(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	buf := make([]byte, 4096)
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			closeAll(conns)
			t.Fatalf("dial %d: %v", i, err)
		}
		var k [16]byte
		_, _ = rand.Read(k[:])
		key := base64.StdEncoding.EncodeToString(k[:])
		req := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte(req)); err != nil {
			t.Fatalf("write handshake %d: %v", i, err)
		}
		// The 101 response is small and arrives in one segment on loopback;
		// read until the blank line to be sure.
		got := 0
		for !bytes.Contains(buf[:got], []byte("\r\n\r\n")) {
			m, err := c.Read(buf[got:])
			if err != nil {
				t.Fatalf("read handshake %d: %v", i, err)
			}
			got += m
		}
		want := string(codec.AppendAccept(nil, []byte(key)))
		if !bytes.HasPrefix(buf, []byte("HTTP/1.1 101")) || !bytes.Contains(buf[:got], []byte(want)) {
			t.Fatalf("handshake %d: %q", i, buf[:got])
		}
		_ = c.SetDeadline(time.Time{})
		conns = append(conns, c)
	}
	return conns
}

func echoOnce(t *testing.T, c net.Conn, msg []byte) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(codec.AppendFrameMasked(nil, ws.OpText, true, msg, [4]byte{9, 8, 7, 6})); err != nil {
		t.Fatalf("write: %v", err)
	}
	br := bufio.NewReader(c)
	h, err := ws.ReadHeader(br)
	if err != nil {
		t.Fatalf("read echo header: %v", err)
	}
	p := make([]byte, h.Length)
	if _, err := br.Read(p); err != nil || !bytes.Equal(p, msg) {
		t.Fatalf("echo %q, got %q (%v)", msg, p, err)
	}
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		_ = c.Close()
	}
}
