package server

import (
	"testing"
	"unsafe"
)

// An idle connection's memory is mostly gnet's and this struct; keep it in
// the 112-byte size class (README: idle memory per connection).
func TestConnSize(t *testing.T) {
	if n := unsafe.Sizeof(Conn{}); n > 112 {
		t.Fatalf("Conn is %d bytes, want <= 112", n)
	}
	// A loop's fixed cost: the timer wheel must not hold Conn-sized sentinels.
	if n := unsafe.Sizeof(Loop{}); n > 64<<10 {
		t.Fatalf("Loop is %d bytes, want <= 64 KiB", n)
	}
}
