package client

import (
	"time"

	"github.com/gobwas/ws"
)

// keepalive runs on the runtime's timer goroutine every PingInterval (see
// Options.PingInterval): it presumes the server gone when a read has been
// waiting two intervals with nothing received, and otherwise pings a
// connection that has been silent for an interval.
func (c *Conn) keepalive() {
	if c.ended() {
		return
	}
	now := time.Now().UnixNano()
	every := int64(c.kaEvery)
	last := c.lastRecv.Load()
	if since := c.readSince.Load(); since != 0 && now-max(last, since) >= 2*every {
		_ = c.finish(&CloseError{Code: ws.StatusAbnormalClosure, Err: ErrKeepaliveTimeout})
		return
	}
	// A timer fires a little late, never early; allow for that in "silent
	// for an interval" so a ping is not put off a whole interval.
	if now-last >= every-every/8 && c.wmu.TryLock() {
		// A busy writer is left alone: the connection is not idle, and the
		// timer goroutine must not block.
		if c.w.err == nil && !c.w.closeSent {
			_ = c.nc.SetWriteDeadline(earliest(c.userWriteDeadline(), time.Now().Add(c.kaEvery)))
			_ = c.writeFrame(ws.OpPing, 0, nil)
			_ = c.nc.SetWriteDeadline(c.userWriteDeadline())
		}
		c.wmu.Unlock()
	}
	c.ka.Load().Reset(c.kaEvery)
}
