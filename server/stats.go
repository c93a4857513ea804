package server

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// loopStats are one loop's counters. The per-message counters are plain
// fields that only the loop touches; the loop publishes them to atomics once
// per event it handles (publish), so a reader never waits for a loop, and a
// saturated loop still reports figures at most one event old. Counters of
// rare events (closes, refusals, protocol errors, panics) are kept under a
// per-loop mutex that only those events and readers take.
type loopStats struct {
	msgsIn, msgsOut, bytesIn, bytesOut uint64
	// pingsSent, pongsIn, closesAnswered and closeTimeouts are published
	// with the message counters.
	pingsSent, pongsIn, closesAnswered, closeTimeouts uint64

	pub struct {
		msgsIn, msgsOut, bytesIn, bytesOut                atomic.Uint64
		pingsSent, pongsIn, closesAnswered, closeTimeouts atomic.Uint64
	}
	handshakes        atomic.Uint64
	queueDrops        atomic.Uint64
	budgetDrops       atomic.Uint64
	readQueueDrops    atomic.Uint64
	readPauses        atomic.Uint64
	panics            atomic.Uint64
	fdShed            atomic.Uint64
	rateLimited       atomic.Uint64
	snapshotsReplaced atomic.Uint64
	// lag is the latest loop lag: how long the loop's queued work waited
	// before it ran; lagMax[w] the largest in lagWindow w (alternating).
	lag    atomic.Int64
	lagMax [2]atomic.Int64
	lagWin atomic.Int64 // the window lagMax[lagWin%2] belongs to

	mu             sync.Mutex
	panicsBy       map[string]uint64        // recovered panics by callback
	rejected       map[int]uint64           // refused requests by HTTP status (>= 400)
	served         map[int]uint64           // plain HTTP requests answered by status (< 400)
	closeCodes     map[ws.StatusCode]uint64 // close codes of finished connections
	protocolErrors map[string]uint64        // by violation
}

// publish makes the loop's per-message counters visible to Stats. Loop only.
func (st *loopStats) publish() {
	if st.pub.msgsIn.Load() != st.msgsIn {
		st.pub.msgsIn.Store(st.msgsIn)
		st.pub.bytesIn.Store(st.bytesIn)
	}
	if st.pub.msgsOut.Load() != st.msgsOut {
		st.pub.msgsOut.Store(st.msgsOut)
		st.pub.bytesOut.Store(st.bytesOut)
	}
	if st.pub.pingsSent.Load() != st.pingsSent || st.pub.pongsIn.Load() != st.pongsIn {
		st.pub.pingsSent.Store(st.pingsSent)
		st.pub.pongsIn.Store(st.pongsIn)
	}
	if st.pub.closesAnswered.Load() != st.closesAnswered || st.pub.closeTimeouts.Load() != st.closeTimeouts {
		st.pub.closesAnswered.Store(st.closesAnswered)
		st.pub.closeTimeouts.Store(st.closeTimeouts)
	}
}

// lagWindow is the period over which Stats.LoopLagMax reports the largest
// loop lag.
const lagWindow = 10 * time.Second

// lagged records the lag of a batch of queued work. Loop only.
func (st *loopStats) lagged(d time.Duration) {
	st.lag.Store(int64(d))
	w := time.Now().UnixNano() / int64(lagWindow)
	if old := st.lagWin.Load(); old != w {
		st.lagMax[w%2].Store(0)
		st.lagWin.Store(w)
	}
	if m := &st.lagMax[w%2]; int64(d) > m.Load() {
		m.Store(int64(d))
	}
}

// lagMaxNow returns the largest lag of the current and previous window.
func (st *loopStats) lagMaxNow() time.Duration {
	w := time.Now().UnixNano() / int64(lagWindow)
	cur := st.lagWin.Load()
	var m int64
	if cur == w || cur == w-1 {
		m = st.lagMax[cur%2].Load()
		if cur == w {
			m = max(m, st.lagMax[(cur+1)%2].Load())
		}
	}
	return time.Duration(m)
}

func (st *loopStats) answered(status int) {
	st.mu.Lock()
	m := &st.rejected
	if status < 400 {
		m = &st.served
	}
	if *m == nil {
		*m = make(map[int]uint64)
	}
	(*m)[status]++
	st.mu.Unlock()
}

func (st *loopStats) panicked(cb string) {
	st.panics.Add(1)
	st.mu.Lock()
	if st.panicsBy == nil {
		st.panicsBy = make(map[string]uint64)
	}
	st.panicsBy[cb]++
	st.mu.Unlock()
}

func (st *loopStats) closed(code ws.StatusCode) {
	st.mu.Lock()
	if st.closeCodes == nil {
		st.closeCodes = make(map[ws.StatusCode]uint64)
	}
	st.closeCodes[code]++
	st.mu.Unlock()
}

func (st *loopStats) protocolError(kind string) {
	st.mu.Lock()
	if st.protocolErrors == nil {
		st.protocolErrors = make(map[string]uint64)
	}
	st.protocolErrors[kind]++
	st.mu.Unlock()
}

