package codec

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// mask0 is the mask the tables use for masked frames.
var mask0 = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// headerCases are wire headers written out by hand, byte by byte, with the
// header they decode to. They cover each length form at its boundaries
// (RFC 6455 §5.2: 7-bit up to 125, 16-bit up to 65535, 64-bit beyond),
// masked and unmasked, every RSV bit and FIN clear.
var headerCases = []struct {
	name string
	wire []byte
	h    ws.Header
}{
	{
		name: "len0 unmasked",
		wire: []byte{0x81, 0x00},
		h:    ws.Header{Fin: true, OpCode: ws.OpText},
	},
	{
		name: "len1 masked",
		wire: []byte{0x82, 0x81, 0x37, 0xfa, 0x21, 0x3d},
		h:    ws.Header{Fin: true, OpCode: ws.OpBinary, Masked: true, Mask: mask0, Length: 1},
	},
	{
		name: "len125 7-bit max unmasked",
		wire: []byte{0x81, 0x7d},
		h:    ws.Header{Fin: true, OpCode: ws.OpText, Length: 125},
	},
	{
		name: "len125 7-bit max masked",
		wire: []byte{0x81, 0xfd, 0x37, 0xfa, 0x21, 0x3d},
		h:    ws.Header{Fin: true, OpCode: ws.OpText, Masked: true, Mask: mask0, Length: 125},
	},
	{
		name: "len126 16-bit min unmasked",
		wire: []byte{0x81, 0x7e, 0x00, 0x7e},
		h:    ws.Header{Fin: true, OpCode: ws.OpText, Length: 126},
	},
	{
		name: "len126 16-bit min masked",
		wire: []byte{0x81, 0xfe, 0x00, 0x7e, 0x37, 0xfa, 0x21, 0x3d},
		h:    ws.Header{Fin: true, OpCode: ws.OpText, Masked: true, Mask: mask0, Length: 126},
	},
	{
		name: "len1024 16-bit masked",
		wire: []byte{0x81, 0xfe, 0x04, 0x00, 0x37, 0xfa, 0x21, 0x3d},
		h:    ws.Header{Fin: true, OpCode: ws.OpText, Masked: true, Mask: mask0, Length: 1024},
	},
	{
		name: "len65535 16-bit max unmasked",
		wire: []byte{0x82, 0x7e, 0xff, 0xff},
		h:    ws.Header{Fin: true, OpCode: ws.OpBinary, Length: 65535},
	},
	{
		name: "len65535 16-bit max masked",
		wire: []byte{0x82, 0xfe, 0xff, 0xff, 0x37, 0xfa, 0x21, 0x3d},
		h:    ws.Header{Fin: true, OpCode: ws.OpBinary, Masked: true, Mask: mask0, Length: 65535},
	},
	{
		name: "len65536 64-bit min unmasked",
		wire: []byte{0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00},
		h:    ws.Header{Fin: true, OpCode: ws.OpBinary, Length: 65536},
	},
	{
		name: "len65536 64-bit min masked",
		wire: []byte{0x82, 0xff, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00, 0x37, 0xfa, 0x21, 0x3d},
		h:    ws.Header{Fin: true, OpCode: ws.OpBinary, Masked: true, Mask: mask0, Length: 65536},
	},
	{
		name: "len2^32 64-bit masked",
		wire: []byte{0x82, 0xff, 0, 0, 0, 0x01, 0, 0, 0, 0, 0x37, 0xfa, 0x21, 0x3d},
		h:    ws.Header{Fin: true, OpCode: ws.OpBinary, Masked: true, Mask: mask0, Length: 1 << 32},
	},
	{
		name: "len2^63-1 64-bit max unmasked",
		wire: []byte{0x82, 0x7f, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		h:    ws.Header{Fin: true, OpCode: ws.OpBinary, Length: math.MaxInt64},
	},
	{
		name: "fin clear continuation",
		wire: []byte{0x00, 0x85, 0x37, 0xfa, 0x21, 0x3d},
		h:    ws.Header{OpCode: ws.OpContinuation, Masked: true, Mask: mask0, Length: 5},
	},
	{
		name: "rsv1",
		wire: []byte{0xc1, 0x80, 0x37, 0xfa, 0x21, 0x3d},
		h:    ws.Header{Fin: true, Rsv: 4, OpCode: ws.OpText, Masked: true, Mask: mask0},
	},
	{
		name: "rsv2",
		wire: []byte{0xa1, 0x00},
		h:    ws.Header{Fin: true, Rsv: 2, OpCode: ws.OpText},
	},
	{
		name: "rsv3",
		wire: []byte{0x91, 0x00},
		h:    ws.Header{Fin: true, Rsv: 1, OpCode: ws.OpText},
	},
	{
		name: "all rsv no fin",
		wire: []byte{0x72, 0x02},
		h:    ws.Header{Rsv: 7, OpCode: ws.OpBinary, Length: 2},
	},
	{
		name: "ping masked",
		wire: []byte{0x89, 0x84, 0x37, 0xfa, 0x21, 0x3d},
		h:    ws.Header{Fin: true, OpCode: ws.OpPing, Masked: true, Mask: mask0, Length: 4},
	},
	{
		name: "close unmasked",
		wire: []byte{0x88, 0x02},
		h:    ws.Header{Fin: true, OpCode: ws.OpClose, Length: 2},
	},
	{
		name: "reserved opcode 0xf",
		wire: []byte{0x8f, 0x00},
		h:    ws.Header{Fin: true, OpCode: 0xf},
	},
}

func TestDecodeHeader(t *testing.T) {
	for _, tc := range headerCases {
		t.Run(tc.name, func(t *testing.T) {
			// Trailing payload bytes must not change the result.
			b := append(append([]byte(nil), tc.wire...), 0xaa, 0xbb, 0xcc)
			h, n, err := DecodeHeader(b)
			if err != nil || n != len(tc.wire) || h != tc.h {
				t.Fatalf("DecodeHeader = %+v, %d, %v; want %+v, %d, nil", h, n, err, tc.h, len(tc.wire))
			}
			// Every strict prefix is "need more".
			for k := 0; k < len(tc.wire); k++ {
				if _, n, err := DecodeHeader(tc.wire[:k]); n != 0 || err != nil {
					t.Fatalf("prefix %d: n=%d err=%v, want 0, nil", k, n, err)
				}
			}
		})
	}
}

func TestAppendHeader(t *testing.T) {
	for _, tc := range headerCases {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("prefix")
			got := AppendHeader(dst, tc.h)
			if !bytes.Equal(got[:6], []byte("prefix")) || !bytes.Equal(got[6:], tc.wire) {
				t.Fatalf("AppendHeader = % x, want prefix + % x", got, tc.wire)
			}
			if hs := HeaderSize(int(tc.h.Length), tc.h.Masked); hs != len(tc.wire) {
				t.Fatalf("HeaderSize(%d, %v) = %d, want %d", tc.h.Length, tc.h.Masked, hs, len(tc.wire))
			}
		})
	}
}

