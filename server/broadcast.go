package server

import "sync/atomic"

// sharedFrame is one encoded frame written to many connections. Each event
// loop holds a reference while it writes the frame to its connections; gnet
// copies whatever a socket does not take at once, so the buffer returns to the
// pool when the last loop is done.
type sharedFrame struct {
	buf  *[]byte
	n    int // payload length, for the counters
	refs atomic.Int32
	// queued counts the connection queues holding the frame: its bytes
	// count once in the server's queued memory while any does.
	queued atomic.Int32
	// snap marks a snapshot (Room.PublishSnapshot): a reader that lags gets
	// only the newest of those waiting for it.
	snap bool
}

// fanTarget says who receives a fan-out: every open connection when room is
// nil, otherwise the room's members; except is skipped.
type fanTarget struct {
	room   *roomState
	except *Conn
	snap   bool // the frames are snapshots (Room.PublishSnapshot)
}

// noSeq marks a frame of a batch not in a fan-out log yet.
const noSeq = ^uint64(0)

// maxBatch and maxBatchBytes bound how many queued fan-outs one writev
// carries. The byte bound is also what gnet may copy for a recipient whose
// socket fills in the middle of a batch (later frames are queued by
// reference).
const (
	maxBatch      = 64
	maxBatchBytes = 32 << 10
)

// deliverBatch writes the frames of consecutive fan-out tasks for the same
// target to every recipient of this loop: one write per recipient for the
// whole batch instead of one per message, which is what a burst of
// publishes (a game tick, a market feed) needs.
func (l *Loop) deliverBatch(batch []task) {
	target := batch[0].target
	frames := l.fanFrames[:0]
	payload := 0
	for i := range batch {
		frames = append(frames, *batch[i].frame.buf)
		payload += batch[i].frame.n
	}
	l.fanFrames = frames
	// Congested recipients queue the frames as runs of the target's log
	// (fanlog.go); a frame joins the log when the first one needs it.
	var g *fanLog
	seqs := l.fanSeqs[:0]
	for range batch {
		seqs = append(seqs, noSeq)
	}
	l.fanSeqs = seqs
	write := func(c *Conn) {
		if c.state != stateOpen || c == target.except || l.queueFull(c) {
			return
		}
		l.stats.msgsOut += uint64(len(frames))
		l.stats.bytesOut += uint64(payload)
		if c.opts&optDeflate != 0 {
			if fb, zframes := l.compressedFor(c, batch); fb != nil {
				l.writeOwned(c, fb)
			} else {
				l.fanIOV = append(l.fanIOV[:0], zframes...)
				l.writeBorrowed(c, l.fanIOV)
			}
			return
		}
		if l.congestedNow(c) {
			if g == nil {
				g = l.logFor(target)
			}
			for i := range batch {
				if seqs[i] == noSeq {
					seqs[i] = l.logAppend(g, batch[i].frame)
				}
				l.enqueueLog(c, g, seqs[i])
			}
			return
		}
		if len(frames) == 1 {
			_, _ = c.gc.Write(frames[0])
		} else {
			// gnet's writev trims the slices it was given after a partial
			// write, so every recipient gets a fresh copy of the headers.
			l.fanIOV = append(l.fanIOV[:0], frames...)
			_, _ = c.gc.Writev(l.fanIOV)
		}
		l.afterWrite(c)
	}
	if target.room == nil {
		l.each(write)
	} else {
		target.room.each(l, write)
	}
	clear(l.fanZFrames)
	l.fanZFrames = l.fanZFrames[:0]
	clear(l.fanZ)
	for i := range frames {
		frames[i] = nil
	}
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
	if c.opts&optDeflate != 0 {
		if op, p := f.opPayload(); c.compress(op, len(p)) {
			fb := getFrameBuf(0)
			*fb = l.appendDeflatedFrame(*fb, c, op, p)
			l.writeOwned(c, fb)
			return
		}
	}
	if l.congestedNow(c) {
		f.refs.Add(1)
		l.enqueue(c, outItem{f: f})
		return
	}
	_, _ = c.gc.Write(*f.buf)
	l.afterWrite(c)
}
