//go:build linux

package loop

import (
	"testing"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"

	"github.com/megaws/megaws/codec"
)

// echoState and benchEcho are what a load test keeps and does per message:
// a counter in the connection's Context, and the echo sent back.
type echoState struct{ next uint64 }

type benchEcho struct{ NopHandler }

func (benchEcho) OnMessage(c *Conn, op ws.OpCode, p []byte) {
	if op != ws.OpPong {
		c.Context().(*echoState).next++
		c.Send(op, p)
	}
}

// echoRig is an open connection whose input is fed by hand and whose
// output goes to /dev/null: the loop's per-message path without a server.
func echoRig(tb testing.TB, frames int) (c *Conn, in []byte) {
	l, err := newLoop(0, Config{Addr: "127.0.0.1:9"}.withDefaults())
	if err != nil {
		tb.Fatal(err)
	}
	l.h = benchEcho{}
	fd, err := unix.Open("/dev/null", unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = unix.Close(fd)
		_ = unix.Close(l.epfd)
		_ = unix.Close(l.evfd)
	})
	c = &Conn{loop: l, fd: fd, state: stateOpen, oidx: -1}
	c.SetContext(&echoState{})
	l.conns[fd] = c
	for i := range frames {
		op := ws.OpBinary
		if i%2 == 1 {
			op = ws.OpText
		}
		in = codec.AppendFrame(in, op, true, make([]byte, 1024))
	}
	return c, in
}

// BenchmarkEcho measures parsing 64 server frames of 1 KiB, handing each
// to the handler, masking the echo and writing it out.
func BenchmarkEcho(b *testing.B) {
	c, in := echoRig(b, 64)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for range b.N {
		c.feed(in)
		c.loop.flush()
	}
}
