package server

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// releaseThreshold is how much heap a collection must be able to give back
// before the releaser runs one.
const releaseThreshold = 32 << 20

// runReleaser returns memory to the OS after bursts. megaws allocates
// nothing per message, so once a burst of large messages (or of handshakes)
// is over, nothing makes the garbage collector run: the burst's buffers
// stay allocated, most of them in gnet's buffer pools, and the process keeps
// its peak RSS until the runtime's forced collection two minutes later.
//
// Every Config.MemoryReleaseInterval the releaser looks at the heap. If no
// collection has run since its previous look and the heap holds at least
// releaseThreshold bytes more than were live after its own last collection
// (or the smallest live heap the runtime has reported since), it collects
// twice (the second empties sync.Pool victim caches) and returns free pages
// to the OS. The heap left after that becomes the new base; when it is
// 32 MiB above the old one (a burst still in use, or more connections), the
// next look collects once more. So a heap that is really live costs two
// extra collections per 32 MiB of growth, and a quiet server with a steady
// heap none.
func (s *Server) runReleaser(ctx context.Context, base uint64) {
	every := s.cfg.MemoryReleaseInterval
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	last := readHeap().cycles
	recheck := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h := readHeap()
		base = min(base, h.live)
		if h.cycles == last && (h.objects >= base+releaseThreshold || recheck) {
			runtime.GC()
			debug.FreeOSMemory()
			s.releases.Add(1)
			h = readHeap()
			// A collection made while a burst was still in use finds it
			// live; look once more, in case it ends before anything else
			// collects.
			recheck = !recheck && h.live >= base+releaseThreshold
			base = h.live
		}
		last = h.cycles
	}
}

type heapState struct {
	cycles  uint64 // completed GC cycles
	live    uint64 // heap bytes live at the end of the last cycle
	objects uint64 // heap bytes in objects now, garbage not yet collected included
}

func readHeap() heapState {
	samples := []metrics.Sample{
		{Name: "/gc/cycles/total:gc-cycles"},
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
	}
	metrics.Read(samples)
	return heapState{samples[0].Value.Uint64(), samples[1].Value.Uint64(), samples[2].Value.Uint64()}
}
