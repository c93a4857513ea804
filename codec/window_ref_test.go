package codec

import (
	"errors"
	"fmt"
)

// refInflate is a deliberately simple DEFLATE decoder after Mark Adler's
// puff.c, independent of the code under test and of compress/flate. It
// decodes one permessage-deflate message (the 0x00 0x00 0xff 0xff tail is
// added here) after the history hist and fails on any back-reference
// farther than window bytes or than the data it has: that is how the tests
// check that the compressor never reaches outside its window. It also
// reports the block types used (stored, fixed, dynamic).
func refInflate(hist, p []byte, window int) (out []byte, types [3]int, err error) {
	r := refReader{in: append(append([]byte(nil), p...), 0, 0, 0xff, 0xff)}
	buf := append([]byte(nil), hist...)
	defer func() {
		if e := recover(); e != nil {
			err = fmt.Errorf("ref: %v", e)
		}
	}()
	for r.pos < len(r.in) || r.cnt >= 8 {
		final := r.bits(1)
		typ := r.bits(2)
		if typ == 3 {
			return nil, types, errors.New("ref: block type 3")
		}
		types[typ]++
		switch typ {
		case 0:
			r.cnt, r.buf = 0, 0
			if r.pos+4 > len(r.in) {
				return nil, types, errors.New("ref: short stored header")
			}
			n := int(r.in[r.pos]) | int(r.in[r.pos+1])<<8
			if n != ^(int(r.in[r.pos+2])|int(r.in[r.pos+3])<<8)&0xffff {
				return nil, types, errors.New("ref: stored LEN/NLEN mismatch")
			}
			r.pos += 4
			if r.pos+n > len(r.in) {
				return nil, types, errors.New("ref: short stored block")
			}
			buf = append(buf, r.in[r.pos:r.pos+n]...)
			r.pos += n
		case 1:
			if buf, err = r.codes(buf, refFixedLit, refFixedDist, len(hist), window); err != nil {
				return nil, types, err
			}
		case 2:
			nlen, ndist, ncode := int(r.bits(5))+257, int(r.bits(5))+1, int(r.bits(4))+4
			var cl [19]uint8
			for i := range ncode {
				cl[codeLenOrder[i]] = uint8(r.bits(3))
			}
			clc := refCode(cl[:])
			lens := make([]uint8, 0, nlen+ndist)
			for len(lens) < nlen+ndist {
				sym := r.decode(clc)
				switch {
				case sym < 16:
					lens = append(lens, uint8(sym))
				case sym == 16:
					if len(lens) == 0 {
						return nil, types, errors.New("ref: repeat with no length")
					}
					for range 3 + r.bits(2) {
						lens = append(lens, lens[len(lens)-1])
					}
				case sym == 17:
					lens = append(lens, make([]uint8, 3+r.bits(3))...)
				default:
					lens = append(lens, make([]uint8, 11+r.bits(7))...)
				}
			}
			if len(lens) > nlen+ndist || lens[256] == 0 {
				return nil, types, errors.New("ref: bad code lengths")
			}
			if buf, err = r.codes(buf, refCode(lens[:nlen]), refCode(lens[nlen:]), len(hist), window); err != nil {
				return nil, types, err
			}
		}
		if final == 1 {
			return nil, types, errors.New("ref: BFINAL set in a message")
		}
	}
	return buf[len(hist):], types, nil
}

var refFixedLit, refFixedDist = func() (*refHuff, *refHuff) {
	var lens [288 + 30]uint8
	for i := range lens {
		switch {
		case i < 144:
			lens[i] = 8
		case i < 256:
			lens[i] = 9
		case i < 280:
			lens[i] = 7
		case i < 288:
			lens[i] = 8
		default:
			lens[i] = 5
		}
	}
	return refCode(lens[:288]), refCode(lens[288:])
}()

type refReader struct {
	in  []byte
	pos int
	buf uint32
	cnt uint
}

func (r *refReader) bits(n uint) uint32 {
	for r.cnt < n {
		if r.pos >= len(r.in) {
			panic("out of input")
		}
		r.buf |= uint32(r.in[r.pos]) << r.cnt
		r.pos++
		r.cnt += 8
	}
	v := r.buf & (1<<n - 1)
	r.buf >>= n
	r.cnt -= n
	return v
}

// refHuff is a canonical code as puff.c keeps it: codes per length and the
// symbols in code order.
type refHuff struct {
	count  [16]int
	symbol [320]uint16
}

func refCode(lens []uint8) *refHuff {
	h := &refHuff{}
	for _, l := range lens {
		h.count[l]++
	}
	left := 1
	for l := 1; l < 16; l++ {
		left = left<<1 - h.count[l]
		if left < 0 {
			panic("over-subscribed code")
		}
	}
	var offs [16]int
	for l := 1; l < 15; l++ {
		offs[l+1] = offs[l] + h.count[l]
	}
	for s, l := range lens {
		if l != 0 {
			h.symbol[offs[l]] = uint16(s)
			offs[l]++
		}
	}
	return h
}

func (r *refReader) decode(h *refHuff) int {
	code, first, index := 0, 0, 0
	for l := 1; l < 16; l++ {
		code |= int(r.bits(1))
		count := h.count[l]
		if code-count < first {
			return int(h.symbol[index+code-first])
		}
		index += count
		first = (first + count) << 1
		code <<= 1
	}
	panic("invalid code")
}

func (r *refReader) codes(buf []byte, lit, dist *refHuff, histLen, window int) ([]byte, error) {
	for {
		sym := r.decode(lit)
		switch {
		case sym < 256:
			buf = append(buf, byte(sym))
			continue
		case sym == 256:
			return buf, nil
		case sym > 285:
			return nil, errors.New("ref: bad length code")
		}
		sym -= 257
		n := int(lengthBase[sym]) + int(r.bits(uint(lengthExtra[sym])))
		ds := r.decode(dist)
		if ds >= numDist {
			return nil, errors.New("ref: bad distance code")
		}
		d := int(distBase[ds]) + int(r.bits(uint(distExtra[ds])))
		if d > window {
			return nil, fmt.Errorf("ref: distance %d beyond the %d-byte window", d, window)
		}
		if d > len(buf) {
			return nil, fmt.Errorf("ref: distance %d beyond the %d bytes of history and output", d, len(buf))
		}
		for range n {
			buf = append(buf, buf[len(buf)-d])
		}
	}
}
