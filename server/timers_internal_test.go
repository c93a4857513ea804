package server

import (
	"testing"
	"time"
)

// TestIdleLoopSleeps: a loop whose connections are all idle wakes only for
// due deadlines — about once a second for keepalive bookkeeping, not at every
// timer tick (the 10 ms ticker used to wake every loop 100 times a second
// whatever the load).
func TestIdleLoopSleeps(t *testing.T) {
	h := &openRecorder{opened: make(chan *Conn, 256)}
	s := startInternal(t, h, Config{Loops: 1})
	for i := 0; i < 200; i++ {
		dialUpgraded(t, s, h)
	}
	l := s.loopList()[0]
	time.Sleep(200 * time.Millisecond)
	before := l.wakeups.Load()
	const watch = 3 * time.Second
	time.Sleep(watch)
	woke := l.wakeups.Load() - before
	// One wake-up per keepalive grain (1 s) plus slack for the handshake
	// deadlines the loop already had armed.
	if woke > 8 {
		t.Fatalf("idle loop woke %d times in %v, want about %v/1s", woke, watch, watch)
	}
	t.Logf("200 idle connections: %d wake-ups in %v", woke, watch)
}

// TestTimerWheelFarDeadlines: deadlines beyond one turn of the wheel (4,096
// ticks) and many connections sharing slots still fire in time.
func TestTimerWheelFarDeadlines(t *testing.T) {
	h := &openRecorder{opened: make(chan *Conn, 16)}
	s := startInternal(t, h, Config{Loops: 1, TimerResolution: time.Millisecond, PingInterval: -1, IdleTimeout: 6 * time.Second})
	start := time.Now() // the server reads the handshake after this
	nc, _ := dialUpgraded(t, s, h)
	_ = nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 1024)
	for {
		if _, err := nc.Read(buf); err != nil {
			break
		}
	}
	if el := time.Since(start); el < 6*time.Second || el > 20*time.Second {
		t.Fatalf("idle timeout of 6 s (6,000 ticks, more than one wheel turn) fired after %v", el)
	}
}