func TestDecodeHeaderLengthMSB(t *testing.T) {
	for _, tc := range []struct {
		name string
		wire []byte
	}{
		{name: "msb only", wire: []byte{0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0}},
		{name: "all ones masked", wire: []byte{0x82, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4}},
		{name: "msb before mask arrived", wire: []byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, n, err := DecodeHeader(tc.wire)
			if err != ErrLengthMSB || n != 0 {
				t.Fatalf("DecodeHeader = %d, %v; want 0, ErrLengthMSB", n, err)
			}
			if CloseCode(err) != ws.StatusProtocolError {
				t.Fatalf("CloseCode = %d", CloseCode(err))
			}
		})
	}
}

// TestDecodeHeaderNonMinimal documents that non-minimal length encodings are
// accepted (as gobwas/ws does); the length is what the encoding says.
func TestDecodeHeaderNonMinimal(t *testing.T) {
	for _, tc := range []struct {
		name string
		wire []byte
		want int64
	}{
		{name: "5 in 16-bit", wire: []byte{0x81, 0x7e, 0x00, 0x05}, want: 5},
		{name: "5 in 64-bit", wire: []byte{0x81, 0x7f, 0, 0, 0, 0, 0, 0, 0, 5}, want: 5},
		{name: "300 in 64-bit", wire: []byte{0x81, 0x7f, 0, 0, 0, 0, 0, 0, 0x01, 0x2c}, want: 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, n, err := DecodeHeader(tc.wire)
			if err != nil || n != len(tc.wire) || h.Length != tc.want {
				t.Fatalf("DecodeHeader = %+v, %d, %v", h, n, err)
			}
		})
	}
}

