package server

// fanLog is one loop's record of the fan-out frames of one target (every
// connection, or a room) that congested connections still wait for. A
// congested recipient queues a run of the log's sequence numbers instead of
// one reference per frame, and consecutive broadcasts extend its run. How
// many runs cover each frame is kept as a difference array — a run from..to
// adds one at from and takes one at to+1 — so starting, extending and
// dropping a run are O(1) whatever its length, and only this loop touches
// the counts (no atomic operation per recipient). Frames leave the log from
// its front once no run covers them: the running sum from the front is then
// zero.
type fanLog struct {
	entries []logEntry // ring
	head, n int
	base    uint64 // sequence number of entries[head]
	tail    int32  // delta of the next frame to be appended
}

type logEntry struct {
	f     *sharedFrame
	delta int32 // runs starting here minus runs that ended just before
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
	g.entries[(g.head+g.n)%len(g.entries)] = logEntry{f: f, delta: g.tail}
	g.tail = 0
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

// add adds d to the delta at seq (the tail when seq is past the end).
func (g *fanLog) add(seq uint64, d int32) {
	if seq == g.base+uint64(g.n) {
		g.tail += d
		return
	}
	g.entry(seq).delta += d
}

// pin starts a run at seq.
func (g *fanLog) pin(seq uint64) {
	g.add(seq, 1)
	g.add(seq+1, -1)
}

// extend lengthens the run that ends at to by one frame.
func (g *fanLog) extend(to uint64) {
	g.add(to+1, 1)
	g.add(to+2, -1)
}

// unpin drops the run from..to and releases the frames at the front of the
// log that no run covers any more. It returns the memory freed.
func (g *fanLog) unpin(from, to uint64) int {
	g.add(from, -1)
	g.add(to+1, 1)
	freed := 0
	for g.n > 0 && g.entries[g.head].delta == 0 {
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
