package codec

import "encoding/binary"

// UTF8 validates UTF-8 incrementally across the fragments of a text message and
// fails fast: Feed reports an invalid sequence at the first byte that cannot
// start or continue a valid one, even when the sequence is split across
// fragments (RFC 6455 §8.1; Autobahn section 6.4). The zero value is ready to use
// and the struct is three bytes, so it lives inside the connection state.
type UTF8 struct {
	need   uint8 // continuation bytes still expected
	lo, hi uint8 // accepted range for the next continuation byte
}

// utf8Failed in UTF8.need marks a message already found invalid.
const utf8Failed = 0xff

// Feed validates the next bytes of the message. It returns false as soon as the
// bytes seen so far cannot be a prefix of valid UTF-8, and keeps returning false
// until Reset.
func (v *UTF8) Feed(b []byte) bool {
	if v.need == utf8Failed {
		return false
	}
	i, n := 0, len(b)
	need, lo, hi := v.need, v.lo, v.hi
	for i < n {
		if need == 0 {
			// ASCII fast path: eight bytes at a time while no high bit is set.
			for i+8 <= n && binary.LittleEndian.Uint64(b[i:])&0x8080808080808080 == 0 {
				i += 8
			}
			if i == n {
				break
			}
			c := b[i]
			i++
			if c < 0x80 {
				continue
			}
			switch {
			case c >= 0xC2 && c <= 0xDF:
				need, lo, hi = 1, 0x80, 0xBF
			case c == 0xE0:
				need, lo, hi = 2, 0xA0, 0xBF
			case c == 0xED: // U+D800..U+DFFF surrogates are excluded
				need, lo, hi = 2, 0x80, 0x9F
			case c >= 0xE1 && c <= 0xEF:
				need, lo, hi = 2, 0x80, 0xBF
			case c == 0xF0:
				need, lo, hi = 3, 0x90, 0xBF
			case c >= 0xF1 && c <= 0xF3:
				need, lo, hi = 3, 0x80, 0xBF
			case c == 0xF4: // nothing above U+10FFFF
				need, lo, hi = 3, 0x80, 0x8F
			default:
				v.need = utf8Failed
				return false
			}
			continue
		}
		c := b[i]
		if c < lo || c > hi {
			v.need = utf8Failed
			return false
		}
		i++
		need--
		lo, hi = 0x80, 0xBF
	}
	v.need, v.lo, v.hi = need, lo, hi
	return true
}

// Complete reports whether the bytes fed so far end at a character boundary
// without an error: the check for the final fragment of a text message.
func (v *UTF8) Complete() bool { return v.need == 0 }

// Reset prepares v for a new message.
func (v *UTF8) Reset() { *v = UTF8{} }
