//go:build linux

package loop_test

import (
	"time"

	"github.com/gobwas/ws"

	"github.com/megaws/megaws/client/loop"
)

// bot sends a message on open and answers every message it gets.
type bot struct {
	loop.NopHandler
	replies int
}

func (b *bot) OnOpen(c *loop.Conn) { c.Send(ws.OpText, []byte(`{"join":"lobby"}`)) }

func (b *bot) OnMessage(c *loop.Conn, op ws.OpCode, p []byte) {
	if op == ws.OpPong {
		return
	}
	b.replies++
	c.Send(ws.OpText, []byte(`{"ack":true}`))
}

func ExampleNew() {
	p, err := loop.New(loop.Config{Addr: "127.0.0.1:8080", Loops: 2},
		func(*loop.Loop) loop.Handler { return &bot{} })
	if err != nil {
		return
	}
	defer p.Close()
	p.Dial(10_000)
	time.Sleep(time.Minute)
	c := p.Counters()
	_ = c.Open // connections open now; c.Errors() counts what went wrong
	p.CloseAll()
}
