package server

import (
	"github.com/gobwas/ws"
	"github.com/megaws/megaws/codec"
)

// permessage-deflate (RFC 7692).
//
// Every compressed connection keeps only its agreed parameters and, under
// context takeover, the window of what it sent (History, 2^ServerWindowBits
// bytes at most) and of what it received (2^ClientWindowBits): the
// compressor and decompressor working state belongs to the loop and serves
// all its connections. Without takeover (the default) the histories stay
// empty, so an idle compressed connection costs a few dozen bytes.
//
// With takeover a connection's messages must be compressed in the order
// they go on the wire, each against the window of the ones before, so
// compression happens on the loop when a message is written or queued —
// also for Send, which hands the loop the payload uncompressed — and a
// broadcast is compressed once per taking-over member. Members without
// takeover share one compressed copy per loop and frame. Snapshots do not
// replace each other on takeover connections: a compressed message that
// never reaches the peer would corrupt its window.

// zstate is a compressed connection's state; it is set during the handshake
// and the pointer never changes afterwards.
type zstate struct {
	p       codec.DeflateParams
	out, in codec.History
}

// z returns c's deflate state, nil if it does not compress.
func (c *Conn) z() *zstate {
	if c.opts&optDeflate == 0 {
		return nil
	}
	return c.ext.z
}

// takeover reports whether c's outgoing messages share a window.
func (c *Conn) takeover() bool {
	z := c.z()
	return z != nil && z.p.ServerTakeover
}

// negotiateDeflate answers a permessage-deflate offer during the handshake
// and returns the Sec-WebSocket-Extensions value ("" for none).
func (s *Server) negotiateDeflate(c *Conn, req *codec.Request) string {
	if !s.cfg.Compression {
		return ""
	}
	bits := s.cfg.CompressionWindowBits
	p, ok := req.NegotiateDeflateParams(codec.DeflatePolicy{ServerWindowBits: bits, ClientWindowBits: bits})
	if !ok {
		return ""
	}
	z := &zstate{p: p}
	z.out.SetWindowBits(p.ServerWindowBits)
	z.in.SetWindowBits(p.ClientWindowBits)
	c.extState().z = z
	c.opts |= optDeflate
	return string(p.AppendResponse(nil))
}

// deflateTo compresses payload for c (a data message of at least the
// threshold) and returns the compressed bytes, valid until the loop's next
// compression.
func (l *Loop) deflateTo(c *Conn, payload []byte) []byte {
	z := c.ext.z
	if l.deflater == nil {
		l.deflater = codec.NewWindowDeflater(l.s.cfg.CompressionLevel)
	}
	l.zbuf = l.deflater.AppendCompress(l.zbuf[:0], &z.out, payload, z.p.ServerTakeover)
	return l.zbuf
}

// appendDeflatedFrame appends a compressed frame of payload for c to dst.
func (l *Loop) appendDeflatedFrame(dst []byte, c *Conn, op ws.OpCode, payload []byte) []byte {
	zp := l.deflateTo(c, payload)
	dst = codec.AppendHeader(dst, ws.Header{Fin: true, Rsv: rsv1, OpCode: op, Length: int64(len(zp))})
	return append(dst, zp...)
}

// inflateFrom decompresses a message c sent.
func (l *Loop) inflateFrom(c *Conn, p []byte) ([]byte, error) {
	z := c.ext.z
	return l.inflater.Inflate(&z.in, p, l.s.cfg.MaxMessageSize, z.p.ClientTakeover)
}

// compressedFor returns the frames of a fan-out batch for c, which
// compresses: a copy compressed against c's own window under takeover
// (owned: the caller writes or queues it), else the loop's shared
// compressed copy of each frame (see sharedZ), or the plain frame when the
// payload is under the threshold.
func (l *Loop) compressedFor(c *Conn, batch []task) (*[]byte, [][]byte) {
	z := c.ext.z
	if z.p.ServerTakeover {
		fb := getFrameBuf(0)
		for i := range batch {
			f := batch[i].frame
			op, p := f.opPayload()
			if len(p) >= l.s.cfg.CompressionThreshold {
				*fb = l.appendDeflatedFrame(*fb, c, op, p)
			} else {
				*fb = append(*fb, *f.buf...)
			}
		}
		return fb, nil
	}
	frames := l.fanZ[:0]
	for i := range batch {
		frames = append(frames, l.sharedZ(i, batch[i].frame, z.p.ServerWindowBits))
	}
	l.fanZ = frames
	return nil, frames
}

// sharedZ returns frame i of the batch being delivered compressed for
// connections without takeover and a window of bits, computed once per loop
// and batch (for the common 15-bit window; other windows get their own).
func (l *Loop) sharedZ(i int, f *sharedFrame, bits int) []byte {
	op, p := f.opPayload()
	if len(p) < l.s.cfg.CompressionThreshold {
		return *f.buf
	}
	if bits == codec.MaxWindowBits && i < len(l.fanZFrames) && l.fanZFrames[i] != nil {
		return l.fanZFrames[i]
	}
	if l.deflater == nil {
		l.deflater = codec.NewWindowDeflater(l.s.cfg.CompressionLevel)
	}
	var h codec.History
	h.SetWindowBits(bits)
	zp := l.deflater.AppendCompress(nil, &h, p, false)
	b := codec.AppendHeader(make([]byte, 0, codec.MaxHeaderSize+len(zp)), ws.Header{Fin: true, Rsv: rsv1, OpCode: op, Length: int64(len(zp))})
	b = append(b, zp...)
	if bits == codec.MaxWindowBits {
		for len(l.fanZFrames) <= i {
			l.fanZFrames = append(l.fanZFrames, nil)
		}
		l.fanZFrames[i] = b
	}
	return b
}

// opPayload returns the frame's opcode and payload.
func (f *sharedFrame) opPayload() (ws.OpCode, []byte) {
	b := *f.buf
	return ws.OpCode(b[0] & 0x0f), b[len(b)-f.n:]
}
