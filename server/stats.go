package server

import (
	"context"
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// loopStats are one loop's counters. Only the loop touches them (plain fields,
// no atomics, nothing shared on the hot path); Server.Stats collects them by
// running a task on each loop.
type loopStats struct {
	msgsIn, msgsOut, bytesIn, bytesOut uint64
	queueDrops                         uint64
	handshakes                         uint64
	rejected                           map[int]uint64           // HTTP status of refused handshakes and plain answers
	closeCodes                         map[ws.StatusCode]uint64 // close codes of finished connections
	protocolErrors                     map[string]uint64        // by violation
}

func (st *loopStats) reject(status int) {
	if st.rejected == nil {
		st.rejected = make(map[int]uint64)
	}
	st.rejected[status]++
}

func (st *loopStats) closed(code ws.StatusCode) {
	if st.closeCodes == nil {
		st.closeCodes = make(map[ws.StatusCode]uint64)
	}
	st.closeCodes[code]++
}

func (st *loopStats) protocolError(kind string) {
	if st.protocolErrors == nil {
		st.protocolErrors = make(map[string]uint64)
	}
	st.protocolErrors[kind]++
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
	QueueDrops  uint64 // connections closed for a full write queue
	ReadPauses  uint64 // times reading paused for backpressure (WriteHighWater)
	// MemoryReleases counts the times memory left by a burst was collected
	// and returned to the OS (Config.MemoryReleaseInterval).
	MemoryReleases uint64
	// Rejected counts refused handshakes and plain HTTP answers by status.
	Rejected map[int]uint64
	// CloseCodes counts finished connections by close code (1006: no close frame).
	CloseCodes map[ws.StatusCode]uint64
	// ProtocolErrors counts connections failed for a protocol violation, by kind.
	ProtocolErrors map[string]uint64
}

// Stats collects the counters of every loop by running a task on each (so
// the loops never share a counter); a loop that does not answer within a
// second is left out. Any goroutine; meant for scrapes, not hot paths.
func (s *Server) Stats() Stats {
	st := Stats{
		Conns:          s.open.Load(),
		Loops:          s.cfg.Loops,
		MemoryReleases: s.releases.Load(),
		Rejected:       map[int]uint64{},
		CloseCodes:     map[ws.StatusCode]uint64{},
		ProtocolErrors: map[string]uint64{},
	}
	s.mu.Lock()
	loops := s.loops
	s.mu.Unlock()
	var mu sync.Mutex
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, l := range loops {
		wg.Add(1)
		done := make(chan struct{})
		ok := l.postFn(func() {
			defer close(done)
			mu.Lock()
			defer mu.Unlock()
			ls := &l.stats
			st.Handshakes += ls.handshakes
			st.MessagesIn += ls.msgsIn
			st.MessagesOut += ls.msgsOut
			st.BytesIn += ls.bytesIn
			st.BytesOut += ls.bytesOut
			st.QueueDrops += ls.queueDrops
			st.ReadPauses += l.paused
			for k, v := range ls.rejected {
				st.Rejected[k] += v
			}
			for k, v := range ls.closeCodes {
				st.CloseCodes[k] += v
			}
			for k, v := range ls.protocolErrors {
				st.ProtocolErrors[k] += v
			}
		})
		go func() {
			defer wg.Done()
			if !ok {
				return
			}
			select {
			case <-done:
			case <-ctx.Done():
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return Stats{
		Conns: st.Conns, Loops: st.Loops, Handshakes: st.Handshakes,
		MessagesIn: st.MessagesIn, MessagesOut: st.MessagesOut, BytesIn: st.BytesIn, BytesOut: st.BytesOut,
		QueueDrops: st.QueueDrops, ReadPauses: st.ReadPauses, MemoryReleases: st.MemoryReleases, Rejected: clone(st.Rejected), CloseCodes: clone(st.CloseCodes), ProtocolErrors: clone(st.ProtocolErrors),
	}
}

func clone[K comparable](m map[K]uint64) map[K]uint64 {
	c := make(map[K]uint64, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
