package server_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/megaws/megaws/server"
)

func TestEchoRaw(t *testing.T) {
	_, addr := startServer(t, echo{}, server.Config{})
	c := dialRaw(t, addr)
	c.handshake("/")
	c.writeFrame(ws.OpText, true, []byte("hello"))
	if f := c.mustFrame(); f.h.OpCode != ws.OpText || string(f.payload) != "hello" {
		t.Fatalf("got %v %q", f.h.OpCode, f.payload)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	c.writeFrame(ws.OpBinary, true, big)
	if f := c.mustFrame(); f.h.OpCode != ws.OpBinary || !bytes.Equal(f.payload, big) {
		t.Fatalf("1 MiB echo mismatch: op %v len %d", f.h.OpCode, len(f.payload))
	}
	c.writeFrame(ws.OpText, false, []byte("frag"))
	c.writeFrame(ws.OpPing, true, []byte("p"))
	if f := c.mustFrame(); f.h.OpCode != ws.OpPong || string(f.payload) != "p" {
		t.Fatalf("pong: %v %q", f.h.OpCode, f.payload)
	}
	c.writeFrame(ws.OpContinuation, true, []byte("mented"))
	if f := c.mustFrame(); string(f.payload) != "fragmented" {
		t.Fatalf("fragmented echo %q", f.payload)
	}
	c.writeFrame(ws.OpClose, true, closePayload(4000, "bye"))
	c.expectClose(4000)
}

func TestEchoGobwasDialer(t *testing.T) {
	_, addr := startServer(t, echo{}, server.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, _, err := ws.Dial(ctx, "ws://"+addr+"/chat")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, msg := range []string{"a", "héllo wörld", string(bytes.Repeat([]byte("x"), 70000))} {
		if err := wsutil.WriteClientText(conn, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		got, op, err := wsutil.ReadServerData(conn)
		if err != nil || op != ws.OpText || string(got) != msg {
			t.Fatalf("echo: %v %v len %d", err, op, len(got))
		}
	}
}
