package server

import (
	"math"
	"math/bits"
	"time"

	"github.com/gobwas/ws"
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

// never is the wake time of a loop with nothing scheduled.
const never = math.MaxInt64

// keepaliveSlots is how many distinct wake-ups per keepalive period the
// connections' ping and idle deadlines are spread over: they are rounded up
// to a multiple of period/keepaliveSlots (at most one second), so a loop
// with any number of idle connections wakes about once a second for them,
// not once per timer tick.
const keepaliveSlots = 25

// The timer design: nothing ticks. Each loop keeps its deadlines in a hashed
// wheel (connections' timeouts and keepalive, O(1) each) and a heap (user
// timers), and arms one runtime timer for the earliest of them; when it
// fires, advance runs on the loop, fires what is due and arms the next one.
// An idle loop sleeps in epoll until a deadline is due.

// refresh reads the clock: the loop's idea of now, in ticks and nanoseconds
// since the server started. Every loop entry point calls it, so stamps and
// deadlines are taken against the current time.
func (l *Loop) refresh() {
	l.clock = int64(time.Since(l.s.start))
	l.now = uint32(l.clock / int64(l.s.res))
}

// ticks returns d in timer ticks, rounded up.
func (l *Loop) ticks(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	return uint32((d + l.s.res - 1) / l.s.res)
}

// dueAfter returns the first tick that starts at or after d from now: a
// deadline never fires early and at most one resolution late.
func (l *Loop) dueAfter(d time.Duration) uint32 {
	res := int64(l.s.res)
	abs := (l.clock + int64(d) + res - 1) / res
	return uint32(max(abs, int64(l.now)+1))
}

// link puts c at the head of list i; c must be unlinked.
func (l *Loop) link(c *Conn, i int) {
	c.slot = uint16(i)
	c.prev, c.next = nil, l.heads[i]
	if c.next != nil {
		c.next.prev = c
	}
	l.heads[i] = c
	if i < wheelSize {
		l.used[i/64] |= 1 << (i % 64)
	}
}

// unlink takes c out of its list, if it is in one.
func unlink(c *Conn) {
	if c.slot == noSlot {
		return
	}
	l := c.l
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		l.heads[c.slot] = c.next
		if c.next == nil && c.slot < wheelSize {
			l.used[c.slot/64] &^= 1 << (c.slot % 64)
		}
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
	l.wakeAt(l.abs(due))
}

func (l *Loop) park(c *Conn) {
	unlink(c)
	l.link(c, parkedSlot)
}

// abs turns a wheel tick (which wraps every 2^32 ticks) near now into an
// absolute tick.
func (l *Loop) abs(t uint32) int64 { return l.clock/int64(l.s.res) + int64(int32(t-l.now)) }

// wakeAt makes sure the loop's runtime timer fires by absolute tick t.
func (l *Loop) wakeAt(t int64) {
	if t >= l.wake {
		return
	}
	l.wake = t
	d := time.Duration(t)*l.s.res - time.Since(l.s.start)
	l.wakeTimer.Reset(max(d, 0))
}

// nextSlot returns the absolute tick of the first non-empty wheel slot after
// absolute tick from, or never.
func (l *Loop) nextSlot(from int64) int64 {
	start := int((from + 1) % wheelSize)
	for n := 0; n <= wheelSize; {
		i := (start + n) % wheelSize
		w := l.used[i/64] >> (i % 64)
		if w != 0 {
			return from + 1 + int64(n+bits.TrailingZeros64(w))
		}
		n += 64 - i%64
	}
	return never
}

// advance runs on the loop when its runtime timer fires (or a task asks):
// it fires the user timers, the tick and the wheel slots that are due, then
// arms the timer for the next deadline.
func (l *Loop) advance() {
	l.wakeups.Add(1)
	l.wake = never
	l.refresh()
	l.corked = nil
	l.runTimers()
	if l.s.ticker != nil && int32(l.now-l.nextTick) >= 0 {
		l.nextTick = l.now + max(l.ticks(l.s.cfg.TickInterval), 1)
		l.callTick()
	}
	target := l.clock / int64(l.s.res)
	for l.conns > 0 {
		next := l.nextSlot(l.cursor)
		if next > target {
			break
		}
		l.cursor = next
		l.fireSlot(int(next % wheelSize))
	}
	l.cursor = target
	l.armNext()
}

// fireSlot fires the connections of slot i whose deadline has come and puts
// the others (due on a later turn of the wheel) back.
func (l *Loop) fireSlot(i int) {
	// Detach the slot so that timers re-armed into it while it is being
	// processed wait for the next turn. Callbacks fired meanwhile may close
	// any connection, so the detached ones stay in a real list.
	l.heads[pendingSlot], l.heads[i] = l.heads[i], nil
	l.used[i/64] &^= 1 << (i % 64)
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

// armNext arms the loop's runtime timer for its earliest deadline.
func (l *Loop) armNext() {
	next := int64(never)
	if l.conns > 0 {
		next = l.nextSlot(l.cursor)
	}
	if len(l.timers) > 0 {
		next = min(next, l.abs(l.timers[0].at))
	}
	if l.s.ticker != nil {
		next = min(next, l.abs(l.nextTick))
	}
	if next != never {
		l.wakeAt(next)
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

// keepaliveDue rounds a keepalive or idle deadline up to the loop's
// keepalive granularity.
func (l *Loop) keepaliveDue(t uint32) uint32 {
	g := l.s.keepaliveGrain
	if g <= 1 {
		return t
	}
	return t + (g-t%g)%g
}

// arm sets c's timer according to its state: the earliest of its timeout
// or keepalive deadline and, while it is congested, the next look at its
// output queue.
func (l *Loop) arm(c *Conn) {
	cfg := &l.s.cfg
	var due uint32
	ok := false
	switch c.state {
	case stateHandshake:
		l.schedule(c, l.dueAfter(cfg.HandshakeTimeout))
		return
	case stateOpen:
		ping, idle := l.ticks(cfg.PingInterval), l.ticks(cfg.IdleTimeout)
		// lastRead is a tick started before the frame arrived: one more
		// tick makes sure the silence lasted the whole interval. Frames do
		// not re-arm the timer (that would cost every read); a timer that
		// fires early finds the new lastRead and arms again from it. While a
		// ping is outstanding, look again one interval later: once its pong
		// has come, the next ping is due an interval after the last frame.
		if ping > 0 {
			if c.flags&flagPinged == 0 {
				due, ok = c.lastRead+ping+1, true
			} else {
				due, ok = l.now+ping, true
			}
		}
		if idle > 0 && (!ok || int32(c.lastRead+idle+1-due) < 0) {
			due, ok = c.lastRead+idle+1, true
		}
		if ok {
			due = l.keepaliveDue(due)
		}
	case stateClosing, stateClosed:
		// lastRead holds the close or linger deadline (startClose, linger).
		due, ok = c.lastRead, true
	}
	if o := c.outq(); o != nil && (!ok || int32(o.next-due) < 0) {
		due, ok = o.next, true
	}
	if !ok {
		l.park(c)
		return
	}
	l.schedule(c, due)
}

// fire handles an expired timer.
func (l *Loop) fire(c *Conn) {
	cfg := &l.s.cfg
	if o := c.outq(); o != nil && o.dueBy(l.now) && c.state != stateHandshake {
		l.poll(c)
		if c.state == stateGone {
			return
		}
	}
	switch c.state {
	case stateHandshake:
		c.state = stateClosed
		l.closeNow(c)
	case stateOpen:
		silent := l.now - c.lastRead
		if idle := l.ticks(cfg.IdleTimeout); idle > 0 && silent > idle {
			l.startClose(c, ws.StatusGoingAway, "idle timeout", ErrIdleTimeout)
			c.state = stateClosed
			l.closeNow(c)
			return
		}
		if ping := l.ticks(cfg.PingInterval); ping > 0 && silent > ping && c.flags&flagPinged == 0 {
			c.flags |= flagPinged
			l.stats.pingsSent++
			l.writeFrame(c, ws.OpPing, nil)
			if c.state != stateOpen {
				return
			}
		}
		l.arm(c)
	case stateClosing:
		if int32(l.now-c.lastRead) < 0 {
			l.arm(c) // a look at the output queue, not the deadline
			return
		}
		c.extState().closeErr.Err = ErrCloseTimeout
		l.stats.closeTimeouts++
		c.state = stateClosed
		l.closeNow(c)
	case stateClosed:
		// Lingering: close once the outbound bytes are sent, or at the
		// deadline (in lastRead) if the peer does not read them.
		if l.unsent(c) == 0 || int32(l.now-c.lastRead) >= 0 {
			l.closeNow(c)
			return
		}
		if o := c.outq(); o != nil {
			o.next = l.now + 1
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
	if c.ext != nil && c.ext.closeErr != nil {
		switch c.ext.closeErr.Err {
		case ErrWriteQueueFull, ErrServerQueueFull, ErrReadQueueFull:
			return false
		}
	}
	if c.flags&flagLinger == 0 {
		c.flags |= flagLinger
		c.lastRead = l.dueAfter(l.s.cfg.CloseTimeout)
		l.schedule(c, l.now+1)
	}
	return true
}
