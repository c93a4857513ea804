package server

import (
	"sync/atomic"
	"time"

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

	// congested are the connections with output waiting (outqueue.go);
	// queued is their unsent bytes, queuedPub the part added to the server's
	// total so far.
	congested []*Conn
	queued    int
	queuedPub int
	drainIOV  [][]byte
	bcastLog  *fanLog          // broadcast frames congested connections wait for
	shedding  bool             // publishQueued is dropping connections
	byID      map[uint64]*Conn // the loop's connections by id, in a cluster (SendToID)
	fanSeqs   []uint64         // the log sequence numbers of the batch being delivered

	req   Request // the handshake being handled, reused
	tasks taskQueue

	fanFrames [][]byte // frames of the fan-out batch being delivered
	fanIOV    [][]byte // their copy handed to writev

	inflater codec.WindowInflater
	deflater *codec.WindowDeflater // created on first use
	zbuf     []byte                // compressed payload scratch
	// fanZ and fanZFrames hold, while a fan-out batch is delivered, its
	// frames compressed for members without context takeover.
	fanZ, fanZFrames [][]byte
}

func newLoop(s *Server, el gnet.EventLoop, idx int) *Loop {
	l := &Loop{s: s, el: el, idx: idx, wake: never}
	l.refresh()
	l.cursor = l.clock / int64(s.res)
	l.nextTick = l.now
	l.tasks.run = gnet.RunnableFunc(l.runTasks)
	if s.cluster != nil {
		l.byID = make(map[uint64]*Conn)
	}
	l.advanceFn = l.advance
	l.wakeTimer = time.AfterFunc(time.Hour, func() { l.postFn(l.advanceFn) })
	l.wakeTimer.Stop()
	if s.ticker != nil {
		l.wakeAt(l.abs(l.nextTick))
	}
	return l
}
