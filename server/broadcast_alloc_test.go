//go:build !race && linux

package server_test

import (
	"testing"
	"time"

	"github.com/megaws/megaws/server"
)

// TestBroadcastNoPerRecipientAlloc checks that a publish allocates the same
// whether the room has 100 or 1,000 members: the frame is encoded once and
// its bytes are shared by every recipient. The clients' readers allocate
// nothing, so the count is the server's.
func TestBroadcastNoPerRecipientAlloc(t *testing.T) {
	// A coarse timer resolution keeps the timer driver's per-tick work out of
	// the count: the larger room takes longer per publish and would see more ticks.
	cfg := server.Config{TimerResolution: time.Second}
	payload := make([]byte, 1024)
	perPublish := func(members int) float64 {
		f := newFanout(t, members, cfg)
		defer f.stop()
		f.publish(t, payload, 16, 16) // warm the frame pool and gnet's buffers
		return testing.AllocsPerRun(50, func() { f.publish(t, payload, 1, 1) })
	}
	small, large := perPublish(100), perPublish(1_000)
	t.Logf("allocations per publish: %.2f with 100 members, %.2f with 1,000", small, large)
	if large-small >= 1 {
		t.Errorf("a publish to 1,000 members allocates %.2f times, to 100 members %.2f: allocations grow with the recipients", large, small)
	}
}
