package server

import (
	"testing"
	"unsafe"
)

// An idle connection's memory is mostly gnet's and this struct; keep it in
// the 96-byte size class (README: idle memory per connection).
func TestConnSize(t *testing.T) {
	if n := unsafe.Sizeof(Conn{}); n > 96 {
		t.Fatalf("Conn is %d bytes, want <= 96", n)
	}
	// The rarely-used state stays in the 96-byte class too: every closing
	// connection allocates it.
	if n := unsafe.Sizeof(connExt{}); n > 96 {
		t.Fatalf("connExt is %d bytes, want <= 96", n)
	}
	// A loop's fixed cost: the timer wheel must not hold Conn-sized sentinels.
	if n := unsafe.Sizeof(Loop{}); n > 64<<10 {
		t.Fatalf("Loop is %d bytes, want <= 64 KiB", n)
	}
}
