package loadgen

import "github.com/megaws/megaws/client/loop"

// State is the bench's per-connection scratch, kept in the connection's
// Context: messages sent (Seq), the next expected (Next), send times of
// messages in flight (Stamps) and whether the connection was chosen for a
// liveness sample.
type State struct {
	Seq, Next uint64
	Stamps    []int64
	Sample    bool
}

// StateOf returns c's State, attaching a new one on first use; idle
// connections that are never asked carry none. Call it on c's loop
// goroutine.
func StateOf(c *loop.Conn) *State {
	if s, ok := c.Context().(*State); ok {
		return s
	}
	s := &State{}
	c.SetContext(s)
	return s
}

// VerifyFailed records a payload that failed verification and closes the
// connection abortively: its stream can no longer be trusted. The loop
// counts it in Counters.Aborted and logs err among its errors.
func VerifyFailed(c *loop.Conn, err error) { c.Abort(err) }
