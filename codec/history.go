package codec

// The LZ77 window sizes a permessage-deflate peer may negotiate with
// server_max_window_bits and client_max_window_bits (RFC 7692 §7.1.2).
const (
	MinWindowBits = 8
	MaxWindowBits = 15
)

// History is the LZ77 window that one direction of a permessage-deflate
// connection carries from one message to the next under context takeover
// (RFC 7692 §7.1.1): the last up to 2^bits bytes of uncompressed data sent in
// that direction. It is the whole per-connection cost of compression with
// takeover: the compressor and decompressor working memory lives in a
// WindowDeflater or WindowInflater that an event loop shares among all its
// connections.
//
// The zero value is an empty history with a 2^15-byte window. Its buffer grows
// with the data it holds, by doubling, up to the window size, so a connection
// that sent little holds little; an unused History holds no buffer at all.
// Setting it to History{} releases the buffer. A History is not safe for
// concurrent use.
type History struct {
	buf  []byte
	bits uint8 // 0 means MaxWindowBits
}

// NewHistory returns an empty History with a window of 2^bits bytes; bits is
// clamped to [MinWindowBits, MaxWindowBits].
func NewHistory(bits int) History {
	var h History
	h.SetWindowBits(bits)
	return h
}

// SetWindowBits sets the window to 2^bits bytes, bits clamped to
// [MinWindowBits, MaxWindowBits], dropping the oldest bytes if the history
// holds more than the new window.
//
// A compressor honours a window of 8 bits exactly (no back-reference farther
// than 256 bytes). zlib cannot compress with a 256-byte window and silently
// uses 512 bytes when told 8, so a History that decompresses a peer's
// messages should be given at least 9 bits even when client_max_window_bits=8
// was agreed (or the server should never ask for 8).
func (h *History) SetWindowBits(bits int) {
	bits = min(max(bits, MinWindowBits), MaxWindowBits)
	h.bits = uint8(bits)
	if n := len(h.buf) - (1 << bits); n > 0 {
		h.buf = h.buf[:copy(h.buf, h.buf[n:])]
	}
}

// WindowBits returns the base-2 logarithm of the window size.
func (h *History) WindowBits() int {
	if h.bits == 0 {
		return MaxWindowBits
	}
	return int(h.bits)
}

// Len returns the number of bytes the history holds, at most 2^WindowBits().
func (h *History) Len() int { return len(h.buf) }

// Cap returns the number of bytes the history's buffer occupies in memory.
func (h *History) Cap() int { return cap(h.buf) }

// Reset empties the history and keeps its buffer and window size, as a new
// deflate stream on the same connection needs.
func (h *History) Reset() { h.buf = h.buf[:0] }

// add appends p to the history, keeping only the last 2^WindowBits() bytes.
func (h *History) add(p []byte) {
	size := 1 << h.WindowBits()
	if len(p) >= size {
		h.grow(size, size)
		h.buf = h.buf[:size]
		copy(h.buf, p[len(p)-size:])
		return
	}
	if drop := len(h.buf) + len(p) - size; drop > 0 {
		h.buf = h.buf[:copy(h.buf, h.buf[drop:])]
	}
	h.grow(len(h.buf)+len(p), size)
	h.buf = append(h.buf, p...)
}

// grow makes room for need bytes, doubling the buffer up to size bytes.
func (h *History) grow(need, size int) {
	if cap(h.buf) >= need {
		return
	}
	c := min(max(2*cap(h.buf), need, 512), size)
	b := make([]byte, len(h.buf), c)
	copy(b, h.buf)
	h.buf = b
}
