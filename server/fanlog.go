package server

// fanLog is one loop's record of the fan-out frames of one target (every
// connection, or a room) that congested connections still wait for. A
// congested recipient queues a run of the log's sequence numbers instead of
// one reference per frame: consecutive broadcasts extend its run, and each
// frame carries a count of the runs that cover it, which only this loop
// touches (no atomic operation per recipient). Frames leave the log from its
// front once no run covers them.
type fanLog struct {
	entries []logEntry // ring
	head, n int
	base    uint64 // sequence number of entries[head]
}

type logEntry struct {
	f    *sharedFrame
	pins int32 // queued runs covering the frame
}

// logEntryOverhead is the memory a log entry counts besides its frame.
const logEntryOverhead = 16

// logFor returns the loop's log for target, creating it.
func (l *Loop) logFor(target fanTarget) *fanLog {
	p := &l.bcastLog
	if target.room != nil {
		p = &target.room.loops[l.idx].log
	}
	if *p == nil {
		*p = &fanLog{}
	}
	return *p
}

// logAppend adds f to g, holding a reference to it, and returns its
// sequence number.
func (l *Loop) logAppend(g *fanLog, f *sharedFrame) uint64 {
	if g.n == len(g.entries) {
		grown := make([]logEntry, max(16, 2*len(g.entries)))
		for i := 0; i < g.n; i++ {
			grown[i] = g.entries[(g.head+i)%len(g.entries)]
		}
		g.entries, g.head = grown, 0
	}
	f.refs.Add(1)
	g.entries[(g.head+g.n)%len(g.entries)] = logEntry{f: f}
	g.n++
	l.queued += logEntryOverhead
	if f.queued.Add(1) == 1 {
		l.queued += len(*f.buf)
	}
	return g.base + uint64(g.n) - 1
}

func (g *fanLog) entry(seq uint64) *logEntry {
	return &g.entries[(g.head+int(seq-g.base))%len(g.entries)]
}

// frame returns the bytes of frame seq.
func (g *fanLog) frame(seq uint64) []byte { return *g.entry(seq).f.buf }

// pin counts one more run covering seq.
func (g *fanLog) pin(seq uint64) { g.entry(seq).pins++ }

// unpin drops a run covering from..to and releases the frames at the front
// of the log that no run covers any more. It returns the memory freed.
func (g *fanLog) unpin(from, to uint64) int {
	for seq := from; seq <= to; seq++ {
		g.entry(seq).pins--
	}
	freed := 0
	for g.n > 0 && g.entries[g.head].pins == 0 {
		e := &g.entries[g.head]
		freed += logEntryOverhead
		if e.f.queued.Add(-1) == 0 {
			freed += len(*e.f.buf)
		}
		e.f.release()
		*e = logEntry{}
		g.head = (g.head + 1) % len(g.entries)
		g.n--
		g.base++
	}
	if g.n == 0 && len(g.entries) > 64 {
		g.entries, g.head = nil, 0
	}
	return freed
}
