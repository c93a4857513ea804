package server

import (
	"context"
	"sync"
	"time"

	"github.com/gobwas/ws"

	"github.com/panjf2000/gnet/v2"
)

// task is work handed to an event loop by another goroutine. Sends are typed
// (no closure per message); everything else is a func.
type task struct {
	fn     func()
	frame  *sharedFrame // fan-out: the shared frame
	target fanTarget    // fan-out: its recipients
	send   *Conn        // Send: write buf to send
	buf    *[]byte      // Send: the encoded frame
	n      int64        // Send: bytes accounted in send.sendq
	snap   bool         // Send: a snapshot (SendSnapshot)
	raw    bool         // Send: buf is the payload of an op message, to compress on the loop
	op     ws.OpCode    // Send: the opcode of a raw payload
}

// taskQueue is a loop's FIFO of tasks. gnet's own task queues may reorder
// low-priority work under load and run high-priority writes ahead of it, so
// megaws keeps one ordered queue per loop and asks gnet only to wake the loop
// when the queue becomes non-empty: Join, Publish, Send, Close and Do run in
// the order they were called.
type taskQueue struct {
	mu        sync.Mutex
	q, spare  []task
	scheduled bool
	since     time.Time // when the queue last became non-empty (loop lag)
	run       gnet.Runnable
}

// post queues t on the loop from any goroutine. It reports false when the
// loop no longer runs (the server is stopping), in which case t never runs.
func (l *Loop) post(t task) bool {
	tq := &l.tasks
	tq.mu.Lock()
	tq.q = append(tq.q, t)
	wake := !tq.scheduled
	tq.scheduled = true
	if wake {
		tq.since = time.Now()
	}
	tq.mu.Unlock()
	if !wake {
		return true
	}
	if err := l.el.Execute(context.Background(), tq.run); err != nil {
		tq.mu.Lock()
		tq.q = tq.q[:0]
		tq.scheduled = false
		tq.mu.Unlock()
		return false
	}
	return true
}

// postFn queues fn on the loop.
func (l *Loop) postFn(fn func()) bool { return l.post(task{fn: fn}) }

// runTasks runs every queued task, in order, on the loop.
func (l *Loop) runTasks(context.Context) error {
	tq := &l.tasks
	tq.mu.Lock()
	q := tq.q
	tq.q, tq.spare = tq.spare[:0], nil
	tq.scheduled = false
	since := tq.since
	tq.mu.Unlock()
	l.stats.lagged(time.Since(since))
	l.refresh()
	for i := 0; i < len(q); {
		t := &q[i]
		l.corked = nil
		if t.frame != nil {
			j, sz := i+1, len(*t.frame.buf)
			for j < len(q) && j-i < maxBatch && q[j].frame != nil && q[j].target == t.target {
				if sz += len(*q[j].frame.buf); sz > maxBatchBytes {
					break
				}
				j++
			}
			l.deliverBatch(q[i:j])
			for k := i; k < j; k++ {
				q[k].frame.release()
				q[k] = task{}
			}
			i = j
			continue
		}
		if t.send != nil {
			l.runSend(t)
		} else {
			l.callFunc(cbLoopFunc, t.fn)
		}
		*t = task{}
		i++
	}
	l.stats.publish()
	l.publishQueued()
	tq.mu.Lock()
	if tq.spare == nil && cap(q) <= 4096 {
		tq.spare = q[:0]
	}
	tq.mu.Unlock()
	return nil
}

// runSend writes a frame queued by Conn.Send.
func (l *Loop) runSend(t *task) {
	c, buf := t.send, t.buf
	c.sendq.Add(-t.n)
	if c.state != stateOpen || l.queueFull(c) {
		putFrameBuf(buf)
		return
	}
	if t.raw {
		if t.snap {
			l.stats.msgsOut++
			l.stats.bytesOut += uint64(len(*buf))
			l.writeSnapshot(c, l.snapshotFrame(c, t.op, *buf))
		} else {
			l.writeFrame(c, t.op, *buf)
		}
		putFrameBuf(buf)
		return
	}
	l.stats.msgsOut++
	if t.snap {
		l.writeSnapshot(c, buf)
		return
	}
	l.writeOwned(c, buf)
}
