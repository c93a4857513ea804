package bot

import (
	"math/bits"
	"time"
)

// histogram records durations in log-linear buckets: 16 per power of two,
// so a quantile is within 1/16 (6%) of the true value, in a fixed 8 KiB.
// It belongs to one event loop; merge copies to combine loops.
type histogram struct {
	counts [64 * subBuckets]uint64
	n      uint64
	sum    time.Duration
	max    time.Duration
}

const subBits = 4
const subBuckets = 1 << subBits

func bucketOf(v uint64) int {
	if v < subBuckets {
		return int(v)
	}
	e := bits.Len64(v) - subBits - 1 // shift that leaves subBits+1 bits
	return (e+1)*subBuckets + int(v>>e)&(subBuckets-1)
}

// lowerBound is the smallest value of bucket i.
func lowerBound(i int) uint64 {
	if i < subBuckets {
		return uint64(i)
	}
	e := i/subBuckets - 1
	return (subBuckets | uint64(i%subBuckets)) << e
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0 // clocks of one host; a negative age is rounding
	}
	h.counts[bucketOf(uint64(d))]++
	h.n++
	h.sum += d
	h.max = max(h.max, d)
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// quantile returns the value below which a fraction q of the samples lie
// (the middle of its bucket).
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n-1)) + 1
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := lowerBound(i), lowerBound(i+1)
			return min(time.Duration(lo+(hi-lo)/2), h.max)
		}
	}
	return h.max
}

// Latency summarizes a set of latency samples.
type Latency struct {
	Samples        uint64
	Mean, P50, P90 time.Duration
	P99, P999, Max time.Duration
}

func (h *histogram) summary() Latency {
	l := Latency{Samples: h.n, Max: h.max}
	if h.n > 0 {
		l.Mean = h.sum / time.Duration(h.n)
		l.P50, l.P90, l.P99, l.P999 = h.quantile(0.5), h.quantile(0.9), h.quantile(0.99), h.quantile(0.999)
	}
	return l
}
