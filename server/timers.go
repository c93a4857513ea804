package server

import (
	"container/heap"
	"time"
)

// Timer is a callback scheduled on an event loop by Loop.AfterFunc or
// Conn.AfterFunc. Its fields belong to the loop.
type Timer struct {
	l   *Loop
	at  uint32 // wheel tick at which it fires
	idx int    // position in the loop's heap; -1 when not scheduled
	fn  func()
	c   *Conn
	cfn func(*Conn)
}

// Stop cancels the timer; it reports whether the timer was still pending.
// Loop only.
func (t *Timer) Stop() bool {
	if t.idx < 0 {
		return false
	}
	heap.Remove(&t.l.timers, t.idx)
	return true
}

// timerHeap orders a loop's timers by due tick (wrap-safe).
type timerHeap []*Timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return int32(h[i].at-h[j].at) < 0 }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *timerHeap) Push(x any) {
	t := x.(*Timer)
	t.idx = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.idx = -1
	return t
}

// AfterFunc runs fn on this loop after d (rounded up to the timer resolution,
// Config.TimerResolution). Loop only: call it from a callback running on this
// loop; from elsewhere use Conn.Do. fn runs on the loop and must
// not block.
func (l *Loop) AfterFunc(d time.Duration, fn func()) *Timer {
	t := &Timer{l: l, fn: fn, at: l.dueAfter(d)}
	heap.Push(&l.timers, t)
	l.wakeAt(l.abs(t.at))
	return t
}

// AfterFunc runs fn(c) on c's event loop after d, unless c has closed by then:
// timers of closed connections never fire. Loop only (see Loop.AfterFunc).
func (c *Conn) AfterFunc(d time.Duration, fn func(c *Conn)) *Timer {
	l := c.l
	t := &Timer{l: l, c: c, cfn: fn, at: l.dueAfter(d)}
	heap.Push(&l.timers, t)
	l.wakeAt(l.abs(t.at))
	return t
}

// Do runs fn(c) on c's event loop, from any goroutine, in order with the
// loop's other events; fn does not run if c closes first. It is the way for
// goroutines to touch per-connection state without locks. It returns
// ErrClosed when c is already closed and ErrServerStopped when the loops no
// longer run; otherwise fn runs unless c closes before its turn comes.
func (c *Conn) Do(fn func(c *Conn)) error {
	if c.closed() {
		return ErrClosed
	}
	ok := c.l.postFn(func() {
		if c.state == stateOpen || c.state == stateClosing {
			c.l.callConn(cbConnDo, c, fn)
		}
	})
	if !ok {
		return ErrServerStopped
	}
	return nil
}

// Loop returns the event loop that owns c. Any goroutine.
func (c *Conn) Loop() *Loop { return c.l }

// runTimers fires the user timers due at l.now.
func (l *Loop) runTimers() {
	for len(l.timers) > 0 && int32(l.timers[0].at-l.now) <= 0 {
		t := heap.Pop(&l.timers).(*Timer)
		l.corked = nil
		if t.c == nil {
			l.callFunc(cbLoopTimer, t.fn)
			continue
		}
		if s := t.c.state; s == stateOpen || s == stateClosing {
			l.callConn(cbConnTimer, t.c, t.cfn)
		}
	}
}

// Index returns the loop's number, from 0 to Config.Loops-1. Any goroutine.
func (l *Loop) Index() int { return l.idx }

// Len returns the number of connections on the loop, handshakes included. Loop only.
func (l *Loop) Len() int { return l.conns }

// Each calls fn for every open connection of the loop. Loop only; fn may
// write to or close the connection.
func (l *Loop) Each(fn func(c *Conn)) {
	l.each(func(c *Conn) {
		if c.state == stateOpen {
			fn(c)
		}
	})
}

// Ticker is implemented by handlers that want a periodic callback on every
// event loop, every Config.TickInterval: the place for a game's fixed-rate
// update of the players it owns (Loop.Each), without locks. A loop is
// ticked from its first connection on (see Config.TickInterval), and keeps
// being ticked when its connections are gone.
type Ticker interface {
	OnTick(l *Loop)
}
