package scenario

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"sort"
	"sync"
	"time"
)

// slowRun samples a slow-readers run from the outside: the server's RSS
// (by the caller, every 100 ms), its /debug/vars, and the state of the
// server's end of every slow reader's connection in /proc/net/tcp.
type slowRun struct {
	cfg   SlowReadersConfig
	srv   *Server
	pool  *slowPool
	pids  []int
	start time.Time

	mu           sync.Mutex
	samples      []SlowSample
	vars         []varsPoint // every varsEvery
	scanEvery    time.Duration
	kernelQueued int64

	stop    chan struct{}
	wg      sync.WaitGroup
	running bool
}

// varsPoint is one /debug/vars sample, summed over the server's processes.
type varsPoint struct {
	t      float64
	ok     bool  // some process answered
	conns  int64 // -1 if not published
	heap   int64 // memstats.HeapInuse; -1 if not published
	megaws *megawsStats
}

// megawsStats is the part of megaws's server.Stats the run reads.
type megawsStats struct {
	QueueDrops  uint64
	MessagesIn  uint64
	MessagesOut uint64
	BytesOut    uint64
	ReadPauses  uint64
	CloseCodes  map[string]uint64
}

// slowVarsClient gives up quickly: a server busy copying must not hold the
// sampler back for long.
var slowVarsClient = &http.Client{Timeout: 2 * time.Second}

func fetchSlowVars(admin []string) varsPoint {
	v := varsPoint{conns: -1, heap: -1}
	for _, a := range admin {
		resp, err := slowVarsClient.Get("http://" + a + "/debug/vars")
		if err != nil {
			continue
		}
		var raw struct {
			Connections *int64 `json:"connections"`
			Memstats    *struct {
				HeapInuse *int64 `json:"HeapInuse"`
			} `json:"memstats"`
			Megaws *megawsStats `json:"megaws"`
		}
		err = json.NewDecoder(resp.Body).Decode(&raw)
		_ = resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			continue
		}
		v.ok = true
		if raw.Connections != nil {
			v.conns = max(v.conns, 0) + *raw.Connections
		}
		if raw.Memstats != nil && raw.Memstats.HeapInuse != nil {
			v.heap = max(v.heap, 0) + *raw.Memstats.HeapInuse
		}
		if m := raw.Megaws; m != nil {
			if v.megaws == nil {
				v.megaws = &megawsStats{CloseCodes: map[string]uint64{}}
			}
			v.megaws.QueueDrops += m.QueueDrops
			v.megaws.MessagesIn += m.MessagesIn
			v.megaws.MessagesOut += m.MessagesOut
			v.megaws.BytesOut += m.BytesOut
			v.megaws.ReadPauses += m.ReadPauses
			for k, n := range m.CloseCodes {
				v.megaws.CloseCodes[k] += n
			}
		}
	}
	return v
}

// rss is the server's resident memory, summed over the processes it had
// when the run started.
func (r *slowRun) rss() int64 {
	var n int64
	for _, p := range r.pids {
		v, _ := ProcRSS(p)
		n += v
	}
	return n
}

func (r *slowRun) since(t time.Time) float64 { return t.Sub(r.start).Seconds() }

// startSamplers starts the /debug/vars and /proc/net/tcp samplers.
func (r *slowRun) startSamplers() {
	r.stop = make(chan struct{})
	r.running = true
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		t := time.NewTicker(varsEvery)
		defer t.Stop()
		for {
			v := fetchSlowVars(r.srv.Admin)
			v.t = r.since(time.Now())
			r.mu.Lock()
			r.vars = append(r.vars, v)
			r.mu.Unlock()
			select {
			case <-r.stop:
				return
			case <-t.C:
			}
		}
	}()
	go func() {
		defer r.wg.Done()
		for {
			t := time.Now()
			r.scan(t)
			// A scan reads every TCP socket on the machine: keep it to a
			// fifth of the time at most.
			every := max(minScanEvery, 5*time.Since(t))
			r.mu.Lock()
			r.scanEvery = max(r.scanEvery, every)
			r.mu.Unlock()
			select {
			case <-r.stop:
				return
			case <-time.After(every):
			}
		}
	}()
}

