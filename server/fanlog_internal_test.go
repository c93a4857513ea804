package server

import (
	"math/rand"
	"testing"
)

// TestFanLogRuns checks the difference-array bookkeeping of fanLog against
// a plain count of the runs covering each frame: random runs are started,
// extended and dropped (whole, or from their front as drains do); the log
// releases a frame exactly when no run covers it and every earlier frame is
// released, and never loses a reference.
func TestFanLogRuns(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	l := &Loop{}
	g := &fanLog{}
	type run struct{ from, to uint64 }
	var runs []*run
	covered := map[uint64]int{}
	frames := map[uint64]*sharedFrame{}
	var next uint64
	for step := 0; step < 20000; step++ {
		switch op := rng.Intn(10); {
		case op < 4: // a new frame, pinned by some runs
			f := &sharedFrame{buf: getFrameBuf(8)}
			*f.buf = append(*f.buf, "frame..."...)
			f.refs.Store(1)
			seq := l.logAppend(g, f)
			f.release() // the delivering loop's own reference
			if seq != next {
				t.Fatalf("seq %d, want %d", seq, next)
			}
			frames[seq] = f
			next++
			for _, r := range runs {
				if r.to+1 == seq && rng.Intn(2) == 0 {
					g.extend(r.to)
					r.to = seq
					covered[seq]++
				}
			}
			if covered[seq] == 0 || rng.Intn(3) == 0 { // appended only for a run
				g.pin(seq)
				runs = append(runs, &run{seq, seq})
				covered[seq]++
			}
		case op < 7 && len(runs) > 0: // a drain takes the front of a run
			i := rng.Intn(len(runs))
			r := runs[i]
			k := uint64(rng.Intn(int(r.to-r.from) + 1))
			if k == r.to-r.from {
				runs = append(runs[:i], runs[i+1:]...)
			}
			g.unpin(r.from, r.from+k)
			for s := r.from; s <= r.from+k; s++ {
				covered[s]--
			}
			r.from += k + 1
		case len(runs) > 0: // a dropped connection
			i := rng.Intn(len(runs))
			r := runs[i]
			runs = append(runs[:i], runs[i+1:]...)
			g.unpin(r.from, r.to)
			for s := r.from; s <= r.to; s++ {
				covered[s]--
			}
		}
		// The log holds exactly the frames from the first covered one on.
		first := next
		for s := uint64(0); s < next; s++ {
			if covered[s] > 0 {
				first = s
				break
			}
		}
		if g.base != first && (g.n != 0 || first != next) {
			t.Fatalf("step %d: log starts at %d, the first covered frame is %d", step, g.base, first)
		}
		for s := uint64(0); s < first; s++ {
			if f := frames[s]; f != nil {
				if f.refs.Load() != 0 {
					t.Fatalf("frame %d released by the log but still referenced", s)
				}
				delete(frames, s)
			}
		}
	}
	// Dropping every run empties the log.
	for _, r := range runs {
		g.unpin(r.from, r.to)
	}
	if g.n != 0 {
		t.Fatalf("%d frames left after every run was dropped", g.n)
	}
}
