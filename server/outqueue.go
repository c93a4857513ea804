package server

import (
	"log/slog"
	"slices"
	"sync"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/codec"
)

// Output queues of congested connections.
//
// gnet copies into a per-connection buffer whatever a socket does not take.
// For a peer that stops reading, every broadcast would then be copied once
// more into its buffer: 10,000 such peers turned one shared 1 KiB frame into
// 10 MB of copies per publish. So once gnet holds unsent bytes for a
// connection, megaws stops handing it more: new output waits in the
// connection's own queue — shared frames as references (no copy), the
// connection's own frames as the pooled buffers they already are — and goes
// to gnet again only when gnet's buffer for it is empty. The loop looks at
// its congested connections on the timer wheel: every tick while they make
// progress, backing off to every 64 ticks while they do not.
//
// Bounds: a connection whose unsent bytes (gnet's plus its queue, a shared
// frame counted in full) pass Config.MaxWriteQueue is dropped
// (ErrWriteQueueFull). The memory all queues hold together — gnet's copies,
// owned frames, and each shared frame once however many queues hold it, plus
// 16 bytes per queued item — is kept under Config.MaxQueuedBytes: past it
// each loop drops its connections with the most unsent bytes, the slowest
// readers, first (ErrServerQueueFull), until the total is back under 90% of
// the budget. Both try to send close 1008 and close the TCP connection.

// outItem is one queued entry: a pooled buffer owned by the queue, a shared
// frame (one reference held; SendTo), or a run of consecutive frames of a
// fan-out log (a broadcast or room sequence, see fanlog.go), which costs the
// connection nothing per frame.
type outItem struct {
	b        *[]byte
	f        *sharedFrame
	log      *fanLog
	from, to uint64 // the log's frames from..to, inclusive
	// snapAt is 1 + the sequence number of the newest snapshot
	// (Room.PublishSnapshot) in the run from..to, 0 if none: the run's older
	// snapshots are skipped, and their bytes no longer count as queued.
	snapAt uint64
	snap   bool // b is a snapshot that a newer one replaces (WriteSnapshot)
}

// itemOverhead is what a queued item costs besides its frames' bytes; it is
// counted with them.
const itemOverhead = 40

// queue returns the memory that queuing it adds to the server's account: a
// shared frame's bytes count once, however many queues hold it.
func (it outItem) queue() int {
	switch {
	case it.b != nil:
		return len(*it.b) + itemOverhead
	case it.f != nil:
		if it.f.queued.Add(1) == 1 {
			return len(*it.f.buf) + itemOverhead
		}
	}
	return itemOverhead
}

// dequeue releases what it holds and returns the memory freed.
func (it outItem) dequeue() int {
	switch {
	case it.b != nil:
		n := len(*it.b) + itemOverhead
		putFrameBuf(it.b)
		return n
	case it.f != nil:
		n := itemOverhead
		if it.f.queued.Add(-1) == 0 {
			n += len(*it.f.buf)
		}
		it.f.release()
		return n
	}
	return itemOverhead + it.log.unpin(it.from, it.to)
}

// release releases a buffer or frame that was never queued.
func (it outItem) release() {
	if it.f != nil {
		it.f.release()
	} else if it.b != nil {
		putFrameBuf(it.b)
	}
}

// appendData appends the item's frames to iov while it has room and sz stays
// under limit; it returns the new iov, the bytes added (also the bytes
// consumed from the connection's account: the snapshots of a log run that
// a newer one replaced left it when they were replaced) and how many frames
// of a log run were taken (its first ones, skipped snapshots included).
func (it *outItem) appendData(iov [][]byte, sz, limit int) ([][]byte, int, uint64) {
	switch {
	case it.b != nil:
		return append(iov, *it.b), len(*it.b), 1
	case it.f != nil:
		return append(iov, *it.f.buf), len(*it.f.buf), 1
	}
	added, taken := 0, uint64(0)
	g := it.log
	for seq := it.from; seq <= it.to && len(iov) < cap(iov) && sz+added < limit; seq++ {
		e := g.entry(seq)
		taken++
		if e.f.snap && seq+1 < it.snapAt {
			continue // a newer snapshot waits in the same run
		}
		b := *e.f.buf
		iov = append(iov, b)
		added += len(b)
	}
	return iov, added, taken
}

