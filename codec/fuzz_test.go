package codec

import (
	"bytes"
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/; the f.Add seeds below come
// from the test tables. Run a target with
//
//	go test ./codec -run='^$' -fuzz='^FuzzDecodeHeader$' -fuzztime=60s

// FuzzDecodeHeader checks that DecodeHeader never panics, never claims more
// bytes than it was given, reads every field from the wire as RFC 6455 §5.2
// lays it out, answers "need more" for every strict prefix of a header, and
// that AppendHeader re-encodes a minimally encoded header byte for byte.
func FuzzDecodeHeader(f *testing.F) {
	for _, tc := range headerCases {
		f.Add(tc.wire)
	}
	f.Add([]byte{0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0x81, 0x7e, 0x00, 0x05})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := DecodeHeader(b)
		if n < 0 || n > len(b) {
			t.Fatalf("n = %d for %d bytes", n, len(b))
		}
		want := 0 // the header size the wire announces, once known
		if len(b) >= 2 {
			want = 2
			switch b[1] & 0x7f {
			case 126:
				want = 4
			case 127:
				want = 10
			}
			if b[1]&0x80 != 0 {
				want += 4
			}
		}
		if err != nil {
			if err != ErrLengthMSB || n != 0 || b[1]&0x7f != 127 || len(b) < 10 || b[2]&0x80 == 0 {
				t.Fatalf("DecodeHeader(% x) = %d, %v", b, n, err)
			}
			return
		}
		if n == 0 {
			if len(b) >= 2 && len(b) >= want {
				t.Fatalf("need more with a whole %d-byte header in % x", want, b)
			}
			return
		}
		if n != want {
			t.Fatalf("n = %d, want %d for % x", n, want, b[:min(len(b), 14)])
		}
		if h.Fin != (b[0]&0x80 != 0) || h.Rsv != (b[0]>>4)&7 || h.OpCode != ws.OpCode(b[0]&0xf) || h.Masked != (b[1]&0x80 != 0) || h.Length < 0 {
			t.Fatalf("fields %+v from % x", h, b[:n])
		}
		if h.Masked && !bytes.Equal(h.Mask[:], b[n-4:n]) {
			t.Fatalf("mask %x from % x", h.Mask, b[:n])
		}
		for k := 0; k < n; k++ {
			if _, m, e := DecodeHeader(b[:k]); m != 0 || e != nil {
				t.Fatalf("prefix %d of % x: %d, %v", k, b[:n], m, e)
			}
		}
		enc := AppendHeader(nil, h)
		l7 := b[1] & 0x7f
		minimal := l7 <= 125 || (l7 == 126 && h.Length > 125) || (l7 == 127 && h.Length > 65535)
		if minimal && !bytes.Equal(enc, b[:n]) {
			t.Fatalf("AppendHeader(%+v) = % x, decoded from % x", h, enc, b[:n])
		}
		h2, n2, err := DecodeHeader(enc)
		if err != nil || n2 != len(enc) || h2 != h || n2 != HeaderSize(int(h.Length), h.Masked) {
			t.Fatalf("re-encoded header % x decodes to %+v, %d, %v; want %+v", enc, h2, n2, err, h)
		}
		// The two directions apply the same rules but for masking.
		for _, fragOp := range []ws.OpCode{0, ws.OpText} {
			for _, deflate := range []bool{false, true} {
				flipped := h
				flipped.Masked = !h.Masked
				client, server := h, flipped
				if !h.Masked {
					client, server = flipped, h
				}
				ec, es := CheckClientHeader(client, fragOp, deflate), CheckServerHeader(server, fragOp, deflate)
				if ec != es {
					t.Fatalf("%+v fragOp %v deflate %v: client %v, server %v", h, fragOp, deflate, ec, es)
				}
				if ec != nil && CloseCode(ec) != ws.StatusProtocolError {
					t.Fatalf("CloseCode(%v) = %d", ec, CloseCode(ec))
				}
			}
		}
	})
}

