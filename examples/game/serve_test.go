package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/megaws/megaws/client"
	"github.com/megaws/megaws/examples/game/arena"
	"github.com/megaws/megaws/server"
)

// TestServeMetricsAndStop runs the command's server: /metrics on the admin
// listener has megaws's and the game's metrics, and stopping (what SIGINT
// does) tells the players, closes them with 1001 and returns.
func TestServeMetricsAndStop(t *testing.T) {
	g := arena.New(arena.Config{Server: server.Config{Loops: 2}})
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	type addrs struct{ game, admin string }
	ready := make(chan addrs, 1)
	done := make(chan error, 1)
	log := slog.New(slog.DiscardHandler)
	go func() {
		done <- run(ctx, g, "127.0.0.1:0", "127.0.0.1:0", log, func(game, admin string) { ready <- addrs{game, admin} })
	}()
	var a addrs
	select {
	case a = <-ready:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatal("not serving after 10 s")
	}

	tok, _ := arena.MintToken([]byte(arena.DemoSecret), "carol", time.Hour)
	dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := client.Dial(dctx, "ws://"+a.game+"/play?token="+tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ws.StatusNormalClosure, "")
	if _, msg, err := c.ReadMessage(dctx); err != nil || msg[0] != arena.MsgWelcome {
		t.Fatalf("first message %x, %v", msg, err)
	}

	resp, err := http.Get("http://" + a.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"\ngame_players 1\n", "\ngame_matches 1\n", "\nmegaws_connections 1\n", "\ngame_tick_seconds_count ", "\ngo_goroutines "} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
		}
	}

	stop()
	var notice bool
	for {
		_, msg, err := c.ReadMessage(dctx)
		if err != nil {
			if code := client.CloseStatus(err); code != ws.StatusGoingAway {
				t.Errorf("closed with %v (%d), want 1001", err, code)
			}
			break
		}
		if from, text, ok := arena.ParseChatFrom(msg); ok && from == 0 && string(text) == shutdownNotice {
			notice = true
		}
	}
	if !notice {
		t.Error("no shutdown notice before the close")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still running 10 s after the stop")
	}
}
