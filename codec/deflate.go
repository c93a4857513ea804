package codec

import (
	"bytes"
	"compress/flate"
	"errors"
	"io"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws/wsflate"
)

// DeflateResponse is the Sec-WebSocket-Extensions value megaws answers an
// acceptable permessage-deflate offer with. Neither side keeps an LZ77 window
// between messages (RFC 7692 §7.1.1), so an idle connection holds no
// compression state and one inflater and one deflater per event loop serve
// every connection.
const DeflateResponse = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

// NegotiateDeflate reports whether one of the client's permessage-deflate
// offers (RFC 7692 §5) can be accepted with DeflateResponse. Offers are taken
// in the client's order; an offer that limits the server's window below 2^15
// (server_max_window_bits < 15) cannot be honoured by compress/flate and is
// declined, as is one with unknown or malformed parameters.
func (r *Request) NegotiateDeflate() bool {
	ok := false
	r.ExtensionLines(func(line []byte) bool {
		opts, valid := httphead.ParseOptions(line, nil)
		if !valid {
			return true
		}
		for _, opt := range opts {
			if !bytes.Equal(opt.Name, wsflate.ExtensionNameBytes) {
				continue
			}
			var p wsflate.Parameters
			if p.Parse(opt) != nil {
				continue
			}
			if p.ServerMaxWindowBits.Defined() && p.ServerMaxWindowBits != 15 {
				continue
			}
			ok = true
			return false
		}
		return true
	})
	return ok
}

// deflateTail is the empty stored block that ends every compressed message on
// the wire and is removed by the sender (RFC 7692 §7.2.1); the inflater puts
// it back, followed by a final empty block so that the flate reader ends with
// io.EOF.
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// Inflater decompresses permessage-deflate messages sent without context
// takeover. It is not safe for concurrent use; the zero value is ready.
type Inflater struct {
	fr  io.ReadCloser
	src tailReader
	out []byte
}

// Inflate decompresses the message payload p (RSV1 was set on its first
// frame) and returns the result, valid until the next call. It stops with
// ErrMessageTooBig as soon as the output exceeds limit bytes, so a small
// "deflate bomb" never expands beyond limit in memory, and with ErrInflate on
// malformed input.
func (f *Inflater) Inflate(p []byte, limit int) ([]byte, error) {
	f.src = tailReader{a: p, b: deflateTail}
	if f.fr == nil {
		f.fr = flate.NewReader(&f.src)
	} else if err := f.fr.(flate.Resetter).Reset(&f.src, nil); err != nil {
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
	return out, nil
}

// keep retains the output buffer for reuse unless it grew large.
func (f *Inflater) keep(out []byte) {
	if cap(out) <= 1<<20 {
		f.out = out[:0]
	} else {
		f.out = nil
	}
}

// tailReader reads a, then b, as one stream; it is an io.ByteReader so that
// compress/flate reads it without a bufio wrapper.
type tailReader struct{ a, b []byte }

func (r *tailReader) Read(p []byte) (int, error) {
	if len(r.a) == 0 {
		r.a, r.b = r.b, nil
		if len(r.a) == 0 {
			return 0, io.EOF
		}
	}
	n := copy(p, r.a)
	r.a = r.a[n:]
	return n, nil
}

func (r *tailReader) ReadByte() (byte, error) {
	if len(r.a) == 0 {
		r.a, r.b = r.b, nil
		if len(r.a) == 0 {
			return 0, io.EOF
		}
	}
	c := r.a[0]
	r.a = r.a[1:]
	return c, nil
}

// Deflater compresses messages for permessage-deflate without context
// takeover. It is not safe for concurrent use; create it with NewDeflater.
type Deflater struct {
	fw  *flate.Writer
	dst appendWriter
}

// NewDeflater returns a Deflater at a compress/flate level (flate.BestSpeed
// is a good default for real-time traffic).
func NewDeflater(level int) (*Deflater, error) {
	d := &Deflater{}
	fw, err := flate.NewWriter(&d.dst, level)
	if err != nil {
		return nil, err
	}
	d.fw = fw
	return d, nil
}

// AppendDeflate appends the compressed form of p to dst, without the final
// 0x00 0x00 0xff 0xff (RFC 7692 §7.2.1); the frame carrying it must have RSV1 set.
func (d *Deflater) AppendDeflate(dst, p []byte) []byte {
	d.dst.b = dst
	d.fw.Reset(&d.dst)
	_, _ = d.fw.Write(p)
	_ = d.fw.Flush()
	out := d.dst.b
	d.dst.b = nil
	if n := len(out); n-len(dst) >= 4 && bytes.Equal(out[n-4:], deflateTail[:4]) {
		out = out[:n-4]
	}
	return out
}

type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}
