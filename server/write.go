package server

import (
	"errors"
	"log/slog"
	"sync"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/codec"
)

// The write path. Everything here runs on the connection's loop.
//
// A connection whose socket takes what it is sent is written straight
// through gnet (corked: the frames of one input event go out with one
// write). When the socket is full gnet keeps the rest, copied; from then on
// the connection is congested and megaws queues its output itself (see
// outqueue.go): a shared broadcast frame is queued as a reference, not a
// copy, and the queue is handed to gnet again once gnet's own buffer is
// empty. Every queued byte counts against the connection's MaxWriteQueue and
// the server's MaxQueuedBytes.

// closeNow closes c's TCP connection from its loop; gnet flushes what is
// buffered and calls OnClose synchronously.
func (l *Loop) closeNow(c *Conn) {
	if c.state == stateGone {
		return
	}
	_ = l.el.Close(c.gc)
}

// startClose begins the closing handshake on the loop: close frame out
// (after what is queued), state closing, close timer armed.
func (l *Loop) startClose(c *Conn, code ws.StatusCode, reason string, cause error) {
	if c.state == stateHandshake {
		c.state = stateClosed
		l.closeNow(c)
		return
	}
	if c.state != stateOpen {
		return
	}
	c.extState().closeErr = &CloseError{Code: code, Reason: reason, Err: cause}
	l.out = codec.AppendClose(l.out, code, reason)
	c.state = stateClosing
	c.lastRead = l.dueAfter(l.s.cfg.CloseTimeout) // the close deadline
	if l.corked != c {
		l.flush(c)
	}
	if c.state == stateClosing {
		l.arm(c)
	}
}

// fail fails the connection after a protocol violation (RFC 6455 §7.1.7): the
// close frame with the violation's code goes out, then TCP is closed. Output
// still queued for the connection is dropped: the close frame goes right
// after what gnet holds.
func (l *Loop) fail(c *Conn, err error) {
	code := codec.CloseCode(err)
	l.dropQueue(c)
	if c.state == stateOpen || c.state == stateClosing {
		l.out = codec.AppendClose(l.out, code, "")
	}
	if c.state == stateOpen || c.ext == nil || c.ext.closeErr == nil {
		c.extState().closeErr = &CloseError{Code: code, Err: err}
	}
	c.state = stateClosed
	var pe *codec.ProtocolError
	if errors.As(err, &pe) {
		l.stats.protocolError(pe.Reason)
		l.logConn(slog.LevelDebug, "megaws: protocol violation", c, "code", int(code), "err", pe.Reason)
	}
}

// failWith fails c with a close code of megaws's choosing (a policy, not a
// protocol violation): the close frame goes out, then TCP is closed.
func (l *Loop) failWith(c *Conn, code ws.StatusCode, reason string, err error) {
	l.dropQueue(c)
	if c.state == stateOpen || c.state == stateClosing {
		l.out = codec.AppendClose(l.out, code, reason)
		c.extState().closeErr = &CloseError{Code: code, Reason: reason, Err: err}
	}
	c.state = stateClosed
}

// writeFrame writes one frame to c from its loop: into the cork buffer when c
// is the connection being served, directly otherwise.
func (l *Loop) writeFrame(c *Conn, op ws.OpCode, payload []byte) {
	if l.corked != c || len(l.out) == 0 {
		// Corked frames are checked once, before the first.
		if l.queueFull(c) {
			return
		}
	}
	l.stats.msgsOut++
	l.stats.bytesOut += uint64(len(payload))
	var rsv byte
	if c.compress(op, len(payload)) {
		payload, rsv = l.deflateTo(c, payload), rsv1
		defer func() {
			if cap(l.zbuf) > 4*corkLimit {
				l.zbuf = nil
			}
		}()
	}
	if len(payload) <= corkLimit {
		l.out = codec.AppendHeader(l.out, ws.Header{Fin: true, Rsv: rsv, OpCode: op, Length: int64(len(payload))})
		l.out = append(l.out, payload...)
		if l.corked != c {
			l.flush(c)
		}
		return
	}
	if len(l.out) > 0 {
		l.flush(c)
	}
	hdr := codec.AppendHeader(l.hdr[:0], ws.Header{Fin: true, Rsv: rsv, OpCode: op, Length: int64(len(payload))})
	l.iov[0], l.iov[1] = hdr, payload
	l.writeBorrowed(c, l.iov[:])
	l.iov[0], l.iov[1] = nil, nil
}

// flush writes the cork buffer to c; it is free again on return.
func (l *Loop) flush(c *Conn) {
	if len(l.out) == 0 {
		return
	}
	if c.state != stateGone {
		l.iov[0] = l.out
		l.writeBorrowed(c, l.iov[:1])
		l.iov[0] = nil
	}
	if cap(l.out) > 4*corkLimit {
		l.out = nil
	} else {
		l.out = l.out[:0]
	}
}

