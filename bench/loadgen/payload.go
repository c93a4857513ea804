package loadgen

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// PayloadHeader is the size of the prefix every generated payload starts
// with: the send time (ns, little endian) and the sequence number.
const PayloadHeader = 16

// FillPayload writes a verifiable payload into p: the stamp, the sequence
// number, then filler bytes derived from seq, so a receiver can regenerate
// every byte. len(p) must be at least PayloadHeader.
//
// Filler byte i is byte(seq*13+1) + 7*i. Because 7 is odd, that is 7*(i+k)
// mod 256 for the k with 7*k = seq*13+1 (mod 256), so the filler is a window
// of one periodic pattern and both filling and checking run at memmove and
// memequal speed instead of a byte at a time: at 1 KiB and 470k messages/s
// the byte loops alone took the load generator's whole core.
func FillPayload(p []byte, seq uint64, stamp int64) {
	binary.LittleEndian.PutUint64(p[0:8], uint64(stamp))
	binary.LittleEndian.PutUint64(p[8:16], seq)
	k := fillerStart(seq)
	for q := p[PayloadHeader:]; len(q) > 0; {
		q = q[copy(q, fillerPattern[k:k+fillerChunk]):]
	}
}

// fillerChunk is how much filler one copy or compare covers; a multiple of
// the pattern's 256-byte period, so every chunk starts at the same offset k.
const fillerChunk = 16 << 10

// fillerPattern[j] = 7*j mod 256, one chunk plus a period, so that any
// window [k, k+fillerChunk) with k < 256 fits.
var fillerPattern = func() []byte {
	b := make([]byte, fillerChunk+256)
	for j := range b {
		b[j] = byte(7 * j)
	}
	return b
}()

// fillerStart returns k with 7*k = seq*13+1 (mod 256); 183 is 7's inverse.
func fillerStart(seq uint64) int {
	return int(byte(183 * byte(seq*13+1)))
}

// PayloadInfo reads the stamp and sequence number back from p.
func PayloadInfo(p []byte) (seq uint64, stamp int64, ok bool) {
	if len(p) < PayloadHeader {
		return 0, 0, false
	}
	return binary.LittleEndian.Uint64(p[8:16]), int64(binary.LittleEndian.Uint64(p[0:8])), true
}

var errShort = errors.New("payload shorter than its header")

// CheckPayload reports whether p is byte for byte the payload FillPayload
// makes for (size, seq, stamp), and if not, where it differs.
func CheckPayload(p []byte, size int, seq uint64, stamp int64) error {
	if len(p) != size {
		return fmt.Errorf("verify: payload is %d bytes, want %d", len(p), size)
	}
	gotSeq, gotStamp, ok := PayloadInfo(p)
	switch {
	case !ok:
		return errShort
	case gotSeq != seq:
		return fmt.Errorf("verify: sequence %d, want %d (lost or reordered message)", gotSeq, seq)
	case gotStamp != stamp:
		return fmt.Errorf("verify: stamp bytes differ for sequence %d", seq)
	}
	k := fillerStart(seq)
	for off := PayloadHeader; off < len(p); off += fillerChunk {
		q := p[off:min(off+fillerChunk, len(p))]
		if !bytes.Equal(q, fillerPattern[k:k+len(q)]) {
			// Find the first differing byte for the message.
			for i, b := range q {
				if want := fillerPattern[k+i]; b != want {
					return fmt.Errorf("verify: byte %d is %#02x, want %#02x", off+i, b, want)
				}
			}
		}
	}
	return nil
}

// VerifyFailed counts a payload that failed verification, records err, and
// closes the connection abortively: its stream can no longer be trusted.
func (c *Conn) VerifyFailed(err error) {
	c.loop.cnt.verifyErrors.Add(1)
	c.loop.errs.add(err.Error())
	if c.state == stateOpen || c.state == stateClosing {
		c.removeOpen()
		c.state = stateClosed
		c.release()
		c.loop.h.OnClose(c, err)
	}
}