// FuzzParseRequest checks that ParseRequest never panics, that a head ends at
// the first blank line, that every error is a *HandshakeError with one of the
// statuses ParseRequest may answer, and that feeding any prefix never yields
// another answer than the whole: "need more", or the same head length or HTTP
// status.
func FuzzParseRequest(f *testing.F) {
	for _, tc := range validRequests {
		f.Add([]byte(tc.raw+"\x81\x80\x01\x02\x03\x04"), uint16(0), uint8(0))
	}
	for _, tc := range rejectCases {
		f.Add([]byte(tc.raw), uint16(tc.maxBytes), uint8(tc.maxLines))
	}
	f.Fuzz(func(t *testing.T, b []byte, maxBytes uint16, maxLines uint8) {
		mb, ml := int(maxBytes), int(maxLines)
		r, n, err := ParseRequest(b, mb, ml)
		if mb == 0 {
			mb = DefaultMaxHeaderBytes
		}
		if err != nil {
			var he *HandshakeError
			if n != 0 || !errors.As(err, &he) {
				t.Fatalf("ParseRequest = %d, %v", n, err)
			}
			switch he.Status {
			case 400, 414, 431, 505:
			default:
				t.Fatalf("status %d from ParseRequest", he.Status)
			}
		}
		if n != 0 {
			if end := bytes.Index(b, []byte("\r\n\r\n")); n != end+4 || n > mb {
				t.Fatalf("n = %d, blank line at %d, maxBytes %d", n, end, mb)
			}
			// Nothing a parsed request offers may panic.
			_ = r.Check()
			_, _ = r.Path(), r.Query()
			_ = r.Header("Sec-WebSocket-Key")
			r.VisitHeaders(func(k, v []byte) bool { return true })
			r.Protocols(func(p []byte) bool { return true })
			r.ExtensionLines(func(v []byte) bool { return true })
			_ = r.NegotiateDeflate()
			if len(r.Method) == 0 || len(r.Proto) != 8 {
				t.Fatalf("parsed request without method or protocol: %q %q", r.Method, r.Proto)
			}
		}
		for _, k := range prefixLengths(b) {
			_, nk, ek := ParseRequest(b[:k], int(maxBytes), ml)
			if (nk != 0 || ek != nil) && !sameParse(nk, ek, n, err) {
				t.Fatalf("prefix %d answers %d, %v; the whole %d bytes answer %d, %v", k, nk, ek, len(b), n, err)
			}
		}
	})
}

// prefixLengths lists the prefix lengths of b to try: all of them for short
// inputs, and for long ones a sample plus the bytes around each line end.
func prefixLengths(b []byte) []int {
	var ks []int
	if len(b) <= 512 {
		for k := 0; k < len(b); k++ {
			ks = append(ks, k)
		}
		return ks
	}
	for k := 0; k < len(b); k += len(b)/256 + 1 {
		ks = append(ks, k)
	}
	for i, c := range b {
		if (c == '\n' || c == '\r') && len(ks) < 2048 {
			for _, k := range []int{i - 1, i, i + 1, i + 2} {
				if k >= 0 && k < len(b) {
					ks = append(ks, k)
				}
			}
		}
	}
	return ks
}

// FuzzUTF8 checks UTF8.Feed over arbitrary splits against unicode/utf8: the
// chunk holding the first byte that no valid text can contain is refused and
// every chunk before it accepted (fail fast), the failure sticks, and
// Complete agrees with utf8.Valid.
func FuzzUTF8(f *testing.F) {
	for _, tc := range utf8Cases {
		f.Add([]byte(tc.text), uint64(0))
		f.Add([]byte(tc.text), uint64(0x9e3779b97f4a7c15))
	}
	f.Add(textPayload(300), uint64(42))
	f.Fuzz(func(t *testing.T, b []byte, seed uint64) {
		failAt, valid := refFailAt(b), utf8.Valid(b)
		if valid && failAt >= 0 {
			t.Fatalf("reference fails valid text %q at %d", b, failAt)
		}
		if !valid && failAt < 0 {
			// Only a character cut by the end of b.
			if i := lastRuneStart(b); !utf8.Valid(b[:i]) || utf8.FullRune(b[i:]) {
				t.Fatalf("reference accepts invalid text %q", b)
			}
		}
		// Cuts drawn from seed (xorshift), plus byte by byte for short input.
		var cuts []int
		x := seed | 1
		for c := 0; c < len(b); {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			c += int(x%9) + int(x>>60)*int(x>>56&3) // mostly short chunks, some long
			if c < len(b) {
				cuts = append(cuts, c)
			}
		}
		feedChunks(t, b, cuts, failAt, valid)
		if len(b) <= 256 {
			each := make([]int, len(b))
			for i := range each {
				each[i] = i
			}
			feedChunks(t, b, each, failAt, valid)
		}
		feedChunks(t, b, nil, failAt, valid)
	})
}

// lastRuneStart returns the offset of the last byte of b that may start a character.
func lastRuneStart(b []byte) int {
	i := len(b) - 1
	for i > 0 && !utf8.RuneStart(b[i]) && i > len(b)-4 {
		i--
	}
	return max(i, 0)
}