// writeBorrowed writes bytes that c does not own (the loop's buffers, a
// handler's payload): through gnet when c is not congested, else as a copy
// at the end of its queue.
func (l *Loop) writeBorrowed(c *Conn, iov [][]byte) {
	if l.congestedNow(c) {
		n := 0
		for _, b := range iov {
			n += len(b)
		}
		buf := getFrameBuf(n)
		for _, b := range iov {
			*buf = append(*buf, b...)
		}
		l.enqueue(c, outItem{b: buf})
		return
	}
	if len(iov) == 1 {
		_, _ = c.gc.Write(iov[0])
	} else {
		_, _ = c.gc.Writev(iov)
	}
	l.afterWrite(c)
}

// writeOwned writes a pooled frame buffer that the write path owns (Send):
// queued as it is when c is congested, returned to the pool otherwise.
func (l *Loop) writeOwned(c *Conn, buf *[]byte) {
	if l.congestedNow(c) {
		l.enqueue(c, outItem{b: buf})
		return
	}
	_, _ = c.gc.Write(*buf)
	putFrameBuf(buf)
	l.afterWrite(c)
}

// snapshotFrame encodes a snapshot message for c into a pooled buffer,
// compressed when c compresses.
func (l *Loop) snapshotFrame(c *Conn, op ws.OpCode, payload []byte) *[]byte {
	fb := getFrameBuf(codec.HeaderSize(len(payload), false) + len(payload))
	if c.compress(op, len(payload)) {
		*fb = l.appendDeflatedFrame((*fb)[:0], c, op, payload)
	} else {
		*fb = codec.AppendFrame((*fb)[:0], op, true, payload)
	}
	return fb
}

// writeSnapshot writes a snapshot frame (owned buffer): when c lags, it
// replaces the snapshot still waiting in c's queue, or waits there itself.
// Under context takeover it is an ordinary message (see deflate.go).
func (l *Loop) writeSnapshot(c *Conn, fb *[]byte) {
	if l.corked == c && len(l.out) > 0 {
		l.flush(c) // what was written before goes first
	}
	if c.takeover() {
		l.writeOwned(c, fb)
		return
	}
	if !l.congestedNow(c) {
		_, _ = c.gc.Write(*fb)
		putFrameBuf(fb)
		l.afterWrite(c)
		return
	}
	if c.state == stateGone {
		putFrameBuf(fb)
		return
	}
	o := c.ext.out
	if it := o.queuedSnapshot(); it != nil {
		old := it.b
		d := len(*fb) - len(*old)
		o.bytes += d
		l.queued += d
		it.b = fb
		putFrameBuf(old)
		l.stats.snapshotsReplaced.Add(1)
		return
	}
	l.enqueue(c, outItem{b: fb, snap: true})
}

// queueFull reports whether c's unsent bytes exceed MaxWriteQueue and, if so,
// closes it (1008, ErrWriteQueueFull). It runs before each write, so one
// message larger than the limit still goes out whole, while a peer that
// stops reading holds at most the limit plus one message.
func (l *Loop) queueFull(c *Conn) bool {
	if c.state != stateOpen && c.state != stateClosing {
		return true
	}
	if l.unsent(c) <= l.s.cfg.MaxWriteQueue {
		return false
	}
	l.dropSlow(c, ErrWriteQueueFull)
	return true
}

// dropSlow closes a peer that does not read what it is sent (cause
// ErrWriteQueueFull or ErrServerQueueFull): its queued output is dropped,
// a close frame with 1008 is offered to the socket after what gnet holds
// (it reaches the peer only if it reads again), and the TCP connection is
// closed. OnClose gets 1008 and cause.
func (l *Loop) dropSlow(c *Conn, cause error) {
	if cause == ErrServerQueueFull {
		l.stats.budgetDrops.Add(1)
	} else {
		l.stats.queueDrops.Add(1)
	}
	l.dropQueue(c)
	if l.corked == c {
		l.out = l.out[:0]
	}
	if c.state == stateOpen || c.state == stateClosing {
		_, _ = c.gc.Write(codec.AppendClose(l.hdr[:0], ws.StatusPolicyViolation, ""))
	}
	reason := "write queue full"
	if cause == ErrServerQueueFull {
		reason = "server output budget exhausted"
	}
	l.logConn(slog.LevelWarn, "megaws: slow reader dropped", c, "code", 1008, "reason", reason, "unsent", l.unsent(c))
	c.extState().closeErr = &CloseError{Code: ws.StatusPolicyViolation, Reason: reason, Err: cause}
	if c.state != stateGone {
		c.state = stateClosed
	}
	if l.corked != c {
		l.closeNow(c)
	}
}

// rsv1 is the RSV1 bit in ws.Header.Rsv: "per-message compressed" (RFC 7692 §6).
const rsv1 = 0x4

// frameBufs recycles frame buffers: Send's, and the copies queued for
// congested connections.
var frameBufs sync.Pool

func getFrameBuf(n int) *[]byte {
	if v, ok := frameBufs.Get().(*[]byte); ok && cap(*v) >= n {
		*v = (*v)[:0]
		return v
	}
	b := make([]byte, 0, max(n, 256))
	return &b
}

func putFrameBuf(b *[]byte) {
	if cap(*b) <= 64<<10 {
		frameBufs.Put(b)
	}
}
