package loadgen

import (
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
func FillPayload(p []byte, seq uint64, stamp int64) {
	binary.LittleEndian.PutUint64(p[0:8], uint64(stamp))
	binary.LittleEndian.PutUint64(p[8:16], seq)
	f := byte(seq*13 + 1)
	for i := PayloadHeader; i < len(p); i++ {
		p[i] = f
		f += 7
	}
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
	f := byte(seq*13 + 1)
	for i := PayloadHeader; i < len(p); i++ {
		if p[i] != f {
			return fmt.Errorf("verify: byte %d is %#02x, want %#02x", i, p[i], f)
		}
		f += 7
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