// echoSizes are the payload sizes of the echo round trips, shared by the
// tests, the alloc tests and the benchmarks: one per length form.
var echoSizes = []struct {
	name string
	size int
}{
	{name: "64B", size: 64},
	{name: "1KiB", size: 1 << 10},
	{name: "16KiB", size: 16 << 10},
	{name: "64KiB+1", size: 64<<10 + 1},
}

// textPayload returns n bytes of valid UTF-8 text mixing 1- to 4-byte characters.
func textPayload(n int) []byte {
	const alphabet = "megaws é€😀 The quick brown fox. Ünïcödé ✓ 漢字"
	b := make([]byte, 0, n+4)
	for len(b) < n {
		b = append(b, alphabet...)
	}
	b = b[:n]
	// Replace a character cut by the truncation with ASCII.
	for i := len(b) - 1; i >= 0 && i >= n-3; i-- {
		if b[i] >= 0xc0 {
			for ; i < n; i++ {
				b[i] = 'x'
			}
			break
		}
		if b[i] < 0x80 {
			break
		}
	}
	return b
}

func TestFrameRoundTrip(t *testing.T) {
	for _, sz := range echoSizes {
		t.Run(sz.name, func(t *testing.T) {
			payload := textPayload(sz.size)
			if len(payload) != sz.size || !utf8.Valid(payload) {
				t.Fatalf("textPayload(%d) is %d bytes, valid %v", sz.size, len(payload), utf8.Valid(payload))
			}
			wire := AppendFrameMasked(nil, ws.OpText, true, payload, mask0)
			if !bytes.Equal(payload, textPayload(sz.size)) {
				t.Fatal("AppendFrameMasked modified its payload argument")
			}
			h, n, err := DecodeHeader(wire)
			if err != nil || n != HeaderSize(sz.size, true) || h.Length != int64(sz.size) || !h.Masked || h.Mask != mask0 {
				t.Fatalf("DecodeHeader = %+v, %d, %v", h, n, err)
			}
			if err := CheckClientHeader(h, 0, false); err != nil {
				t.Fatal(err)
			}
			p := wire[n:]
			if bytes.Equal(p, payload) {
				t.Fatal("masked payload equals the plain one")
			}
			UnmaskInPlace(p, h.Mask, 0)
			if !bytes.Equal(p, payload) {
				t.Fatal("unmasked payload differs")
			}
			out := AppendFrame(nil, ws.OpText, true, p)
			want, err := ws.CompileFrame(ws.NewTextFrame(payload))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, want) {
				t.Fatal("AppendFrame differs from gobwas/ws CompileFrame")
			}
			sh, sn, err := DecodeHeader(out)
			if err != nil || sn != HeaderSize(sz.size, false) || CheckServerHeader(sh, 0, false) != nil {
				t.Fatalf("server frame header %+v, %d, %v", sh, sn, err)
			}
		})
	}
}

