package server_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/server"
)

// TestLogLevels: at Info, normal traffic logs nothing after startup; at
// Debug, refused upgrades and protocol violations are logged with the
// connection's id, remote address and the status or close code.
func TestLogLevels(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		logs := &syncBuffer{}
		_, addr := startServer(t, echo{}, server.Config{Loops: 1, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: level}))})
		started := strings.Count(logs.String(), "\n")
		c := dialRaw(t, addr)
		c.handshake("/")
		checkEcho(t, c, "hello")
		c.closeNormal()
		bad := dialRaw(t, addr)
		bad.write([]byte("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"))
		if resp := bad.response(); resp.StatusCode != 426 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		v := dialRaw(t, addr)
		v.handshake("/")
		v.write(clientFrame(ws.OpText, true, 0x2, []byte("rsv"))) // RSV bit without an extension
		v.expectClose(ws.StatusProtocolError)
		out := logs.String()
		lines := strings.Split(strings.TrimSpace(out), "\n")[started:]
		if level == slog.LevelInfo {
			if len(lines) != 0 && lines[0] != "" {
				t.Fatalf("at Info, traffic and bad peers logged:\n%s", strings.Join(lines, "\n"))
			}
			continue
		}
		for _, want := range []string{`msg="megaws: upgrade refused"`, "status=426", `msg="megaws: protocol violation"`, "code=1002", "conn=", "remote=127.0.0.1"} {
			if !strings.Contains(out, want) {
				t.Fatalf("at Debug the log lacks %s:\n%s", want, out)
			}
		}
	}
}
