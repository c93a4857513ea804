package codec

import "encoding/binary"

// UTF8 validates UTF-8 incrementally across the fragments of a text message and
// fails fast: Feed reports an invalid sequence at the first byte that cannot
// start or continue a valid one, even when the sequence is split across
// fragments (RFC 6455 §8.1; Autobahn section 6.4). The zero value is ready to use
// and the struct is one byte, so it lives inside the connection state.
type UTF8 struct {
	// st packs the continuation bytes still expected (bits 0-1) and the
	// accepted range of the next one (bits 2-4, an index into utf8Ranges);
	// utf8Failed marks a message already found invalid.
	st uint8
}

// utf8Failed in UTF8.st marks a message already found invalid.
const utf8Failed = 0xff

// utf8Ranges are the accepted ranges of the byte after a lead byte
// (RFC 3629 §4); every later continuation byte is in 0x80-0xBF.
var utf8Ranges = [5][2]uint8{{0x80, 0xBF}, {0xA0, 0xBF}, {0x80, 0x9F}, {0x90, 0xBF}, {0x80, 0x8F}}

// Feed validates the next bytes of the message. It returns false as soon as the
// bytes seen so far cannot be a prefix of valid UTF-8, and keeps returning false
// until Reset.
func (v *UTF8) Feed(b []byte) bool {
	if v.st == utf8Failed {
		return false
	}
	i, n := 0, len(b)
	need, rng := v.st&3, v.st>>2
	lo, hi := utf8Ranges[rng][0], utf8Ranges[rng][1]
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
				need, rng = 1, 0
			case c == 0xE0:
				need, rng = 2, 1
			case c == 0xED: // U+D800..U+DFFF surrogates are excluded
				need, rng = 2, 2
			case c >= 0xE1 && c <= 0xEF:
				need, rng = 2, 0
			case c == 0xF0:
				need, rng = 3, 3
			case c >= 0xF1 && c <= 0xF3:
				need, rng = 3, 0
			case c == 0xF4: // nothing above U+10FFFF
				need, rng = 3, 4
			default:
				v.st = utf8Failed
				return false
			}
			lo, hi = utf8Ranges[rng][0], utf8Ranges[rng][1]
			continue
		}
		c := b[i]
		if c < lo || c > hi {
			v.st = utf8Failed
			return false
		}
		i++
		need--
		rng, lo, hi = 0, 0x80, 0xBF
	}
	v.st = need | rng<<2
	return true
}

// Complete reports whether the bytes fed so far end at a character boundary
// without an error: the check for the final fragment of a text message.
func (v *UTF8) Complete() bool { return v.st == 0 }

// Reset prepares v for a new message.
func (v *UTF8) Reset() { *v = UTF8{} }
