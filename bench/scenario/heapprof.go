package scenario

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// HeapBreakdown says where the live heap that idle connections added went:
// the heap profiles of the server's worker processes before the first
// connection and at the hold, summed over the processes, their difference
// by allocation site, divided by the connections those processes held.
// A Go heap profile samples one allocation per SampleRate bytes on average
// and scales each sample up by the inverse of its sampling probability
// (as go tool pprof does), so small sites are estimates: Samples says how
// many sampled objects the figures rest on.
type HeapBreakdown struct {
	Processes      int        `json:"processes"`   // profiles summed
	Conns          int64      `json:"conns"`       // connections held by those processes at the hold
	SampleRate     int64      `json:"sample_rate"` // runtime.MemProfileRate of the server, bytes
	Samples        int64      `json:"samples"`     // sampled live objects at the hold
	InuseBytes     int64      `json:"inuse_bytes"` // live heap at the hold (estimated from the samples)
	BaseInuseBytes int64      `json:"base_inuse_bytes"`
	PerConn        float64    `json:"bytes_per_conn"` // (InuseBytes - BaseInuseBytes) / Conns
	Sites          []HeapSite `json:"sites"`          // the growth by allocation site, largest first
	Top            []HeapFunc `json:"top"`            // functions by growth, largest first
	Error          string     `json:"error,omitempty"`
}

// HeapSite is the live heap growth of one kind of allocation site.
type HeapSite struct {
	Site    string  `json:"site"`
	Bytes   int64   `json:"bytes"`
	PerConn float64 `json:"bytes_per_conn"`
}

// HeapFunc is the live heap of the allocations made by one function (the
// innermost frame outside the Go runtime).
type HeapFunc struct {
	Function string  `json:"function"`
	Bytes    int64   `json:"inuse_bytes"` // at the hold
	Growth   int64   `json:"growth_bytes"`
	PerConn  float64 `json:"bytes_per_conn"` // growth / connections
}

// heapSiteRules name the allocation sites of an idle connection on a gnet
// server, by the function that allocated (innermost frame outside the
// runtime); the first rule that matches wins.
var heapSiteRules = []struct {
	site     string
	prefixes []string
}{
	{"gnet conn", []string{"github.com/panjf2000/gnet/v2.newStreamConn", "github.com/panjf2000/gnet/v2.newTCPConn"}},
	{"gnet conn map", []string{"github.com/panjf2000/gnet/v2.(*connMatrix)"}},
	{"gnet addresses", []string{"github.com/panjf2000/gnet/v2/pkg/socket.", "golang.org/x/sys/unix.anyToSockaddr"}},
	{"megaws Conn", []string{"github.com/megaws/megaws/server.(*Server).onOpen"}},
	{"megaws, other", []string{"github.com/megaws/megaws/"}},
	{"gnet, other", []string{"github.com/panjf2000/gnet/"}},
}

// HeapSiteOf names the allocation site of a stack (function names,
// innermost first): one of heapSiteRules or "others".
func HeapSiteOf(frames []string) string {
	fn := allocFunc(frames)
	for _, r := range heapSiteRules {
		for _, p := range r.prefixes {
			if strings.HasPrefix(fn, p) {
				return r.site
			}
		}
	}
	return "others"
}

// allocFunc returns the innermost frame outside the runtime: the code
// that asked for the memory (a map insert is charged to its caller).
func allocFunc(frames []string) string {
	for _, f := range frames {
		if !strings.HasPrefix(f, "runtime.") && !strings.HasPrefix(f, "internal/runtime/") {
			return f
		}
	}
	if len(frames) > 0 {
		return frames[0]
	}
	return "?"
}

// heapRecord is one stack of a heap profile: its live objects and bytes,
// scaled for sampling, and the sampled count they rest on.
type heapRecord struct {
	objects, bytes float64
	samples        int64
	frames         []string // function names, innermost first
}

// heapProfile is a parsed legacy-format heap profile.
type heapProfile struct {
	rate    int64
	records []heapRecord
}

var (
	heapHeaderRE = regexp.MustCompile(`^heap profile: \d+: \d+ \[\d+: \d+\] @ heap/(\d+)`)
	heapRecordRE = regexp.MustCompile(`^(\d+): (\d+) \[\d+: \d+\] @`)
)

