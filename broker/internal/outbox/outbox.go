// Package outbox is the bounded queue between a broker's Publish, which any
// goroutine calls and which never blocks, and the one writer goroutine that
// hands the messages to the broker client, which may block.
//
// Messages are copied into one of two byte arenas: Push appends to the
// current arena under a mutex, Take swaps it for the spare one, so that a
// steady stream of publishes allocates nothing once the arenas have grown.
// The queue holds at most MaxBytes of messages (plus a fixed overhead per
// message); Push refuses beyond that, and the caller counts the drop.
package outbox

import (
	"sync"
)

// ItemOverhead is what a queued message counts against MaxBytes besides its
// bytes: its slot in the item list and its channel name's header.
const ItemOverhead = 48

// Item is one queued message. Msg aliases the queue's arena: it is valid
// until the consumer's next Take.
type Item struct {
	Channel string
	Msg     []byte
}

// Queue is a bounded FIFO of messages. Push and Signal may be called from
// any goroutine, Take from one consumer goroutine.
type Queue struct {
	mu       sync.Mutex
	buf      []byte // arena of the queued messages
	items    []span
	bytes    int // counted against max
	max      int
	closed   bool
	spareBuf []byte
	spareIt  []span
	wake     chan struct{}
}

type span struct {
	channel  string
	off, end int
}

// New returns a queue holding at most maxBytes of messages.
func New(maxBytes int) *Queue {
	return &Queue{max: maxBytes, wake: make(chan struct{}, 1)}
}

// Push copies msg to the queue for channel. It never blocks; it reports
// false, keeping nothing, when the queue is full or closed.
func (q *Queue) Push(channel string, msg []byte) bool {
	n := len(msg) + len(channel) + ItemOverhead
	q.mu.Lock()
	if q.closed || q.bytes+n > q.max {
		q.mu.Unlock()
		return false
	}
	off := len(q.buf)
	q.buf = append(q.buf, msg...)
	q.items = append(q.items, span{channel: channel, off: off, end: len(q.buf)})
	q.bytes += n
	q.mu.Unlock()
	q.Signal()
	return true
}

// Signal wakes the consumer (Wake) without queueing anything, for a broker
// that has other work for its writer (subscription changes).
func (q *Queue) Signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Wake is readable after a Push or Signal the consumer has not yet seen.
func (q *Queue) Wake() <-chan struct{} { return q.wake }

// Take removes every queued message and appends them, in order, to dst.
// The messages alias an arena that is reused from the next Take on: the
// consumer is done with a batch when it takes the next one.
func (q *Queue) Take(dst []Item) []Item {
	q.mu.Lock()
	buf, items := q.buf, q.items
	q.buf, q.items = q.spareBuf[:0], q.spareIt[:0]
	q.spareBuf, q.spareIt = nil, nil
	q.bytes = 0
	q.mu.Unlock()
	for _, s := range items {
		dst = append(dst, Item{Channel: s.channel, Msg: buf[s.off:s.end:s.end]})
	}
	q.release(buf, items)
	return dst
}

// release keeps the taken arena as the spare for the next Take. Take copies
// the spans out before calling it, and the consumer is done with the bytes
// when it calls Take again: Take is the only place that reuses the spare, so
// the bytes handed out stay intact until the consumer's next Take.
//
// An arena that grew past 1 MiB for a burst is dropped once it is mostly
// empty again, so a burst does not pin its peak.
func (q *Queue) release(buf []byte, items []span) {
	clear(items) // drop the channel strings
	q.mu.Lock()
	defer q.mu.Unlock()
	if cap(buf) > 1<<20 && len(buf) < cap(buf)/4 {
		buf = nil
	}
	if cap(items) > 1<<14 && len(items) < cap(items)/4 {
		items = nil
	}
	q.spareBuf, q.spareIt = buf[:0], items[:0]
}

// Len returns the bytes counted against the bound now.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes
}

// Close makes every later Push fail and wakes the consumer. Messages still
// queued can be taken.
func (q *Queue) Close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.Signal()
}