// maxPollTicks bounds the backoff between looks at a congested connection
// that makes no progress.
const maxPollTicks = 64

// drainBytes bounds what one drain hands to gnet, so one fast connection
// cannot hold the loop.
const drainBytes = 1 << 20

// outState is a congested connection's output state. Only its loop touches it.
type outState struct {
	items []outItem // ring buffer
	head  int
	n     int
	bytes int // queued frame bytes plus itemOverhead each (shared frames counted in full)
	gnet  int // gnet's unsent bytes when last looked at
	idx   int // position in Loop.congested
	every uint32
	next  uint32 // wheel tick of the next look
	last  int    // unsent bytes at the previous look
	// popped counts the items that left the queue; snap is 1 + the absolute
	// position of the latest snapshot item queued (0: none).
	popped, snap uint64
}

var outStates = sync.Pool{New: func() any { return new(outState) }}

func (c *Conn) outq() *outState {
	if c.ext == nil {
		return nil
	}
	return c.ext.out
}

// unsent returns the bytes waiting to be sent to c: gnet's and its queue's.
func (l *Loop) unsent(c *Conn) int {
	n := c.gc.OutboundBuffered()
	if o := c.outq(); o != nil {
		n += o.bytes
	}
	return n
}

// congestedNow reports whether output for c must be queued: its queue is
// not empty (after handing gnet what it can take now) or gnet still holds
// unsent bytes. A connection found congested gets its output state.
func (l *Loop) congestedNow(c *Conn) bool {
	o := c.outq()
	if o != nil && o.n > 0 {
		l.drain(c)
		if o.n > 0 || c.state == stateGone {
			return true
		}
	}
	if c.gc.OutboundBuffered() == 0 {
		return false
	}
	l.congest(c)
	return true
}

// afterWrite notes that a direct write left bytes in gnet's buffer.
func (l *Loop) afterWrite(c *Conn) {
	if c.state == stateGone {
		return
	}
	if o := c.outq(); o != nil {
		l.noteGnet(c, o)
		return
	}
	if c.gc.OutboundBuffered() > 0 {
		l.congest(c)
	}
}

// congest gives c an output state and puts it on the loop's congested list.
func (l *Loop) congest(c *Conn) {
	e := c.extState()
	if e.out != nil {
		l.noteGnet(c, e.out)
		return
	}
	o := outStates.Get().(*outState)
	*o = outState{items: o.items[:0], idx: len(l.congested), every: 1, next: l.now + 1}
	e.out = o
	l.congested = append(l.congested, c)
	l.noteGnet(c, o)
	if c.state == stateOpen || c.state == stateClosing {
		l.arm(c)
	}
}

// noteGnet updates the loop's account of gnet's unsent bytes for c.
func (l *Loop) noteGnet(c *Conn, o *outState) {
	g := c.gc.OutboundBuffered()
	l.queued += g - o.gnet
	o.gnet = g
}

// enqueue appends it (a buffer or a shared frame) to c's queue.
func (l *Loop) enqueue(c *Conn, it outItem) {
	if c.state == stateGone {
		it.release()
		return
	}
	l.congest(c)
	o := c.ext.out
	o.push(it)
	if it.b != nil {
		o.bytes += len(*it.b) + itemOverhead
	} else {
		o.bytes += len(*it.f.buf) + itemOverhead
	}
	l.queued += it.queue()
}

// enqueueLog queues frame seq of log g for c: it extends c's last item when
// that is the run just before seq, so a congested member of a busy room or
// of a broadcast costs a few plain operations per frame, no memory. A
// snapshot (Room.PublishSnapshot) that extends a run replaces the run's
// previous snapshot, which will not be sent: its bytes leave c's account.
func (l *Loop) enqueueLog(c *Conn, g *fanLog, seq uint64) {
	if c.state == stateGone {
		return
	}
	o := c.outq()
	if o == nil {
		l.congest(c)
		o = c.ext.out
	}
	e := g.entry(seq)
	o.bytes += len(*e.f.buf)
	var snapAt uint64
	if e.f.snap {
		snapAt = seq + 1
	}
	if o.n > 0 {
		if last := &o.items[(o.head+o.n-1)%len(o.items)]; last.log == g && last.to+1 == seq {
			g.extend(last.to)
			last.to = seq
			if snapAt != 0 {
				if last.snapAt > last.from { // the previous snapshot is still unsent
					o.bytes -= len(g.frame(last.snapAt - 1))
					l.stats.snapshotsReplaced.Add(1)
				}
				last.snapAt = snapAt
			}
			return
		}
	}
	g.pin(seq)
	o.push(outItem{log: g, from: seq, to: seq, snapAt: snapAt})
	o.bytes += itemOverhead
	l.queued += itemOverhead
}

