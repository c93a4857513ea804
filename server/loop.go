package server

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/codec"
	"github.com/panjf2000/gnet/v2"
)

// corkLimit is the largest payload copied into the loop's output buffer;
// larger payloads are written with writev, header and payload side by side.
const corkLimit = 32 << 10

// Loop is megaws's state for one gnet event loop. Only that loop's goroutine
// touches it, except the fields documented otherwise.
type Loop struct {
	s  *Server
	el gnet.EventLoop

	// out collects the frames written while the loop handles one
	// connection's input (corked), sent with one write afterwards.
	out    []byte
	corked *Conn
	hdr    [codec.MaxHeaderSize]byte
	iov    [2][]byte

	idx int
	gid uint64 // goroutine id of the loop

	clock int64  // nanoseconds since the server started, as of the current event (refresh)
	now   uint32 // clock in timer ticks (wraps)
	// heads are the first connections of the wheel's slots, the parked and
	// the pending list (nil-terminated, doubly linked through Conn.next and
	// Conn.prev): 8 bytes a slot, where a sentinel Conn would cost 128.
	heads    [wheelSize + 2]*Conn
	used     [wheelSize / 64]uint64 // bit i: wheel slot i is not empty
	cursor   int64                  // absolute tick up to which the wheel has fired
	conns    int
	timers   timerHeap
	nextTick uint32 // wheel tick of the next Ticker.OnTick

	// wakeTimer runs advanceFn (built once) on the loop at wake, the
	// absolute tick of the loop's earliest deadline (never: none).
	wakeTimer *time.Timer
	wake      int64
	advanceFn func()
	wakeups   atomic.Uint64 // times advance ran (read by tests)

	stats loopStats

	epfd int // the loop's epoll descriptor for backpressure; 0 unknown, -1 unavailable

	req   Request // the handshake being handled, reused
	tasks taskQueue

	fanFrames [][]byte // frames of the fan-out batch being delivered
	fanIOV    [][]byte // their copy handed to writev

	inflater codec.Inflater
	deflater *codec.Deflater // created on first use
	zbuf     []byte          // compressed payload scratch
}

func newLoop(s *Server, el gnet.EventLoop, idx int) *Loop {
	l := &Loop{s: s, el: el, idx: idx, wake: never}
	l.refresh()
	l.cursor = l.clock / int64(s.res)
	l.nextTick = l.now
	l.tasks.run = gnet.RunnableFunc(l.runTasks)
	l.advanceFn = l.advance
	l.wakeTimer = time.AfterFunc(time.Hour, func() { l.postFn(l.advanceFn) })
	l.wakeTimer.Stop()
	if s.ticker != nil {
		l.wakeAt(l.abs(l.nextTick))
	}
	return l
}

// closeNow closes c's TCP connection from its loop; gnet flushes what is
// buffered and calls OnClose synchronously.
func (l *Loop) closeNow(c *Conn) {
	if c.state == stateGone {
		return
	}
	_ = l.el.Close(c.gc)
}

// startClose begins the closing handshake on the loop: close frame out,
// state closing, close timer armed.
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
	if l.corked != c {
		l.flush(c)
	}
	if c.state == stateClosing {
		l.arm(c)
	}
}

// fail fails the connection after a protocol violation (RFC 6455 §7.1.7): the
// close frame with the violation's code goes out, then TCP is closed.
func (l *Loop) fail(c *Conn, err error) {
	code := codec.CloseCode(err)
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
	}
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
		if l.deflater == nil {
			l.deflater = getDeflater(l.s.cfg.CompressionLevel)
		}
		l.zbuf = l.deflater.AppendDeflate(l.zbuf[:0], payload)
		payload, rsv = l.zbuf, rsv1
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
	_, _ = c.gc.Writev(l.iov[:])
	l.iov[0], l.iov[1] = nil, nil
}

// flush writes the cork buffer to c. gnet copies whatever the socket does not
// take at once, so the buffer is free again on return.
func (l *Loop) flush(c *Conn) {
	if len(l.out) == 0 {
		return
	}
	if c.state != stateGone {
		_, _ = c.gc.Write(l.out)
	}
	if cap(l.out) > 4*corkLimit {
		l.out = nil
	} else {
		l.out = l.out[:0]
	}
}

// queueFull reports whether c's unsent bytes exceed MaxWriteQueue and, if so,
// closes it (1008, ErrWriteQueueFull). It runs before each write, so one
// message larger than the limit still goes out whole, while a peer that
// stops reading holds at most the limit plus one message.
func (l *Loop) queueFull(c *Conn) bool {
	if c.state != stateOpen && c.state != stateClosing {
		return true
	}
	if c.gc.OutboundBuffered() <= l.s.cfg.MaxWriteQueue {
		return false
	}
	l.dropSlow(c)
	return true
}

// dropSlow closes a peer that does not read what it is sent: OnClose gets
// 1008 and ErrWriteQueueFull. No close frame is sent: it would wait behind
// the full queue.
func (l *Loop) dropSlow(c *Conn) {
	l.stats.queueDrops.Add(1)
	c.extState().closeErr = &CloseError{Code: ws.StatusPolicyViolation, Reason: "write queue full", Err: ErrWriteQueueFull}
	c.state = stateClosed
	if l.corked != c {
		l.closeNow(c)
	}
}

// rsv1 is the RSV1 bit in ws.Header.Rsv: "per-message compressed" (RFC 7692 §6).
const rsv1 = 0x4

// deflaters recycles compressors for Send, which runs on arbitrary goroutines.
var deflaters sync.Pool

func getDeflater(level int) *codec.Deflater {
	if d, ok := deflaters.Get().(*codec.Deflater); ok {
		return d
	}
	d, err := codec.NewDeflater(level)
	if err != nil {
		d, _ = codec.NewDeflater(1)
	}
	return d
}

// appendCompressedFrame appends a compressed data frame carrying p.
func appendCompressedFrame(dst []byte, d *codec.Deflater, op ws.OpCode, p []byte) []byte {
	z := d.AppendDeflate(nil, p)
	dst = codec.AppendHeader(dst, ws.Header{Fin: true, Rsv: rsv1, OpCode: op, Length: int64(len(z))})
	return append(dst, z...)
}

// frameBufs recycles the frame buffers of Send.
var frameBufs sync.Pool

func getFrameBuf(n int) *[]byte {
	if v, ok := frameBufs.Get().(*[]byte); ok && cap(*v) >= n {
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
