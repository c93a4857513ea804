//go:build linux && !race

package loop

import "testing"

// TestEchoAllocs: the steady-state echo path allocates nothing per message.
func TestEchoAllocs(t *testing.T) {
	c, in := echoRig(t, 64)
	c.feed(in) // the buffers reach their size
	c.loop.flush()
	if n := testing.AllocsPerRun(100, func() {
		c.feed(in)
		c.loop.flush()
	}); n != 0 {
		t.Fatalf("%v allocations per 64 echoes", n)
	}
	if got := c.Context().(*echoState).next; got != 101*64+64 {
		t.Fatalf("%d messages handled", got)
	}
}