// push appends it to the ring.
func (o *outState) push(it outItem) {
	if o.n == len(o.items) {
		grown := make([]outItem, max(4, 2*len(o.items)))
		for i := 0; i < o.n; i++ {
			grown[i] = o.items[(o.head+i)%len(o.items)]
		}
		o.items, o.head = grown, 0
	}
	o.items[(o.head+o.n)%len(o.items)] = it
	o.n++
	if it.snap {
		o.snap = o.popped + uint64(o.n) // 1 + the item's absolute position
	}
}

// queuedSnapshot returns c's snapshot still waiting in its queue, or nil.
func (o *outState) queuedSnapshot() *outItem {
	if o.snap == 0 || o.snap <= o.popped {
		return nil
	}
	it := &o.items[(o.head+int(o.snap-1-o.popped))%len(o.items)]
	if !it.snap {
		return nil
	}
	return it
}

// drain hands c's queue to gnet while gnet's own buffer for c is empty.
func (l *Loop) drain(c *Conn) {
	o := c.outq()
	for o != nil && o.n > 0 && c.state != stateGone && c.gc.OutboundBuffered() == 0 {
		iov := l.drainIOV[:0]
		if cap(iov) < 1024 {
			iov = make([][]byte, 0, 1024)
		}
		sz, consumed := 0, 0
		// Take whole items and, at the end, possibly the head of a log run.
		k, partial := 0, uint64(0)
		for k < o.n && len(iov) < cap(iov) && sz < drainBytes {
			it := &o.items[(o.head+k)%len(o.items)]
			var added int
			var taken uint64
			iov, added, taken = it.appendData(iov, sz, drainBytes)
			sz += added
			consumed += added
			if it.log != nil && it.from+taken <= it.to {
				partial = taken
				break
			}
			k++
		}
		_, _ = c.gc.Writev(iov)
		clear(iov)
		l.drainIOV = iov[:0]
		// gnet copied what the socket did not take: the items are free.
		for i := 0; i < k; i++ {
			j := (o.head + i) % len(o.items)
			l.queued -= o.items[j].dequeue()
			o.items[j] = outItem{}
		}
		o.head = (o.head + k) % len(o.items)
		o.n -= k
		o.popped += uint64(k)
		o.bytes -= consumed + k*itemOverhead
		if partial > 0 {
			it := &o.items[o.head]
			l.queued -= it.log.unpin(it.from, it.from+partial-1)
			it.from += partial
		}
		if c.state == stateGone {
			return
		}
		l.noteGnet(c, o)
	}
}

// dropQueue releases everything queued for c (it is being dropped or failed).
func (l *Loop) dropQueue(c *Conn) {
	o := c.outq()
	if o == nil {
		return
	}
	for o.n > 0 {
		l.queued -= o.items[o.head].dequeue()
		o.items[o.head] = outItem{}
		o.head = (o.head + 1) % len(o.items)
		o.n--
		o.popped++
	}
	o.bytes = 0
}

// uncongest takes c off the congested list and frees its output state.
func (l *Loop) uncongest(c *Conn) {
	o := c.outq()
	if o == nil {
		return
	}
	l.dropQueue(c)
	l.queued -= o.gnet
	last := len(l.congested) - 1
	moved := l.congested[last]
	l.congested[o.idx] = moved
	moved.ext.out.idx = o.idx
	l.congested[last] = nil
	l.congested = l.congested[:last]
	c.ext.out = nil
	clear(o.items)
	*o = outState{items: o.items[:0]}
	outStates.Put(o)
}

