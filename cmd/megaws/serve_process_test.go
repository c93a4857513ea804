package main_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/client"
)

// upgradeStatus sends a WebSocket upgrade with the given Origin header ("" for
// none) and returns the response status.
func upgradeStatus(t *testing.T, addr, origin string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	req := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(key) + "\r\nSec-WebSocket-Version: 13\r\n"
	if origin != "" {
		req += "Origin: " + origin + "\r\n"
	}
	if _, err := c.Write([]byte(req + "\r\n")); err != nil {
		t.Fatalf("write upgrade: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("upgrade with Origin %q: %v", origin, err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// TestAllowedOrigins runs megaws serve with and without --allowed-origins: with
// the list, a listed Origin is upgraded and an unlisted one or none gets 403
// (a browser page of another site must not open a socket with the user's
// cookies); without it, every upgrade is accepted.
func TestAllowedOrigins(t *testing.T) {
	addr := startMegaws(t, "--log-level", "warn", "--allowed-origins", "https://a.example, http://b.example:8080")
	for _, tc := range []struct {
		origin string
		want   int
	}{
		{origin: "https://a.example", want: http.StatusSwitchingProtocols},
		{origin: "http://b.example:8080", want: http.StatusSwitchingProtocols},
		{origin: "https://evil.example", want: http.StatusForbidden},
		{origin: "https://a.example.evil.example", want: http.StatusForbidden},
		{origin: "http://a.example", want: http.StatusForbidden},
		{origin: "null", want: http.StatusForbidden},
		{origin: "", want: http.StatusForbidden},
	} {
		if got := upgradeStatus(t, addr, tc.origin); got != tc.want {
			t.Errorf("--allowed-origins set, Origin %q: status %d, want %d", tc.origin, got, tc.want)
		}
	}

	open := startMegaws(t, "--log-level", "warn")
	for _, origin := range []string{"https://evil.example", ""} {
		if got := upgradeStatus(t, open, origin); got != http.StatusSwitchingProtocols {
			t.Errorf("no --allowed-origins, Origin %q: status %d, want 101", origin, got)
		}
	}
}

// TestAdminExposedWarning runs megaws serve --admin on every interface with
// the default log level: stderr must warn that /debug/pprof and /metrics are
// exposed to the network.
func TestAdminExposedWarning(t *testing.T) {
	cmd := exec.Command(megawsBinary(t), "serve", "--addr", "127.0.0.1:0", "--admin", ":0", "--loops", "1")
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("SIGTERM: %v", err)
		}
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("megaws did not exit cleanly on SIGTERM: %v\n%s", err, out.String())
			}
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("megaws still running 5 s after SIGTERM; killed\n%s", out.String())
		}
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		s := out.String()
		if strings.Contains(s, "listening on") && strings.Contains(s, "admin listening") {
			for _, want := range []string{"level=WARN", "reachable from the network", "/debug/pprof", "/metrics"} {
				if !strings.Contains(s, want) {
					t.Errorf("output has no %q:\n%s", want, s)
				}
			}
			return
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("megaws exited early: %v\n%s", err, s)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("megaws did not start within 15 s:\n%s", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStopRightAfterListening sends SIGTERM the moment megaws serve prints
// its "listening on" line: the signal must already be caught (a graceful
// stop, exit 0), not kill the process.
func TestStopRightAfterListening(t *testing.T) {
	for i := range 10 {
		cmd := exec.Command(megawsBinary(t), "serve", "--addr", "127.0.0.1:0", "--loops", "1", "--log-level", "warn")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr lockedBuffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		for sc.Scan() && !strings.Contains(sc.Text(), "listening on") {
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatalf("run %d: SIGTERM: %v", i, err)
		}
		for sc.Scan() {
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run %d: SIGTERM right after the listening line: %v, want exit 0\n%s", i, err, stderr.String())
			}
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("run %d: still running 10 s after SIGTERM", i)
		}
	}
}

// TestRateAndSubprotocolFlags runs megaws serve with --rate-messages and
// --subprotocols: the server selects the first of its subprotocols the client
// offers, echoes within the rate, drops the excess without --rate-close, and
// with --rate-close ends a flooding connection with 1008.
func TestRateAndSubprotocolFlags(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	addr := startMegaws(t, "--log-level", "warn", "--rate-messages", "5", "--rate-burst", "5", "--subprotocols", "game.v2, game.v1")
	c, _, err := client.Dial(ctx, "ws://"+addr+"/", &client.Options{Subprotocols: []string{"game.v1", "game.v2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ws.StatusNormalClosure, "")
	if got := c.Subprotocol(); got != "game.v2" {
		t.Errorf("subprotocol %q, want game.v2 (the server's preference among the offered)", got)
	}
	const sent = 50
	for i := range sent {
		if err := c.WriteMessage(ws.OpText, []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	// The burst is 5 and the refill 5/s: of 50 messages sent at once, about 5
	// come back; a marker sent after the bucket refills proves the connection
	// survived the excess.
	time.Sleep(1200 * time.Millisecond)
	if err := c.WriteMessage(ws.OpText, []byte("marker")); err != nil {
		t.Fatal(err)
	}
	echoed := 0
	for {
		_, p, err := c.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("after %d echoes: %v", echoed, err)
		}
		if string(p) == "marker" {
			break
		}
		echoed++
	}
	if echoed < 1 || echoed > 10 {
		t.Errorf("%d of %d messages echoed under --rate-messages 5 --rate-burst 5, want about 5", echoed, sent)
	}

	strict := startMegaws(t, "--log-level", "warn", "--rate-messages", "5", "--rate-burst", "5", "--rate-close")
	s, _, err := client.Dial(ctx, "ws://"+strict+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ws.StatusNormalClosure, "")
	for i := range sent {
		if s.WriteMessage(ws.OpText, []byte(strconv.Itoa(i))) != nil {
			break // the server may close while we still write
		}
	}
	for {
		_, _, err := s.ReadMessage(ctx)
		if err == nil {
			continue
		}
		if code := client.CloseStatus(err); code != ws.StatusPolicyViolation {
			t.Fatalf("flooding with --rate-close ended with %v (code %d), want close 1008", err, code)
		}
		break
	}
}
