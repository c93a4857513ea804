package codec

import (
	"encoding/binary"

	"github.com/gobwas/ws"
)

// Frame layout constants from RFC 6455 §5.2.
const (
	// MaxControlPayload is the largest payload a control frame may carry (§5.5).
	MaxControlPayload = 125
	// MaxHeaderSize is the largest frame header: 2 + 8 (64-bit length) + 4 (mask).
	MaxHeaderSize = ws.MaxHeaderSize

	finBit  = 0x80
	rsvBits = 0x70
	opBits  = 0x0f
	maskBit = 0x80
	len7    = 125
	len16   = 0xffff
)

// rsv1 is the RSV1 bit in ws.Header.Rsv (RFC 7692 "Per-Message Compressed" bit).
const rsv1 = 0x4

// DecodeHeader parses the frame header at the start of b.
//
// It returns n == 0 and a nil error when b does not yet hold a whole header:
// the caller waits for more bytes and calls again with the longer slice. On
// success n is the header's length in bytes and the payload (h.Length bytes,
// possibly not all arrived yet) starts at b[n]. The only error is
// ErrLengthMSB (RFC 6455 §5.2: the most significant bit of a 64-bit length
// must be 0); every other rule is checked by CheckClientHeader, which
// knows the connection's state.
func DecodeHeader(b []byte) (h ws.Header, n int, err error) {
	if len(b) < 2 {
		return h, 0, nil
	}
	b0, b1 := b[0], b[1]
	h.Fin = b0&finBit != 0
	h.Rsv = (b0 & rsvBits) >> 4
	h.OpCode = ws.OpCode(b0 & opBits)
	h.Masked = b1&maskBit != 0

	n = 2
	switch l := b1 &^ maskBit; l {
	case 126:
		if len(b) < 4 {
			return h, 0, nil
		}
		h.Length = int64(binary.BigEndian.Uint16(b[2:4]))
		n = 4
	case 127:
		if len(b) < 10 {
			return h, 0, nil
		}
		v := binary.BigEndian.Uint64(b[2:10])
		if v>>63 != 0 {
			return h, 0, ErrLengthMSB
		}
		h.Length = int64(v)
		n = 10
	default:
		h.Length = int64(l)
	}
	if h.Masked {
		if len(b) < n+4 {
			return h, 0, nil
		}
		copy(h.Mask[:], b[n:n+4])
		n += 4
	}
	return h, n, nil
}

// HeaderSize returns the encoded size of a header for a payload of length n.
func HeaderSize(n int, masked bool) int {
	s := 2
	switch {
	case n > len16:
		s = 10
	case n > len7:
		s = 4
	}
	if masked {
		s += 4
	}
	return s
}

// AppendHeader appends the wire form of h to dst.
func AppendHeader(dst []byte, h ws.Header) []byte {
	b0 := h.Rsv<<4 | byte(h.OpCode)
	if h.Fin {
		b0 |= finBit
	}
	var m byte
	if h.Masked {
		m = maskBit
	}
	switch {
	case h.Length <= len7:
		dst = append(dst, b0, m|byte(h.Length))
	case h.Length <= len16:
		dst = append(dst, b0, m|126, byte(h.Length>>8), byte(h.Length))
	default:
		dst = append(dst, b0, m|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(h.Length))
	}
	if h.Masked {
		dst = append(dst, h.Mask[:]...)
	}
	return dst
}

// AppendFrame appends an unmasked (server-to-client, RFC 6455 §5.1) frame
// carrying payload to dst.
func AppendFrame(dst []byte, op ws.OpCode, fin bool, payload []byte) []byte {
	dst = AppendHeader(dst, ws.Header{Fin: fin, OpCode: op, Length: int64(len(payload))})
	return append(dst, payload...)
}

// AppendFrameMasked appends a client-to-server frame masked with mask to dst;
// payload itself is left untouched. The load generator uses it.
func AppendFrameMasked(dst []byte, op ws.OpCode, fin bool, payload []byte, mask [4]byte) []byte {
	dst = AppendHeader(dst, ws.Header{Fin: fin, OpCode: op, Masked: true, Mask: mask, Length: int64(len(payload))})
	start := len(dst)
	dst = append(dst, payload...)
	ws.Cipher(dst[start:], mask, 0)
	return dst
}

// UnmaskInPlace removes the client's masking from payload (RFC 6455 §5.3).
// offset is the number of payload bytes of the same frame unmasked by earlier
// calls, for payloads processed in pieces.
func UnmaskInPlace(payload []byte, mask [4]byte, offset int) {
	ws.Cipher(payload, mask, offset)
}
