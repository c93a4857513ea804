package server

import (
	"errors"
	"log/slog"

	"github.com/gobwas/ws"
)

// RateLimit bounds what one connection may send, as token buckets refilled
// on the event loop's clock. A zero field is no limit. See Config.RateLimit.
type RateLimit struct {
	// Messages is the sustained rate, in messages per second.
	Messages float64
	// MessageBurst is how many messages may arrive at once above that rate.
	// Default: one second's worth (Messages), at least 1.
	MessageBurst int
	// Bytes is the sustained rate, in payload bytes per second (after
	// decompression).
	Bytes float64
	// ByteBurst is how many bytes may arrive at once above that rate; a
	// message larger than it is always over the limit. Default: one
	// second's worth (Bytes), at least 64 KiB.
	ByteBurst int
	// Close closes a connection that goes over a limit with 1008
	// (ErrRateLimited); otherwise the message is dropped: OnMessage does not
	// see it, the connection stays open. Either way Stats.RateLimited counts
	// it.
	Close bool
}

// ErrRateLimited: the peer sent faster than Config.RateLimit allows and the
// limit closes connections (close 1008).
var ErrRateLimited = errors.New("megaws: rate limit exceeded")

func (r RateLimit) on() bool { return r.Messages > 0 || r.Bytes > 0 }

func (r RateLimit) withDefaults() RateLimit {
	if r.Messages > 0 && r.MessageBurst <= 0 {
		r.MessageBurst = max(int(r.Messages), 1)
	}
	if r.Bytes > 0 && r.ByteBurst <= 0 {
		r.ByteBurst = max(int(r.Bytes), 64<<10)
	}
	return r
}

// rateState is a connection's buckets.
type rateState struct {
	msgs, bytes float64
	last        int64 // loop clock of the last refill, ns
}

// admit charges a message of n bytes to c's buckets and reports whether it
// may be handed to the handler. Over the limit, the message is dropped, or
// the connection failed with 1008.
func (l *Loop) admit(c *Conn, n int) bool {
	rl := &l.s.cfg.RateLimit
	if !rl.on() {
		return true
	}
	e := c.extState()
	r := e.rate
	if r == nil {
		r = &rateState{msgs: float64(rl.MessageBurst), bytes: float64(rl.ByteBurst), last: l.clock}
		e.rate = r
	}
	dt := float64(l.clock-r.last) / 1e9
	r.last = l.clock
	if rl.Messages > 0 {
		r.msgs = min(r.msgs+dt*rl.Messages, float64(rl.MessageBurst))
	}
	if rl.Bytes > 0 {
		r.bytes = min(r.bytes+dt*rl.Bytes, float64(rl.ByteBurst))
	}
	ok := (rl.Messages <= 0 || r.msgs >= 1) && (rl.Bytes <= 0 || r.bytes >= float64(n))
	if ok {
		if rl.Messages > 0 {
			r.msgs--
		}
		if rl.Bytes > 0 {
			r.bytes -= float64(n)
		}
		return true
	}
	l.stats.rateLimited.Add(1)
	l.logConn(slog.LevelWarn, "megaws: rate limit exceeded", c, "close", rl.Close)
	if rl.Close {
		l.failWith(c, ws.StatusPolicyViolation, "rate limit exceeded", ErrRateLimited)
	}
	return false
}
