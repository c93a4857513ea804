package codec

import (
	"compress/flate"
	"io"
	"runtime"
	"testing"
	"unsafe"
)

// heapOf returns the bytes allocated by f.
func heapOf(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// TestWindowMemory checks that a connection's compression state is its
// History, at most one window of bytes, and logs what the shared objects
// and a compress/flate Writer per connection cost (go test -v).
func TestWindowMemory(t *testing.T) {
	msgs := messageStreams[0].messages(1, 100)
	for wbits := MinWindowBits; wbits <= MaxWindowBits; wbits++ {
		h := NewHistory(wbits)
		d := NewWindowDeflater(1)
		for _, m := range msgs {
			d.AppendCompress(nil, &h, m, true)
		}
		if h.Cap() > 1<<wbits {
			t.Fatalf("bits %d: history occupies %d bytes", wbits, h.Cap())
		}
		t.Logf("History, %d-bit window, after 100 game messages: %d bytes + %d-byte struct", wbits, h.Cap(), unsafe.Sizeof(h))
	}
	t.Logf("WindowDeflater (per loop): %d bytes", heapOf(func() { _ = NewWindowDeflater(1) }))
	var f WindowInflater
	var hist History
	z := NewWindowDeflater(1).AppendCompress(nil, nil, msgs[0], false)
	t.Logf("WindowInflater (per loop): %d bytes", heapOf(func() { _, _ = f.Inflate(&hist, z, 1<<20, false) }))
	for _, level := range []int{flate.BestSpeed, flate.DefaultCompression} {
		t.Logf("compress/flate Writer at level %d (per connection with takeover): %d bytes", level,
			heapOf(func() { _, _ = flate.NewWriter(io.Discard, level) }))
	}
	t.Logf("compress/flate reader (per connection with takeover): %d bytes",
		heapOf(func() { _ = flate.NewReader(nil) }))
}