// Stats is a snapshot of a server's counters, summed over its event loops.
type Stats struct {
	Conns       int64  // open WebSocket connections
	Loops       int    // event loops
	Handshakes  uint64 // successful upgrades
	MessagesIn  uint64 // complete messages received
	MessagesOut uint64 // frames written (messages, pings, pongs, broadcasts per recipient)
	BytesIn     uint64 // payload bytes received
	BytesOut    uint64 // payload bytes written
	QueueDrops  uint64 // connections closed for a full write queue (MaxWriteQueue)
	// BudgetDrops counts connections closed because the output waiting for
	// all slow readers passed MaxQueuedBytes (the slowest first).
	BudgetDrops uint64
	// SnapshotsReplaced counts snapshots (SendSnapshot, WriteSnapshot)
	// that replaced an older one still waiting for a lagging peer.
	SnapshotsReplaced uint64
	// RateLimited counts messages over Config.RateLimit (dropped, or their
	// connection closed).
	RateLimited uint64
	// ReadQueueDrops counts connections closed because they went on sending
	// while they did not read (MaxReadQueue).
	ReadQueueDrops uint64
	// ClusterOut counts messages handed to the broker (Config.Broker),
	// ClusterIn messages from other nodes delivered here, ClusterDrops
	// messages the broker could not take (lost for the other nodes).
	ClusterOut, ClusterIn, ClusterDrops uint64
	// PingsSent counts keepalive pings sent (Config.PingInterval), PongsIn
	// pongs received (to those pings or to Conn.Ping).
	PingsSent, PongsIn uint64
	// ClosesAnswered counts close handshakes the server started (Conn.Close,
	// Stop, idle timeout) that the peer completed with its close frame;
	// CloseTimeouts those it did not answer within Config.CloseTimeout.
	ClosesAnswered, CloseTimeouts uint64
	// QueuedBytes is the memory held by output waiting for congested
	// connections now (see Config.MaxQueuedBytes).
	QueuedBytes int64
	// LoopLag is, per loop, how long the work most recently queued for it
	// (Send, Publish, Do, timers) waited before the loop ran it, and
	// LoopLagMax the largest such wait in the last 10 to 20 seconds. A
	// callback that blocks, or a loop that is saturated, shows here first.
	LoopLag, LoopLagMax []time.Duration
	ReadPauses          uint64 // times reading paused for backpressure (WriteHighWater)
	// Panics counts panics recovered from handler callbacks and functions run
	// on the loops (Config.NoRecover turns recovery off).
	Panics uint64
	// PanicsByCallback splits Panics by where they happened: "OnMessage",
	// "OnOpen", "OnClose", "OnUpgrade" (answered 500), "ServeHTTP" (500),
	// "OnTick", "Conn.AfterFunc", "Loop.AfterFunc", "Conn.Do".
	PanicsByCallback map[string]uint64
	// FDShed counts connections closed right after accept because the process
	// was close to its open-files limit (Config.ReserveFDs).
	FDShed uint64
	// MemoryReleases counts the times memory left by a burst was collected
	// and returned to the OS (Config.MemoryReleaseInterval).
	MemoryReleases uint64
	// Rejected counts refused requests by HTTP status (400 and above): bad or
	// refused upgrades, 426 for plain requests without an upgrade, 503 when
	// full or stopping.
	Rejected map[int]uint64
	// HTTPServed counts plain HTTP requests answered with a status below 400
	// (GET /healthz, pages of an HTTPResponder).
	HTTPServed map[int]uint64
	// CloseCodes counts finished connections by close code (1006: no close frame).
	CloseCodes map[ws.StatusCode]uint64
	// ProtocolErrors counts connections failed for a protocol violation, by kind.
	ProtocolErrors map[string]uint64
}

// Stats returns the server's counters. Any goroutine, event-loop callbacks
// included; it never waits for a loop: each loop publishes its counters as it
// handles events, so the figures are complete and at most one event old, even
// while a loop is saturated. After Stop it keeps returning the last figures.
func (s *Server) Stats() Stats {
	st := Stats{
		Conns:            s.open.Load(),
		Loops:            s.cfg.Loops,
		MemoryReleases:   s.releases.Load(),
		QueuedBytes:      max(s.queued.Load(), 0),
		Rejected:         map[int]uint64{},
		HTTPServed:       map[int]uint64{},
		PanicsByCallback: map[string]uint64{},
		CloseCodes:       map[ws.StatusCode]uint64{},
		ProtocolErrors:   map[string]uint64{},
	}
	if cl := s.cluster; cl != nil {
		st.ClusterOut, st.ClusterIn, st.ClusterDrops = cl.out.Load(), cl.in.Load(), cl.drops.Load()
	}
	for _, l := range s.loopList() {
		ls := &l.stats
		st.LoopLag = append(st.LoopLag, time.Duration(ls.lag.Load()))
		st.LoopLagMax = append(st.LoopLagMax, ls.lagMaxNow())
		st.Handshakes += ls.handshakes.Load()
		st.MessagesIn += ls.pub.msgsIn.Load()
		st.MessagesOut += ls.pub.msgsOut.Load()
		st.BytesIn += ls.pub.bytesIn.Load()
		st.BytesOut += ls.pub.bytesOut.Load()
		st.PingsSent += ls.pub.pingsSent.Load()
		st.PongsIn += ls.pub.pongsIn.Load()
		st.ClosesAnswered += ls.pub.closesAnswered.Load()
		st.CloseTimeouts += ls.pub.closeTimeouts.Load()
		st.QueueDrops += ls.queueDrops.Load()
		st.BudgetDrops += ls.budgetDrops.Load()
		st.ReadQueueDrops += ls.readQueueDrops.Load()
		st.ReadPauses += ls.readPauses.Load()
		st.Panics += ls.panics.Load()
		st.FDShed += ls.fdShed.Load()
		st.RateLimited += ls.rateLimited.Load()
		st.SnapshotsReplaced += ls.snapshotsReplaced.Load()
		ls.mu.Lock()
		addAll(st.PanicsByCallback, ls.panicsBy)
		addAll(st.Rejected, ls.rejected)
		addAll(st.HTTPServed, ls.served)
		addAll(st.CloseCodes, ls.closeCodes)
		addAll(st.ProtocolErrors, ls.protocolErrors)
		ls.mu.Unlock()
	}
	return st
}

func addAll[K comparable](dst, src map[K]uint64) {
	for k, v := range src {
		dst[k] += v
	}
}