func (r *slowRun) stopSamplers() {
	if !r.running {
		return
	}
	r.running = false
	close(r.stop)
	r.wg.Wait()
}

// scan records the state of the server's end of every slow reader.
func (r *slowRun) scan(at time.Time) {
	server, err := netip.ParseAddrPort(r.srv.Addr)
	if err != nil {
		return
	}
	view, err := scanTCP(server)
	if err != nil {
		return
	}
	q := r.pool.markServer(view, at.Sub(r.start))
	r.mu.Lock()
	r.kernelQueued = q
	r.mu.Unlock()
}

// sample appends a timeline point with the latest vars.
func (r *slowRun) sample(now time.Time, rss, taken, delivered int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := SlowSample{T: r.since(now), RSS: rss, Taken: taken, Delivered: delivered, Conns: -1, QueueDrops: -1}
	if n := len(r.vars); n > 0 {
		v := r.vars[n-1]
		s.Conns = v.conns
		if v.megaws != nil {
			s.QueueDrops = int64(v.megaws.QueueDrops)
		}
	}
	r.samples = append(r.samples, s)
}

func (r *slowRun) timeline() []SlowSample {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]SlowSample(nil), r.samples...)
}

func (r *slowRun) disconnected() int64 { return r.pool.gone.Load() }

// varsResult compares the vars before and after the run.
func (r *slowRun) varsResult(v0, v1 varsPoint) *SlowVars {
	if !v1.ok {
		return nil
	}
	out := &SlowVars{ConnsBefore: v0.conns, ConnsAfter: v1.conns, HeapInuse: v1.heap, HeapPeak: v1.heap}
	r.mu.Lock()
	points := append([]varsPoint(nil), r.vars...)
	r.mu.Unlock()
	for _, v := range points {
		out.HeapPeak = max(out.HeapPeak, v.heap)
	}
	if v1.megaws == nil {
		return out
	}
	m0 := v0.megaws
	if m0 == nil {
		m0 = &megawsStats{}
	}
	m1 := v1.megaws
	m := &MegawsCounters{
		QueueDrops: m1.QueueDrops - m0.QueueDrops, MessagesIn: m1.MessagesIn - m0.MessagesIn,
		MessagesOut: m1.MessagesOut - m0.MessagesOut, BytesOut: m1.BytesOut - m0.BytesOut,
		ReadPauses: m1.ReadPauses - m0.ReadPauses, CloseCodes: m1.CloseCodes,
		FirstDropAt: -1, LastDropAt: -1,
	}
	prev := m0.QueueDrops
	for _, v := range append(points, varsPoint{t: r.since(time.Now()), megaws: m1}) {
		if v.megaws == nil {
			continue
		}
		if v.megaws.QueueDrops > prev {
			if m.FirstDropAt < 0 {
				m.FirstDropAt = v.t
			}
			m.LastDropAt = v.t
			prev = v.megaws.QueueDrops
		}
	}
	out.Megaws = m
	return out
}

// outcome sums up what became of the slow readers.
func (r *slowRun) outcome() SlowOutcome {
	conns := r.pool.Snapshot()
	o := SlowOutcome{Readers: len(conns), ClientSaw: map[string]int{}, ServerStates: map[string]int{}, FirstAt: -1, MedianAt: -1, LastAt: -1}
	var at []float64
	for _, c := range conns {
		if c.serverState != "" {
			o.ServerStates[c.serverState]++
		}
		if !c.ended && !c.serverLeft {
			continue
		}
		o.Disconnected++
		t := time.Duration(1<<63 - 1)
		if c.ended {
			o.ClientSaw[c.how]++
			t = c.endedAt
		} else {
			o.ClientSaw["nothing"]++
		}
		if c.serverLeft {
			t = min(t, c.serverLeftAt)
		}
		at = append(at, t.Seconds())
	}
	if len(at) > 0 {
		sort.Float64s(at)
		o.FirstAt, o.MedianAt, o.LastAt = at[0], at[len(at)/2], at[len(at)-1]
	}
	r.mu.Lock()
	o.KernelQueuedBytes, o.ScanSeconds = r.kernelQueued, r.scanEvery.Seconds()
	r.mu.Unlock()
	return o
}

func sizeLabel(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

func gib(n int64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
}
