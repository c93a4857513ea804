//go:build !race

package outbox

import "testing"

// TestPushAllocs: once both arenas have grown, Push allocates nothing.
func TestPushAllocs(t *testing.T) {
	q := New(1 << 20)
	m := make([]byte, 100)
	var batch []Item
	for range 3 { // grow both arenas
		for range 100 {
			q.Push("room.x", m)
		}
		batch = q.Take(batch[:0])
	}
	allocs := testing.AllocsPerRun(1000, func() {
		q.Push("room.x", m)
		if q.Len() > 50*len(m) {
			batch = q.Take(batch[:0])
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per Push in steady state, want 0", allocs)
	}
}