// TestUnmaskInPlaceOffset unmasks a payload in pieces of every size, with the
// offset of each piece, as a streaming reader does.
func TestUnmaskInPlaceOffset(t *testing.T) {
	plain := textPayload(61)
	masked := AppendFrameMasked(nil, ws.OpBinary, true, plain, mask0)[HeaderSize(len(plain), true):]
	for step := 1; step <= len(plain); step++ {
		p := append([]byte(nil), masked...)
		for off := 0; off < len(p); off += step {
			UnmaskInPlace(p[off:min(off+step, len(p))], mask0, off)
		}
		if !bytes.Equal(p, plain) {
			t.Fatalf("step %d: unmask mismatch", step)
		}
	}
}

// checkCases lists the header rules of RFC 6455 §5 and RFC 7692 §6 for
// masked (client) frames. Each row holds for CheckServerHeader as well when
// the frame is unmasked instead.
var checkCases = []struct {
	name    string
	h       ws.Header
	fragOp  ws.OpCode
	deflate bool
	want    error
}{
	{name: "text", h: ws.Header{Fin: true, OpCode: ws.OpText, Length: 10}},
	{name: "binary 64-bit length", h: ws.Header{Fin: true, OpCode: ws.OpBinary, Length: 1 << 40}},
	{name: "first fragment", h: ws.Header{OpCode: ws.OpText, Length: 3}},
	{name: "continuation", h: ws.Header{OpCode: ws.OpContinuation, Length: 3}, fragOp: ws.OpText},
	{name: "final continuation", h: ws.Header{Fin: true, OpCode: ws.OpContinuation}, fragOp: ws.OpBinary},
	{name: "ping between fragments", h: ws.Header{Fin: true, OpCode: ws.OpPing, Length: 4}, fragOp: ws.OpText},
	{name: "close between fragments", h: ws.Header{Fin: true, OpCode: ws.OpClose, Length: 2}, fragOp: ws.OpBinary},
	{name: "ping 125", h: ws.Header{Fin: true, OpCode: ws.OpPing, Length: 125}},
	{name: "pong 0", h: ws.Header{Fin: true, OpCode: ws.OpPong}},
	{name: "ping 126", h: ws.Header{Fin: true, OpCode: ws.OpPing, Length: 126}, want: ErrControlTooLong},
	{name: "close 65536", h: ws.Header{Fin: true, OpCode: ws.OpClose, Length: 65536}, want: ErrControlTooLong},
	{name: "long and fragmented ping", h: ws.Header{OpCode: ws.OpPing, Length: 200}, want: ErrControlTooLong},
	{name: "fragmented ping", h: ws.Header{OpCode: ws.OpPing, Length: 1}, want: ErrControlFragmented},
	{name: "fragmented pong", h: ws.Header{OpCode: ws.OpPong}, want: ErrControlFragmented},
	{name: "fragmented close", h: ws.Header{OpCode: ws.OpClose, Length: 2}, want: ErrControlFragmented},
	{name: "opcode 3", h: ws.Header{Fin: true, OpCode: 3}, want: ErrReservedOpCode},
	{name: "opcode 7", h: ws.Header{Fin: true, OpCode: 7}, want: ErrReservedOpCode},
	{name: "opcode 0xb", h: ws.Header{Fin: true, OpCode: 0xb}, want: ErrReservedOpCode},
	{name: "opcode 0xf", h: ws.Header{Fin: true, OpCode: 0xf, Length: 500}, want: ErrReservedOpCode},
	{name: "opcode 5 during fragments", h: ws.Header{OpCode: 5}, fragOp: ws.OpText, want: ErrReservedOpCode},
	{name: "continuation without message", h: ws.Header{Fin: true, OpCode: ws.OpContinuation}, want: ErrUnexpectedContinue},
	{name: "text during fragments", h: ws.Header{Fin: true, OpCode: ws.OpText}, fragOp: ws.OpText, want: ErrExpectedContinue},
	{name: "binary during fragments", h: ws.Header{OpCode: ws.OpBinary}, fragOp: ws.OpText, want: ErrExpectedContinue},
	{name: "rsv1 no deflate", h: ws.Header{Fin: true, Rsv: 4, OpCode: ws.OpText}, want: ErrReservedBits},
	{name: "rsv2", h: ws.Header{Fin: true, Rsv: 2, OpCode: ws.OpText}, want: ErrReservedBits},
	{name: "rsv3", h: ws.Header{Fin: true, Rsv: 1, OpCode: ws.OpBinary}, want: ErrReservedBits},
	{name: "rsv2 deflate", h: ws.Header{Fin: true, Rsv: 2, OpCode: ws.OpText}, deflate: true, want: ErrReservedBits},
	{name: "rsv1+rsv3 deflate", h: ws.Header{Fin: true, Rsv: 5, OpCode: ws.OpText}, deflate: true, want: ErrReservedBits},
	{name: "rsv3 on continuation", h: ws.Header{Rsv: 1, OpCode: ws.OpContinuation}, fragOp: ws.OpText, want: ErrReservedBits},
	{name: "rsv2 on ping", h: ws.Header{Fin: true, Rsv: 2, OpCode: ws.OpPing}, want: ErrReservedBits},
	{name: "rsv1 on ping no deflate", h: ws.Header{Fin: true, Rsv: 4, OpCode: ws.OpPing}, want: ErrReservedBits},
	{name: "rsv2 on ping deflate", h: ws.Header{Fin: true, Rsv: 2, OpCode: ws.OpPing}, deflate: true, want: ErrReservedBits},
	{name: "rsv1+rsv2 on close deflate", h: ws.Header{Fin: true, Rsv: 6, OpCode: ws.OpClose}, deflate: true, want: ErrReservedBits},
	{name: "deflate rsv1 text", h: ws.Header{Fin: true, Rsv: 4, OpCode: ws.OpText}, deflate: true},
	{name: "deflate rsv1 first fragment", h: ws.Header{Rsv: 4, OpCode: ws.OpBinary}, deflate: true},
	{name: "deflate plain continuation", h: ws.Header{Fin: true, OpCode: ws.OpContinuation}, fragOp: ws.OpText, deflate: true},
	{name: "deflate rsv1 on ping", h: ws.Header{Fin: true, Rsv: 4, OpCode: ws.OpPing}, deflate: true, want: ErrCompressedControl},
	{name: "deflate rsv1 on close", h: ws.Header{Fin: true, Rsv: 4, OpCode: ws.OpClose, Length: 2}, deflate: true, want: ErrCompressedControl},
	{name: "deflate rsv1 on continuation", h: ws.Header{Rsv: 4, OpCode: ws.OpContinuation}, fragOp: ws.OpText, deflate: true, want: ErrCompressedContinue},
	{name: "rsv1 on continuation no deflate", h: ws.Header{Rsv: 4, OpCode: ws.OpContinuation}, fragOp: ws.OpText, want: ErrReservedBits},
	{name: "deflate rsv1 continuation without message", h: ws.Header{Rsv: 4, OpCode: ws.OpContinuation}, deflate: true, want: ErrUnexpectedContinue},
	{name: "deflate rsv1 text during fragments", h: ws.Header{Rsv: 4, OpCode: ws.OpText}, fragOp: ws.OpText, deflate: true, want: ErrExpectedContinue},
}