// poll looks at a congested connection when its wheel deadline says so:
// hands its queue to gnet if gnet's buffer emptied, resumes reading from it
// once its output fell below half the high-water mark, and forgets the
// congestion when nothing is left to send.
func (l *Loop) poll(c *Conn) {
	o := c.outq()
	l.drain(c)
	if c.state == stateGone {
		return
	}
	l.noteGnet(c, o)
	unsent := o.gnet + o.bytes
	if c.flags&flagPaused != 0 && unsent <= l.s.cfg.WriteHighWater/2 {
		l.resume(c)
		if c.state == stateGone || c.outq() == nil {
			return
		}
	}
	if unsent == 0 && c.flags&flagPaused == 0 {
		l.uncongest(c)
		return
	}
	if unsent < o.last {
		o.every = 1
	} else {
		o.every = min(2*o.every, maxPollTicks)
	}
	o.last = unsent
	o.next = l.now + o.every
}

// pollDue reports whether c's output state wants a look by wheel tick t.
func (o *outState) dueBy(t uint32) bool { return int32(t-o.next) >= 0 }

// publishQueued adds the loop's change of queued bytes to the server's total
// and, when the total is over budget, drops this loop's slowest readers.
func (l *Loop) publishQueued() {
	s := l.s
	l.flushQueued()
	if s.queued.Load() <= s.budget || len(l.congested) == 0 || l.shedding {
		return
	}
	l.shedding = true
	defer func() { l.shedding = false }()
	// Readers that stopped reading go first, most unsent bytes first; one
	// that is reading (its queue shrank at the last look) only when the
	// total is far over the budget: the frames it waits for leave soon.
	byUnsent := slices.Clone(l.congested)
	slices.SortFunc(byUnsent, func(a, b *Conn) int {
		if sa, sb := a.outq().stalled(), b.outq().stalled(); sa != sb {
			if sa {
				return -1
			}
			return 1
		}
		return l.unsent(b) - l.unsent(a)
	})
	target := s.budget / 10 * 9
	for _, c := range byUnsent {
		if c.state != stateOpen && c.state != stateClosing || c.outq() == nil {
			continue
		}
		q := s.queued.Load()
		if q <= target || !c.outq().stalled() && q <= s.budget+s.budget/4 {
			break
		}
		if l.unsent(c) == 0 {
			break
		}
		l.dropSlow(c, ErrServerQueueFull)
		l.flushQueued()
	}
}

// flushQueued adds the loop's change of queued memory to the server's total.
func (l *Loop) flushQueued() {
	if d := l.queued - l.queuedPub; d != 0 {
		l.s.queued.Add(int64(d))
		l.queuedPub = l.queued
	}
}

// stalled reports whether the connection's queue did not shrink at its last
// two looks.
func (o *outState) stalled() bool { return o.every >= 4 }

// pause stops handling c's input while too much output waits for it.
func (l *Loop) pause(c *Conn) {
	c.flags |= flagPaused
	l.stats.readPauses.Add(1)
	l.congest(c)
}

// inputWhilePaused is called for input that arrives while c is paused. It
// reports whether c stays paused; past Config.MaxReadQueue of unhandled
// input the connection is dropped (1008, ErrReadQueueFull).
func (l *Loop) inputWhilePaused(c *Conn) bool {
	if c.gc.InboundBuffered() > l.s.cfg.MaxReadQueue {
		l.stats.readQueueDrops.Add(1)
		l.logConn(slog.LevelWarn, "megaws: peer sends without reading; dropped", c, "code", 1008, "held", c.gc.InboundBuffered())
		l.dropQueue(c)
		_, _ = c.gc.Write(codec.AppendClose(l.hdr[:0], ws.StatusPolicyViolation, ""))
		c.extState().closeErr = &CloseError{Code: ws.StatusPolicyViolation, Reason: "read queue full", Err: ErrReadQueueFull}
		c.state = stateClosed
		return true
	}
	if l.unsent(c) <= l.s.cfg.WriteHighWater/2 {
		c.flags &^= flagPaused
		return false
	}
	return true
}

// resume handles the input that waited while c was paused.
func (l *Loop) resume(c *Conn) {
	c.flags &^= flagPaused
	if c.gc.InboundBuffered() == 0 {
		return
	}
	if l.s.serve(c) {
		l.closeNow(c)
	}
}
