//go:build !race

package codec

import (
	"testing"
)

// TestWindowAllocs checks that compressing and decompressing a message with
// a WindowDeflater and a WindowInflater allocates nothing once the
// connection's history has grown to its window.
func TestWindowAllocs(t *testing.T) {
	for _, s := range messageStreams[:2] {
		for _, wbits := range []int{9, 12, 15} {
			for _, takeover := range []bool{true, false} {
				msgs := s.messages(1, 200)
				d := NewWindowDeflater(1)
				var f WindowInflater
				out, in := NewHistory(wbits), NewHistory(wbits)
				var z []byte
				step := func(m []byte) {
					z = d.AppendCompress(z[:0], &out, m, takeover)
					if got, err := f.Inflate(&in, z, len(m), takeover); err != nil || len(got) != len(m) {
						t.Fatal(err)
					}
				}
				for _, m := range msgs[:100] {
					step(m)
				}
				i := 100
				allocs := testing.AllocsPerRun(100, func() {
					step(msgs[i%len(msgs)])
					i++
				})
				if allocs != 0 {
					t.Errorf("%s, bits %d, takeover %v: %.1f allocations per message, want 0", s.name, wbits, takeover, allocs)
				}
			}
		}
	}
}
