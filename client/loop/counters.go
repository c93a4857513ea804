//go:build linux

package loop

import (
	"sync"
	"sync/atomic"
)

// Counters are the cumulative totals of a Loop or a Pool: every field counts
// events since the loop started, except Open.
type Counters struct {
	Dialed         int64 `json:"dialed"`          // connect(2) calls started
	Established    int64 `json:"established"`     // handshakes completed and verified
	Failed         int64 `json:"failed"`          // dials that never reached open: connect error, timeout, bad handshake
	Open           int64 `json:"open"`            // connections open right now
	Closed         int64 `json:"closed"`          // orderly closes we initiated and completed
	Dropped        int64 `json:"dropped"`         // open connections lost without our asking: server close, EOF, reset, protocol error
	Aborted        int64 `json:"aborted"`         // open connections the application ended with Conn.Abort
	Sent           int64 `json:"sent"`            // data messages sent
	Recv           int64 `json:"recv"`            // data messages received
	BytesSent      int64 `json:"bytes_sent"`      // data payload bytes sent
	BytesRecv      int64 `json:"bytes_recv"`      // data payload bytes received
	ProtocolErrors int64 `json:"protocol_errors"` // connections failed because the server broke RFC 6455 (also counted in Dropped)
	Pings          int64 `json:"pings"`           // pings received from the server (each answered with a pong)
	CloseTimeouts  int64 `json:"close_timeouts"`  // our close frames the server did not answer within CloseTimeout
}

// Add adds o to c field by field.
func (c *Counters) Add(o Counters) {
	c.Dialed += o.Dialed
	c.Established += o.Established
	c.Failed += o.Failed
	c.Open += o.Open
	c.Closed += o.Closed
	c.Dropped += o.Dropped
	c.Aborted += o.Aborted
	c.Sent += o.Sent
	c.Recv += o.Recv
	c.BytesSent += o.BytesSent
	c.BytesRecv += o.BytesRecv
	c.ProtocolErrors += o.ProtocolErrors
	c.Pings += o.Pings
	c.CloseTimeouts += o.CloseTimeouts
}

// Errors returns the number of failures of any kind: failed dials, dropped
// and aborted connections, protocol errors. Close handshakes the server left
// unanswered are counted apart (CloseTimeouts): the connection was already
// being closed.
func (c Counters) Errors() int64 {
	return c.Failed + c.Dropped + c.Aborted + c.ProtocolErrors
}

// counters is the atomic form of Counters, written by one loop.
type counters struct {
	dialed, established, failed, open, closed, dropped, aborted atomic.Int64
	sent, recv, bytesSent, bytesRecv                            atomic.Int64
	protocolErrors, pings, closeTimeouts                        atomic.Int64
}

func (c *counters) snapshot() Counters {
	return Counters{
		Dialed:         c.dialed.Load(),
		Established:    c.established.Load(),
		Failed:         c.failed.Load(),
		Open:           c.open.Load(),
		Closed:         c.closed.Load(),
		Dropped:        c.dropped.Load(),
		Aborted:        c.aborted.Load(),
		Sent:           c.sent.Load(),
		Recv:           c.recv.Load(),
		BytesSent:      c.bytesSent.Load(),
		BytesRecv:      c.bytesRecv.Load(),
		ProtocolErrors: c.protocolErrors.Load(),
		Pings:          c.pings.Load(),
		CloseTimeouts:  c.closeTimeouts.Load(),
	}
}

// errorLog keeps the first few distinct error messages, so a report can
// show what went wrong without logging every failure.
type errorLog struct {
	mu   sync.Mutex
	msgs map[string]int64
}

const maxErrorKinds = 16

func (e *errorLog) add(msg string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.msgs == nil {
		e.msgs = make(map[string]int64)
	}
	if _, ok := e.msgs[msg]; ok || len(e.msgs) < maxErrorKinds {
		e.msgs[msg]++
	} else {
		e.msgs["(other errors)"]++
	}
}

func (e *errorLog) snapshot(into map[string]int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, v := range e.msgs {
		into[k] += v
	}
}
