package server

import "sync/atomic"

// loopStats are one loop's counters. The loop increments the plain fields on
// its hot path (no atomics, no sharing) and publishes a copy at every timer
// tick; readers only ever load the published copy.
type loopStats struct {
	msgsIn, msgsOut, bytesIn, bytesOut uint64
	protocolErrors, queueDrops         uint64
	conns                              uint64

	pub [statCount]atomic.Uint64
}

const (
	statMsgsIn = iota
	statMsgsOut
	statBytesIn
	statBytesOut
	statProtocolErrors
	statQueueDrops
	statConns
	statCount
)

func (st *loopStats) publish() {
	st.pub[statMsgsIn].Store(st.msgsIn)
	st.pub[statMsgsOut].Store(st.msgsOut)
	st.pub[statBytesIn].Store(st.bytesIn)
	st.pub[statBytesOut].Store(st.bytesOut)
	st.pub[statProtocolErrors].Store(st.protocolErrors)
	st.pub[statQueueDrops].Store(st.queueDrops)
	st.pub[statConns].Store(st.conns)
}

// Stats is a snapshot of a server's counters, summed over its event loops. The
// loops publish their counters at every timer tick, so a snapshot may be one
// tick (at most a second) behind.
type Stats struct {
	Conns          int64  // open WebSocket connections (exact)
	Loops          int    // event loops
	MessagesIn     uint64 // complete messages received
	MessagesOut    uint64 // frames written by the loops (messages, pings, pongs)
	BytesIn        uint64 // payload bytes received
	BytesOut       uint64 // payload bytes written by the loops
	ProtocolErrors uint64 // connections failed for a protocol violation
	QueueDrops     uint64 // connections closed for a full write queue
	Handshakes     uint64 // successful upgrades
	Rejected       uint64 // refused handshakes and plain HTTP answers
}

// Stats returns the server's counters. Any goroutine.
func (s *Server) Stats() Stats {
	st := Stats{Conns: s.open.Load(), Handshakes: s.handshakes.Load(), Rejected: s.rejected.Load()}
	s.mu.Lock()
	loops := s.loops
	s.mu.Unlock()
	st.Loops = len(loops)
	for _, l := range loops {
		p := &l.stats.pub
		st.MessagesIn += p[statMsgsIn].Load()
		st.MessagesOut += p[statMsgsOut].Load()
		st.BytesIn += p[statBytesIn].Load()
		st.BytesOut += p[statBytesOut].Load()
		st.ProtocolErrors += p[statProtocolErrors].Load()
		st.QueueDrops += p[statQueueDrops].Load()
	}
	if st.Loops < s.cfg.Loops {
		st.Loops = s.cfg.Loops
	}
	return st
}
