package scenario

import (
	"net/netip"
	"sort"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latency is a latency distribution in microseconds.
type Latency struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean_us"`
	P50   int64   `json:"p50_us"`
	P90   int64   `json:"p90_us"`
	P99   int64   `json:"p99_us"`
	P999  int64   `json:"p999_us"`
	Max   int64   `json:"max_us"`
}

// LatencyOf summarizes an HDR histogram recorded in microseconds.
func LatencyOf(h *hdrhistogram.Histogram) Latency {
	return Latency{
		Count: h.TotalCount(),
		Mean:  h.Mean(),
		P50:   h.ValueAtQuantile(50),
		P90:   h.ValueAtQuantile(90),
		P99:   h.ValueAtQuantile(99),
		P999:  h.ValueAtQuantile(99.9),
		Max:   h.Max(),
	}
}

// SourceRange returns the addresses from first to last inclusive.
func SourceRange(first, last netip.Addr) []netip.Addr {
	var out []netip.Addr
	for a := first; a.IsValid() && a.Compare(last) <= 0; a = a.Next() {
		out = append(out, a)
	}
	return out
}

// DefaultSources are 127.0.0.2 to 127.0.0.250, the loopback addresses the
// load generator binds to.
func DefaultSources() []netip.Addr {
	return SourceRange(netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.250"))
}

// Median returns the median of xs (the mean of the middle two for even counts).
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
