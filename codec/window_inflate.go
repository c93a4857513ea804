package codec

import (
	"compress/flate"
	"errors"
	"io"
)

// WindowInflater decompresses permessage-deflate messages (RFC 7692) with or
// without context takeover. Its working memory (a compress/flate
// decompressor with its 32 KiB window and Huffman tables, about 44 KB, and
// the output buffer) is shared by every connection that one event loop
// serves: the only per-connection state is the History of the peer's window.
//
// A WindowInflater is not safe for concurrent use; the zero value is ready.
type WindowInflater struct {
	fr  io.ReadCloser
	src tailReader
	out []byte
}

// Inflate decompresses the message payload p (RSV1 was set on its first
// frame; RFC 7692 §7.2.2) and returns the result, valid until the next call.
//
// With takeover, hist holds the end of the peer's earlier messages, which
// back-references may reach into, and the message is appended to it
// afterwards; hist must be given at least the window the peer compresses
// with (client_max_window_bits, and 9 bits when 8 was agreed: see
// History.SetWindowBits). A reference farther back than hist and the message
// so far is invalid data. Without takeover hist is neither read nor changed
// and may be nil.
//
// Inflate stops with ErrMessageTooBig as soon as the output exceeds limit
// bytes, so a small "deflate bomb" never expands beyond limit in memory, and
// with ErrInflate on malformed input; in both cases hist is unchanged and the
// connection must be failed (close 1009 or 1007).
func (f *WindowInflater) Inflate(hist *History, p []byte, limit int, takeover bool) ([]byte, error) {
	var dict []byte
	if takeover && hist != nil {
		dict = hist.buf
	}
	f.src = tailReader{a: p, b: deflateTail}
	if f.fr == nil {
		f.fr = flate.NewReaderDict(&f.src, dict)
	} else if err := f.fr.(flate.Resetter).Reset(&f.src, dict); err != nil {
		return nil, ErrInflate
	}
	out := f.out[:0]
	for {
		if len(out) == cap(out) {
			if len(out) > limit {
				return nil, ErrMessageTooBig
			}
			out = append(out, 0)[:len(out)]
		}
		n, err := f.fr.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		if len(out) > limit {
			f.keep(out)
			return nil, ErrMessageTooBig
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			f.keep(out)
			return nil, ErrInflate
		}
	}
	f.keep(out)
	if takeover && hist != nil {
		hist.add(out)
	}
	return out, nil
}

// keep retains the output buffer for reuse unless it grew large.
func (f *WindowInflater) keep(out []byte) {
	if cap(out) <= 1<<20 {
		f.out = out[:0]
	} else {
		f.out = nil
	}
}
