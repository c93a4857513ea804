package bot

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestHistogramQuantiles: quantiles are within the buckets' 1/16 of the
// exact ones, for values from nanoseconds to seconds.
func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	var all []time.Duration
	for range 100_000 {
		d := time.Duration(rand.ExpFloat64() * float64(5*time.Millisecond))
		h.record(d)
		all = append(all, d)
	}
	slices.Sort(all)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := all[int(q*float64(len(all)-1))]
		got := h.quantile(q)
		if diff := float64(got-exact) / float64(exact); diff > 1.0/16 || diff < -1.0/16 {
			t.Errorf("q%.3f: %v, exact %v", q, got, exact)
		}
	}
	for v := uint64(0); v < 1<<20; v += 7 {
		i := bucketOf(v)
		if lowerBound(i) > v || lowerBound(i+1) <= v {
			t.Fatalf("%d in bucket %d [%d, %d)", v, i, lowerBound(i), lowerBound(i+1))
		}
	}
}
