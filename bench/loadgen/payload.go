package loadgen

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// PayloadHeader is the size of the prefix every generated binary payload
// starts with: the send time (ns, little endian) and the sequence number.
const PayloadHeader = 16

// TextPayloadHeader is the prefix of a generated text payload: the same two
// numbers as 32 hexadecimal digits, so that the whole payload is ASCII.
const TextPayloadHeader = 32

// HeaderSize returns the prefix size of a generated payload.
func HeaderSize(text bool) int {
	if text {
		return TextPayloadHeader
	}
	return PayloadHeader
}

// FillPayload writes a verifiable binary payload into p: the stamp, the
// sequence number, then filler bytes derived from seq, so a receiver can
// regenerate every byte. len(p) must be at least PayloadHeader.
//
// Filler byte i is byte(seq*13+1) + 7*i. Because 7 is odd, that is 7*(i+k)
// mod 256 for the k with 7*k = seq*13+1 (mod 256), so the filler is a window
// of one periodic pattern and both filling and checking run at memmove and
// memequal speed instead of a byte at a time: at 1 KiB and 470k messages/s
// the byte loops alone took the load generator's whole core.
func FillPayload(p []byte, seq uint64, stamp int64) {
	binary.LittleEndian.PutUint64(p[0:8], uint64(stamp))
	binary.LittleEndian.PutUint64(p[8:16], seq)
	binaryFiller.fill(p[PayloadHeader:], seq)
}

// FillTextPayload writes a verifiable text payload into p: stamp and
// sequence number in hexadecimal, then printable ASCII filler: byte i is
// 0x20 + (seq*13+1 + 7*i) mod 95. len(p) must be at least TextPayloadHeader.
// Text frames make the server validate UTF-8; ASCII is what JSON-speaking
// clients mostly send.
func FillTextPayload(p []byte, seq uint64, stamp int64) {
	var h [16]byte
	binary.BigEndian.PutUint64(h[0:8], uint64(stamp))
	binary.BigEndian.PutUint64(h[8:16], seq)
	hex.Encode(p[:TextPayloadHeader], h[:])
	textFiller.fill(p[TextPayloadHeader:], seq)
}

// PayloadInfo reads the stamp and sequence number back from a binary payload.
func PayloadInfo(p []byte) (seq uint64, stamp int64, ok bool) {
	if len(p) < PayloadHeader {
		return 0, 0, false
	}
	return binary.LittleEndian.Uint64(p[8:16]), int64(binary.LittleEndian.Uint64(p[0:8])), true
}

// TextPayloadInfo reads the stamp and sequence number back from a text payload.
func TextPayloadInfo(p []byte) (seq uint64, stamp int64, ok bool) {
	var h [16]byte
	if len(p) < TextPayloadHeader {
		return 0, 0, false
	}
	if _, err := hex.Decode(h[:], p[:TextPayloadHeader]); err != nil {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(h[8:16]), int64(binary.BigEndian.Uint64(h[0:8])), true
}

var errShort = errors.New("payload shorter than its header")

// CheckPayload reports whether p is byte for byte the binary payload
// FillPayload makes for (size, seq, stamp), and if not, where it differs.
func CheckPayload(p []byte, size int, seq uint64, stamp int64) error {
	return checkPayload(p, size, seq, stamp, false)
}

// CheckTextPayload is CheckPayload for FillTextPayload's payloads.
func CheckTextPayload(p []byte, size int, seq uint64, stamp int64) error {
	return checkPayload(p, size, seq, stamp, true)
}

func checkPayload(p []byte, size int, seq uint64, stamp int64, text bool) error {
	if len(p) != size {
		return fmt.Errorf("verify: payload is %d bytes, want %d", len(p), size)
	}
	info, f, hs := PayloadInfo, binaryFiller, PayloadHeader
	if text {
		info, f, hs = TextPayloadInfo, textFiller, TextPayloadHeader
	}
	gotSeq, gotStamp, ok := info(p)
	switch {
	case !ok:
		return errShort
	case gotSeq != seq:
		return fmt.Errorf("verify: sequence %d, want %d (lost or reordered message)", gotSeq, seq)
	case gotStamp != stamp:
		return fmt.Errorf("verify: stamp bytes differ for sequence %d", seq)
	}
	if i, b, want, bad := f.check(p[hs:], seq); bad {
		return fmt.Errorf("verify: byte %d is %#02x, want %#02x", hs+i, b, want)
	}
	return nil
}

// filler generates base + (seq*13+1 + 7*i) mod period for i = 0, 1, ...:
// the window at offset k = (seq*13+1) * 7⁻¹ (mod period) of the pattern
// base + 7*j mod period, which repeats every period bytes.
type filler struct {
	period, inv int
	chunk       int    // bytes one copy or compare covers, a multiple of period
	pattern     []byte // chunk + period bytes, so any window [k, k+chunk) with k < period fits
}

func newFiller(period, inv, base int) *filler {
	if 7*inv%period != 1 {
		panic("loadgen: filler: inv is not 7's inverse")
	}
	f := &filler{period: period, inv: inv, chunk: (16 << 10) / period * period}
	f.pattern = make([]byte, f.chunk+period)
	for j := range f.pattern {
		f.pattern[j] = byte(base + 7*j%period)
	}
	return f
}

var (
	binaryFiller = newFiller(256, 183, 0)
	textFiller   = newFiller(95, 68, 0x20)
)

func (f *filler) start(seq uint64) int {
	return int((seq*13+1)%uint64(f.period)) * f.inv % f.period
}

func (f *filler) fill(q []byte, seq uint64) {
	win := f.pattern[f.start(seq):][:f.chunk]
	for len(q) > 0 {
		q = q[copy(q, win):]
	}
}

// check compares q with the filler for seq and returns the first differing
// byte, if any.
func (f *filler) check(q []byte, seq uint64) (i int, got, want byte, bad bool) {
	win := f.pattern[f.start(seq):][:f.chunk]
	for off := 0; off < len(q); off += f.chunk {
		part := q[off:min(off+f.chunk, len(q))]
		if bytes.Equal(part, win[:len(part)]) {
			continue
		}
		for j, b := range part {
			if b != win[j] {
				return off + j, b, win[j], true
			}
		}
	}
	return 0, 0, 0, false
}
