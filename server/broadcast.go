package server

import "sync/atomic"

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

// writeSharedTo writes a shared frame (payload length n) to c if it is open.
func (l *Loop) writeSharedTo(c *Conn, f *sharedFrame, n int) {
	if c.state != stateOpen || l.queueFull(c) {
		return
	}
	l.stats.msgsOut++
	l.stats.bytesOut += uint64(n)
	_, _ = c.gc.Write(*f.buf)
}
