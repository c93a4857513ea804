//go:build !race

package codec

import (
	"bytes"
	"testing"

	"github.com/gobwas/ws"
)

// The hot paths of a message allocate nothing: the server decodes, unmasks,
// validates and answers every message in buffers it already holds (DESIGN.md,
// "Zero allocations per message"). The race detector allocates on its own,
// hence the build tag.

func TestEchoPathAllocs(t *testing.T) {
	for _, sz := range echoSizes {
		t.Run(sz.name, func(t *testing.T) {
			payload := textPayload(sz.size)
			wire := AppendFrameMasked(nil, ws.OpText, true, payload, mask0)
			work := make([]byte, len(wire))
			out := make([]byte, 0, HeaderSize(sz.size, false)+sz.size)
			allocs := testing.AllocsPerRun(200, func() {
				copy(work, wire)
				out = echoOnce(t, work, out)
			})
			if allocs != 0 {
				t.Fatalf("echo of a %d-byte text frame: %.1f allocations, want 0", sz.size, allocs)
			}
			if !bytes.Equal(out, AppendFrame(nil, ws.OpText, true, payload)) {
				t.Fatal("echoed frame differs")
			}
		})
	}
}

func TestUTF8FeedAllocs(t *testing.T) {
	text := textPayload(4096)
	var v UTF8
	allocs := testing.AllocsPerRun(200, func() {
		v.Reset()
		for i := 0; i < len(text); i += 333 {
			if !v.Feed(text[i:min(i+333, len(text))]) {
				t.Fatal("Feed failed")
			}
		}
		if !v.Complete() {
			t.Fatal("incomplete")
		}
	})
	if allocs != 0 {
		t.Fatalf("UTF8.Feed: %.1f allocations, want 0", allocs)
	}
}

func TestCloseAllocs(t *testing.T) {
	payload := []byte("\x03\xe8going away, κόσμε")
	out := make([]byte, 0, 2+MaxControlPayload)
	long := string(bytes.Repeat([]byte("é"), 100))
	allocs := testing.AllocsPerRun(200, func() {
		code, reason, err := ParseClose(payload)
		if err != nil || code != 1000 || len(reason) == 0 {
			t.Fatal(code, err)
		}
		out = AppendClose(out[:0], code, "")
		out = AppendClose(out[:0], ws.StatusGoingAway, long)
	})
	if allocs != 0 {
		t.Fatalf("ParseClose/AppendClose: %.1f allocations, want 0", allocs)
	}
}

// TestHandshakeAllocs covers the per-connection path: parsing and checking the
// upgrade request and writing the 101 response into a reused buffer.
func TestHandshakeAllocs(t *testing.T) {
	req := []byte(browserRequest)
	out := make([]byte, 0, 512)
	allocs := testing.AllocsPerRun(200, func() {
		r, n, err := ParseRequest(req, 0, 0)
		if err != nil || n != len(req) {
			t.Fatal(n, err)
		}
		if err := r.Check(); err != nil {
			t.Fatal(err)
		}
		out = AppendUpgradeResponse(out[:0], r.Key, "game.v2", "")
	})
	if allocs != 0 {
		t.Fatalf("ParseRequest+Check+AppendUpgradeResponse: %.1f allocations, want 0", allocs)
	}
}
