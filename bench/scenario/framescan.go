package scenario

import (
	"encoding/binary"
	"fmt"

	"github.com/gobwas/ws"

	"github.com/megaws/megaws/codec"
)

// frameScan walks a server's frame stream without keeping it, to find the
// close frame.
type frameScan struct {
	carry   []byte // an incomplete header, or a close payload being collected
	skip    int64  // payload bytes of the current frame still to pass over
	inClose bool   // carry collects a close frame's payload
	frames  int64
	close   int // status code of the server's close frame; 0: none yet, -1: malformed
	bad     bool
}

func (s *frameScan) feed(b []byte) {
	for len(b) > 0 && !s.bad {
		if s.skip > 0 {
			k := int(min(s.skip, int64(len(b))))
			if s.inClose {
				s.carry = append(s.carry, b[:k]...)
			}
			s.skip -= int64(k)
			b = b[k:]
			if s.skip == 0 && s.inClose {
				s.endClose()
			}
			continue
		}
		// A header: at most 14 bytes, carried over a split.
		var hb []byte
		if len(s.carry) > 0 {
			take := min(14-len(s.carry), len(b))
			hb = append(s.carry, b[:take]...)
		} else {
			hb = b
		}
		h, n, err := codec.DecodeHeader(hb)
		if err != nil {
			s.bad = true
			return
		}
		if n == 0 {
			if len(s.carry) == 0 {
				s.carry = append(s.carry[:0], b...)
			} else {
				s.carry = hb
			}
			return
		}
		used := n - len(s.carry)
		s.carry = s.carry[:0]
		b = b[used:]
		s.frames++
		s.skip = h.Length
		if h.OpCode == ws.OpClose {
			if h.Length > 125 {
				s.close = -1 // RFC 6455 §5.5: control payloads are ≤ 125 bytes
				continue
			}
			s.inClose = true
			if h.Length == 0 {
				s.endClose()
			}
		}
	}
}

func (s *frameScan) endClose() {
	switch len(s.carry) {
	case 0:
		s.close = int(ws.StatusNoStatusRcvd)
	case 1:
		s.close = -1
	default:
		s.close = int(binary.BigEndian.Uint16(s.carry))
	}
	s.inClose, s.carry = false, s.carry[:0]
}

func (s *frameScan) outcome(transport string) string {
	if s.close > 0 {
		return fmt.Sprintf("close %d", s.close)
	}
	if s.close < 0 {
		return "close (malformed)"
	}
	return transport
}
