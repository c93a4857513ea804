package loadgen

import "github.com/HdrHistogram/hdrhistogram-go"

// NewHistogram returns a latency histogram in microseconds from 1 µs to
// 100 s with 3 significant digits, the unit every scenario records in.
func NewHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, 100_000_000, 3)
}
