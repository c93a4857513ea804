package server

import (
	"context"
	"sync/atomic"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/codec"
	"github.com/panjf2000/gnet/v2"
)

// sharedFrame is one encoded frame written to many connections. Each event
// loop holds a reference while it writes the frame to its connections; gnet
// copies whatever a socket does not take at once, so the buffer returns to the
// pool when the last loop is done.
type sharedFrame struct {
	buf  *[]byte
	refs atomic.Int32
}

func (f *sharedFrame) release() {
	if f.refs.Add(-1) == 0 {
		putFrameBuf(f.buf)
	}
}

// Broadcast sends one message to every open connection of the server. Any
// goroutine; it never blocks. The message is encoded once and the same bytes
// are written to every connection by its own event loop, with no per-recipient
// copy or allocation (gnet copies only what a slow socket does not accept
// at once, and the write-queue limit bounds that). payload is copied before
// Broadcast returns.
func (s *Server) Broadcast(op ws.OpCode, payload []byte) error {
	return s.broadcast(op, payload, nil)
}

// broadcast writes the frame to every open connection for which keep (if
// non-nil) returns true. keep runs on the connection's loop.
func (s *Server) broadcast(op ws.OpCode, payload []byte, keep func(*Conn) bool) error {
	if op.IsControl() && len(payload) > codec.MaxControlPayload {
		return ErrControlTooLong
	}
	s.mu.Lock()
	loops := s.loops
	s.mu.Unlock()
	if len(loops) == 0 {
		return nil
	}
	f := &sharedFrame{buf: getFrameBuf(codec.HeaderSize(len(payload), false) + len(payload))}
	*f.buf = codec.AppendFrame((*f.buf)[:0], op, true, payload)
	f.refs.Store(int32(len(loops)))
	for _, l := range loops {
		err := l.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			l.writeShared(f, len(payload), keep)
			return nil
		}))
		if err != nil {
			f.release()
		}
	}
	return nil
}

// writeShared writes a shared frame to the loop's open connections.
func (l *loop) writeShared(f *sharedFrame, n int, keep func(*Conn) bool) {
	defer f.release()
	frame := *f.buf
	l.each(func(c *Conn) {
		if c.state != stateOpen || (keep != nil && !keep(c)) {
			return
		}
		l.stats.msgsOut++
		l.stats.bytesOut += uint64(n)
		_, _ = c.gc.Write(frame)
		l.checkQueue(c)
	})
}