// parseHeapProfile reads the text a Go program's /debug/pprof/heap?debug=1
// serves: a header with twice the sampling rate, then one record per
// stack ("inuse_objects: inuse_bytes [alloc_objects: alloc_bytes] @
// addresses") followed by its frames ("#\t0xaddr\tfunction+0xoff\tfile:line").
func parseHeapProfile(b []byte) (*heapProfile, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	if !sc.Scan() {
		return nil, fmt.Errorf("heap profile: empty")
	}
	m := heapHeaderRE.FindStringSubmatch(sc.Text())
	if m == nil {
		return nil, fmt.Errorf("heap profile: unexpected header %q", sc.Text())
	}
	twice, _ := strconv.ParseInt(m[1], 10, 64)
	p := &heapProfile{rate: twice / 2}
	var cur *heapRecord
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# runtime.MemStats") {
			break
		}
		if m := heapRecordRE.FindStringSubmatch(line); m != nil {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			sz, _ := strconv.ParseInt(m[2], 10, 64)
			o, by := scaleHeapSample(n, sz, p.rate)
			p.records = append(p.records, heapRecord{objects: o, bytes: by, samples: n})
			cur = &p.records[len(p.records)-1]
			continue
		}
		if cur != nil && strings.HasPrefix(line, "#\t0x") {
			f := strings.Split(line, "\t")
			if len(f) >= 3 {
				fn := strings.TrimSpace(f[2])
				if i := strings.LastIndex(fn, "+0x"); i > 0 {
					fn = fn[:i]
				}
				cur.frames = append(cur.frames, fn)
			}
		}
	}
	return p, sc.Err()
}

// scaleHeapSample undoes the sampling of a heap profile record the way
// runtime/pprof does for its protobuf profiles: an allocation of size s is
// sampled with probability 1-exp(-s/rate).
func scaleHeapSample(count, size, rate int64) (float64, float64) {
	if count == 0 || size == 0 {
		return 0, 0
	}
	if rate <= 1 {
		return float64(count), float64(size)
	}
	avg := float64(size) / float64(count)
	scale := 1 / (1 - math.Exp(-avg/float64(rate)))
	return float64(count) * scale, float64(size) * scale
}

// heapTotals sums profiles by site and by allocating function.
type heapTotals struct {
	bytes   float64
	samples int64
	sites   map[string]float64
	funcs   map[string]float64
}

func sumHeapProfiles(ps []*heapProfile) heapTotals {
	t := heapTotals{sites: map[string]float64{}, funcs: map[string]float64{}}
	for _, p := range ps {
		for _, r := range p.records {
			t.bytes += r.bytes
			t.samples += r.samples
			t.sites[HeapSiteOf(r.frames)] += r.bytes
			t.funcs[allocFunc(r.frames)] += r.bytes
		}
	}
	return t
}

// newHeapBreakdown compares the profiles taken before the first connection
// (base) with those at the hold (of the same processes), conns being the
// connections the processes held at the hold.
func newHeapBreakdown(base, hold []*heapProfile, conns int64) *HeapBreakdown {
	b, h := sumHeapProfiles(base), sumHeapProfiles(hold)
	hb := &HeapBreakdown{Processes: len(hold), Conns: conns, Samples: h.samples, InuseBytes: int64(h.bytes), BaseInuseBytes: int64(b.bytes)}
	if len(hold) > 0 {
		hb.SampleRate = hold[0].rate
	}
	per := func(v float64) float64 {
		if conns <= 0 {
			return 0
		}
		return v / float64(conns)
	}
	hb.PerConn = per(h.bytes - b.bytes)
	for site, v := range h.sites {
		g := v - b.sites[site]
		hb.Sites = append(hb.Sites, HeapSite{Site: site, Bytes: int64(g), PerConn: per(g)})
	}
	sort.Slice(hb.Sites, func(i, j int) bool { return hb.Sites[i].Bytes > hb.Sites[j].Bytes })
	for fn, v := range h.funcs {
		g := v - b.funcs[fn]
		hb.Top = append(hb.Top, HeapFunc{Function: fn, Bytes: int64(v), Growth: int64(g), PerConn: per(g)})
	}
	sort.Slice(hb.Top, func(i, j int) bool { return hb.Top[i].Growth > hb.Top[j].Growth })
	if len(hb.Top) > 15 {
		hb.Top = hb.Top[:15]
	}
	return hb
}