func TestCheckClientHeader(t *testing.T) {
	for _, tc := range checkCases {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.h
			h.Masked, h.Mask = true, mask0
			if err := CheckClientHeader(h, tc.fragOp, tc.deflate); err != tc.want {
				t.Fatalf("CheckClientHeader = %v, want %v", err, tc.want)
			}
			h.Masked, h.Mask = false, [4]byte{}
			if err := CheckClientHeader(h, tc.fragOp, tc.deflate); err != ErrUnmaskedFrame {
				t.Fatalf("unmasked: CheckClientHeader = %v, want ErrUnmaskedFrame", err)
			}
		})
	}
}

func TestCheckServerHeader(t *testing.T) {
	for _, tc := range checkCases {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.h
			if err := CheckServerHeader(h, tc.fragOp, tc.deflate); err != tc.want {
				t.Fatalf("CheckServerHeader = %v, want %v", err, tc.want)
			}
			h.Masked, h.Mask = true, mask0
			if err := CheckServerHeader(h, tc.fragOp, tc.deflate); err != ErrMaskedFrame {
				t.Fatalf("masked: CheckServerHeader = %v, want ErrMaskedFrame", err)
			}
		})
	}
}

// TestCloseCode maps every protocol error to the close code RFC 6455 §7.4.1
// asks for.
func TestCloseCode(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want ws.StatusCode
	}{
		{name: "nil", err: nil, want: ws.StatusNormalClosure},
		{name: "unmasked", err: ErrUnmaskedFrame, want: ws.StatusProtocolError},
		{name: "masked", err: ErrMaskedFrame, want: ws.StatusProtocolError},
		{name: "reserved bits", err: ErrReservedBits, want: ws.StatusProtocolError},
		{name: "reserved opcode", err: ErrReservedOpCode, want: ws.StatusProtocolError},
		{name: "control too long", err: ErrControlTooLong, want: ws.StatusProtocolError},
		{name: "control fragmented", err: ErrControlFragmented, want: ws.StatusProtocolError},
		{name: "unexpected continue", err: ErrUnexpectedContinue, want: ws.StatusProtocolError},
		{name: "expected continue", err: ErrExpectedContinue, want: ws.StatusProtocolError},
		{name: "length msb", err: ErrLengthMSB, want: ws.StatusProtocolError},
		{name: "close length", err: ErrCloseLength, want: ws.StatusProtocolError},
		{name: "close code", err: ErrCloseCode, want: ws.StatusProtocolError},
		{name: "close reason utf8", err: ErrCloseReasonUTF8, want: ws.StatusInvalidFramePayloadData},
		{name: "invalid utf8", err: ErrInvalidUTF8, want: ws.StatusInvalidFramePayloadData},
		{name: "too big", err: ErrMessageTooBig, want: ws.StatusMessageTooBig},
		{name: "compressed control", err: ErrCompressedControl, want: ws.StatusProtocolError},
		{name: "compressed continue", err: ErrCompressedContinue, want: ws.StatusProtocolError},
		{name: "inflate", err: ErrInflate, want: ws.StatusInvalidFramePayloadData},
		{name: "wrapped", err: fmt.Errorf("reading: %w", ErrInvalidUTF8), want: ws.StatusInvalidFramePayloadData},
		{name: "other", err: errors.New("boom"), want: ws.StatusInternalServerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := CloseCode(tc.err); got != tc.want {
				t.Fatalf("CloseCode = %d, want %d", got, tc.want)
			}
			var pe *ProtocolError
			if errors.As(tc.err, &pe) && pe.Error() != "megaws: "+pe.Reason {
				t.Fatalf("Error() = %q", pe.Error())
			}
		})
	}
	for _, tc := range checkCases {
		if tc.want != nil && CloseCode(tc.want) != ws.StatusProtocolError {
			t.Errorf("%s: CloseCode(%v) = %d, want 1002", tc.name, tc.want, CloseCode(tc.want))
		}
	}
}

func TestPrecompiledControlFrames(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
		op   ws.OpCode
	}{
		{name: "pong", b: ws.CompiledPong, op: ws.OpPong},
		{name: "ping", b: ws.CompiledPing, op: ws.OpPing},
	} {
		if want := AppendFrame(nil, tc.op, true, nil); !bytes.Equal(tc.b, want) {
			t.Errorf("%s = % x, want % x", tc.name, tc.b, want)
		}
	}
}
