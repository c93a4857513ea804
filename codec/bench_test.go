package codec

import (
	"bytes"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// echoOnce is the codec's share of echoing one client frame, as the server's
// read loop does it: the frame is in work (masked, as it arrived), a whole
// text message is validated with utf8.Valid, the reply is appended to out.
func echoOnce(tb testing.TB, work []byte, out []byte) []byte {
	h, n, err := DecodeHeader(work)
	if err != nil || n == 0 {
		tb.Fatalf("DecodeHeader: %d, %v", n, err)
	}
	if err := CheckClientHeader(h, 0, false); err != nil {
		tb.Fatal(err)
	}
	p := work[n : n+int(h.Length)]
	UnmaskInPlace(p, h.Mask, 0)
	if h.OpCode == ws.OpText && !utf8.Valid(p) {
		tb.Fatal("invalid UTF-8")
	}
	return AppendFrame(out[:0], h.OpCode, true, p)
}

// BenchmarkEcho measures the codec's work for one echoed text frame: decode
// the header, check it, unmask, validate UTF-8, encode the reply into a
// reused buffer. Bytes/s count the payload.
func BenchmarkEcho(b *testing.B) {
	for _, sz := range echoSizes {
		b.Run(sz.name, func(b *testing.B) {
			wire := AppendFrameMasked(nil, ws.OpText, true, textPayload(sz.size), mask0)
			work := make([]byte, len(wire))
			out := make([]byte, 0, HeaderSize(sz.size, false)+sz.size)
			b.ReportAllocs()
			b.SetBytes(int64(sz.size))
			for b.Loop() {
				copy(work, wire)
				out = echoOnce(b, work, out)
			}
		})
	}
}

// BenchmarkDecodeHeader decodes each header of the table.
func BenchmarkDecodeHeader(b *testing.B) {
	for _, tc := range headerCases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.wire)))
			for b.Loop() {
				if _, n, _ := DecodeHeader(tc.wire); n != len(tc.wire) {
					b.Fatal(n)
				}
			}
		})
	}
}

// BenchmarkUTF8 compares UTF8.Feed (whole text, and in 1,000-byte fragments)
// with utf8.Valid on ASCII and on mixed 1- to 4-byte text.
func BenchmarkUTF8(b *testing.B) {
	for _, text := range []struct {
		name string
		b    []byte
	}{
		{name: "ascii-1KiB", b: bytes.Repeat([]byte("The quick brown fox jumps over the lazy dog. "), 1<<10/45+1)[:1<<10]},
		{name: "ascii-64KiB", b: bytes.Repeat([]byte("The quick brown fox jumps over the lazy dog. "), 64<<10/45+1)[:64<<10]},
		{name: "mixed-1KiB", b: textPayload(1 << 10)},
		{name: "mixed-64KiB", b: textPayload(64 << 10)},
	} {
		b.Run(text.name+"/Feed", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(text.b)))
			for b.Loop() {
				var v UTF8
				if !v.Feed(text.b) || !v.Complete() {
					b.Fatal("invalid")
				}
			}
		})
		b.Run(text.name+"/Feed-fragments", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(text.b)))
			for b.Loop() {
				var v UTF8
				for i := 0; i < len(text.b); i += 1000 {
					if !v.Feed(text.b[i:min(i+1000, len(text.b))]) {
						b.Fatal("invalid")
					}
				}
				if !v.Complete() {
					b.Fatal("incomplete")
				}
			}
		})
		b.Run(text.name+"/utf8.Valid", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(text.b)))
			for b.Loop() {
				if !utf8.Valid(text.b) {
					b.Fatal("invalid")
				}
			}
		})
	}
}

// BenchmarkParseRequest parses a browser's opening handshake, checks it and
// writes the 101 response.
func BenchmarkParseRequest(b *testing.B) {
	req := []byte(browserRequest)
	b.Run("parse", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(req)))
		for b.Loop() {
			if _, n, err := ParseRequest(req, 0, 0); n != len(req) || err != nil {
				b.Fatal(n, err)
			}
		}
	})
	b.Run("parse+check+respond", func(b *testing.B) {
		out := make([]byte, 0, 512)
		b.ReportAllocs()
		b.SetBytes(int64(len(req)))
		for b.Loop() {
			r, _, _ := ParseRequest(req, 0, 0)
			if err := r.Check(); err != nil {
				b.Fatal(err)
			}
			out = AppendUpgradeResponse(out[:0], r.Key, "", "")
		}
	})
}

// BenchmarkClose parses a close payload and encodes the echoed close frame.
func BenchmarkClose(b *testing.B) {
	payload := []byte("\x03\xe9server going away")
	out := make([]byte, 0, 2+MaxControlPayload)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		code, reason, err := ParseClose(payload)
		if err != nil {
			b.Fatal(err)
		}
		out = AppendClose(out[:0], code, string(reason))
	}
}
