package server_test

import (
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/megaws/megaws/server"
)

// After a burst leaves garbage behind and the program stops allocating, the
// server collects it and returns the memory within a few release intervals,
// instead of keeping it until the runtime's two-minute forced collection.
// A steady heap is left alone.
func TestMemoryReleasedAfterBurst(t *testing.T) {
	objects := func() uint64 {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	s, _ := startServer(t, echo{}, server.Config{MemoryReleaseInterval: 50 * time.Millisecond})
	runtime.GC()
	runtime.GC()
	baseline := objects() // what earlier tests in this process left live
	time.Sleep(200 * time.Millisecond)
	before := s.Stats().MemoryReleases

	// A quiet, steady heap: nothing to release.
	time.Sleep(300 * time.Millisecond)
	if n := s.Stats().MemoryReleases; n != before {
		t.Fatalf("steady heap: %d releases, want none", n-before)
	}

	// A burst: 96 MiB held while in use (as per-connection buffers are
	// during a burst of large messages), then dropped. A release that runs
	// while the buffers are still in use (the process is shared with other
	// tests, and a loaded machine makes the burst slow) measures them as
	// live, and nothing after it makes the heap grow again: that burst's
	// garbage waits for the runtime's own collection. Such a round is
	// repeated, up to three times; the one without it must be freed.
	for round := 1; ; round++ {
		start := s.Stats().MemoryReleases
		burst := make([][]byte, 96)
		for i := range burst {
			burst[i] = make([]byte, 1<<20)
			burst[i][0] = byte(i)
		}
		// The burst's last collection ran while the buffers were in use,
		// as the runtime's own collections do during a real burst; after
		// it the program allocates nothing, so nothing would collect them.
		runtime.GC()
		during := s.Stats().MemoryReleases
		sink(burst) // the last use: from here on the buffers are garbage
		if during != start && round < 3 {
			t.Logf("round %d: %d releases while the burst was in use; again", round, during-start)
			runtime.GC()
			time.Sleep(200 * time.Millisecond)
			continue
		}
		before = during
		break
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().MemoryReleases == before || objects() > baseline+32<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("%d releases within 5 s; the heap still holds %d MiB of objects (%d MiB before the burst)", s.Stats().MemoryReleases-before, objects()>>20, baseline>>20)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// And then it settles: no release loop on the heap that is left.
	n := s.Stats().MemoryReleases
	time.Sleep(400 * time.Millisecond)
	if m := s.Stats().MemoryReleases; m > n+1 {
		t.Errorf("%d more releases on a steady heap", m-n)
	}
}

var sinkHole [][]byte

//go:noinline
func sink(b [][]byte) { sinkHole = b; sinkHole = nil }
