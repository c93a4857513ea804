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

// wheelSize is the number of slots of a loop's timer wheel. Deadlines further
// than wheelSize ticks away wait in their slot for another turn, so each
// connection costs O(1) per timeout period whatever the number of connections.
const wheelSize = 4096

// parkedSlot is the list of connections without a deadline; pendingSlot the
// wheel slot advance is firing, detached so that timers re-armed into that
// slot meanwhile wait for the next turn; noSlot marks an unlinked connection.
const (
	parkedSlot  = wheelSize
	pendingSlot = wheelSize + 1
	noSlot      = 0xFFFF
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
	now uint32 // current wheel tick
	// heads are the first connections of the wheel's slots, the parked and
	// the pending list (nil-terminated, doubly linked through Conn.next and
	// Conn.prev): 8 bytes a slot, where a sentinel Conn would cost 128.
	heads    [wheelSize + 2]*Conn
	conns    int
	timers   timerHeap
	nextTick uint32 // wheel tick of the next Ticker.OnTick

	// tickTarget is the wheel tick the timer goroutine asks the loop to
	// reach; it posts advanceFn, built once, so a tick allocates no closure.
	tickTarget atomic.Uint32
	advanceFn  func()

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

func newLoop(s *Server, el gnet.EventLoop, idx int, now uint32) *Loop {
	l := &Loop{s: s, el: el, idx: idx, now: now, nextTick: now}
	l.tasks.run = gnet.RunnableFunc(l.runTasks)
	l.advanceFn = func() { l.advance(l.tickTarget.Load()) }
	return l
}

// link puts c at the head of list i; c must be unlinked.
func (l *Loop) link(c *Conn, i int) {
	c.slot = uint16(i)
	c.prev, c.next = nil, l.heads[i]
	if c.next != nil {
		c.next.prev = c
	}
	l.heads[i] = c
}

// unlink takes c out of its list, if it is in one.
func unlink(c *Conn) {
	if c.slot == noSlot {
		return
	}
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		c.l.heads[c.slot] = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	}
	c.next, c.prev, c.slot = nil, nil, noSlot
}

// schedule arms c's timer for wheel tick due (at least one tick from now).
func (l *Loop) schedule(c *Conn, due uint32) {
	if int32(due-l.now) < 1 {
		due = l.now + 1
	}
	unlink(c)
	c.due = due
	l.link(c, int(due%wheelSize))
}

func (l *Loop) park(c *Conn) {
	unlink(c)
	l.link(c, parkedSlot)
}

// advance runs the wheel up to tick target, firing due timers.
func (l *Loop) advance(target uint32) {
	for int32(target-l.now) > 0 {
		l.now++
		l.runTimers()
		if l.s.ticker != nil && int32(l.now-l.nextTick) >= 0 {
			l.nextTick = l.now + max(l.ticks(l.s.cfg.TickInterval), 1)
			l.corked = nil
			l.callTick()
		}
		if l.conns == 0 {
			continue
		}
		// Detach the slot so that timers re-armed into it while it is being
		// processed wait for the next turn. Callbacks fired meanwhile may
		// close any connection, so the detached ones stay in a real list.
		i := l.now % wheelSize
		l.heads[pendingSlot], l.heads[i] = l.heads[i], nil
		for c := l.heads[pendingSlot]; c != nil; c = c.next {
			c.slot = pendingSlot
		}
		for l.heads[pendingSlot] != nil {
			c := l.heads[pendingSlot]
			unlink(c)
			if int32(c.due-l.now) > 0 {
				l.link(c, int(c.due%wheelSize))
				continue
			}
			l.fire(c)
		}
	}
}

// each calls fn for every connection of the loop. fn may close c (which
// unlinks only c) or re-arm it (it may then be visited again).
func (l *Loop) each(fn func(c *Conn)) {
	for i := range l.heads {
		for c := l.heads[i]; c != nil; {
			next := c.next
			fn(c)
			c = next
		}
	}
}

func (l *Loop) ticks(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	return uint32((d + l.s.res - 1) / l.s.res)
}

// arm sets c's timer according to its state.
func (l *Loop) arm(c *Conn) {
	cfg := &l.s.cfg
	switch c.state {
	case stateHandshake:
		l.schedule(c, l.now+l.ticks(cfg.HandshakeTimeout))
	case stateOpen:
		ping, idle := l.ticks(cfg.PingInterval), l.ticks(cfg.IdleTimeout)
		var due uint32
		ok := false
		if ping > 0 && c.flags&flagPinged == 0 {
			due, ok = c.lastRead+ping, true
		}
		if idle > 0 && (!ok || int32(c.lastRead+idle-due) < 0) {
			due, ok = c.lastRead+idle, true
		}
		if !ok {
			l.park(c)
			return
		}
		l.schedule(c, due)
	case stateClosing:
		l.schedule(c, l.now+l.ticks(cfg.CloseTimeout))
	default:
		l.park(c)
	}
}

// fire handles an expired timer.
func (l *Loop) fire(c *Conn) {
	cfg := &l.s.cfg
	switch c.state {
	case stateHandshake:
		c.state = stateClosed
		l.closeNow(c)
	case stateOpen:
		silent := l.now - c.lastRead
		if idle := l.ticks(cfg.IdleTimeout); idle > 0 && silent >= idle {
			l.startClose(c, ws.StatusGoingAway, "idle timeout", ErrIdleTimeout)
			c.state = stateClosed
			l.closeNow(c)
			return
		}
		if ping := l.ticks(cfg.PingInterval); ping > 0 && silent >= ping && c.flags&flagPinged == 0 {
			c.flags |= flagPinged
			l.writeFrame(c, ws.OpPing, nil)
			if c.state != stateOpen {
				return
			}
		}
		l.arm(c)
	case stateClosing:
		c.extState().closeErr.Err = ErrCloseTimeout
		c.state = stateClosed
		l.closeNow(c)
	case stateClosed:
		// Lingering: close once the outbound bytes are sent, or at the
		// deadline (in lastRead) if the peer does not read them.
		if c.gc.OutboundBuffered() == 0 || int32(l.now-c.lastRead) >= 0 {
			l.closeNow(c)
			return
		}
		l.schedule(c, l.now+1)
	default:
		l.park(c)
	}
}

// linger keeps a closed connection open until gnet has sent its outbound
// bytes, checking every tick, for at most CloseTimeout; input meanwhile is
// discarded and does not extend the wait. It reports false for a connection
// dropped because it does not read: its bytes would never drain.
func (l *Loop) linger(c *Conn) bool {
	if c.ext != nil && c.ext.closeErr != nil && c.ext.closeErr.Err == ErrWriteQueueFull {
		return false
	}
	if c.flags&flagLinger == 0 {
		c.flags |= flagLinger
		c.lastRead = l.now + max(l.ticks(l.s.cfg.CloseTimeout), 1)
		l.schedule(c, l.now+1)
	}
	return true
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
