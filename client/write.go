package client

import (
	"crypto/rand"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/megaws/megaws/codec"
)

// writeChunk is the most payload one write(2) carries: a larger message is
// masked and written in pieces of this size instead of being copied whole.
const writeChunk = 64 << 10

// writeState belongs to the goroutine holding Conn.wmu.
type writeState struct {
	buf   []byte // one frame (or one chunk of one) being written
	zbuf  []byte // the compressed payload
	masks [64]byte
	maskN int   // unused bytes left at the end of masks
	err   error // a write failed: the stream is broken

	closeSent   bool
	closeCode   ws.StatusCode
	closeReason string
}

// deflaters pools compressors per level (flate levels -2..9), shared by
// every connection: without context takeover a compressor carries nothing
// from one message to the next.
var deflaters [12]sync.Pool

func getDeflater(level int) *codec.Deflater {
	if d, ok := deflaters[level+2].Get().(*codec.Deflater); ok {
		return d
	}
	d, err := codec.NewDeflater(level)
	if err != nil {
		panic("megaws: compression level checked by Dial: " + err.Error())
	}
	return d
}

// WriteMessage sends one data message, op ws.OpText or ws.OpBinary, in a
// single frame masked with a fresh key from crypto/rand (RFC 6455 §5.3), and
// compressed when permessage-deflate was negotiated and the payload is at
// least Options.CompressionThreshold bytes. payload is not modified and not
// retained. Text is not checked for UTF-8: the server fails the connection
// (1007) if it is invalid.
//
// It is safe to call from several goroutines and concurrently with
// ReadMessage; writes are serialized. It blocks until the frame is handed
// to the kernel, bounded by SetWriteDeadline. After a write error the
// connection is broken and every write returns that error; once a close
// frame was sent (Close, or the answer to the server's) or the connection
// is over, it returns ErrClosed.
func (c *Conn) WriteMessage(op ws.OpCode, payload []byte) error {
	if op != ws.OpText && op != ws.OpBinary {
		return ErrOpCode
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	w := &c.w
	switch {
	case w.closeSent || c.ended():
		return ErrClosed
	case w.err != nil:
		return w.err
	}
	var rsv byte
	p := payload
	if c.deflate && len(payload) >= c.zThreshold {
		d := getDeflater(c.zLevel)
		w.zbuf = d.AppendDeflate(w.zbuf[:0], payload)
		deflaters[c.zLevel+2].Put(d)
		p, rsv = w.zbuf, rsv1
	}
	err := c.writeFrame(op, rsv, p)
	if cap(w.zbuf) > writeChunk {
		w.zbuf = nil
	}
	return err
}

// Ping sends a ping with payload (at most 125 bytes). The server's pong is
// reported to Options.OnPong by the goroutine reading.
func (c *Conn) Ping(payload []byte) error {
	if len(payload) > codec.MaxControlPayload {
		return ErrControlTooLong
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	switch {
	case c.w.closeSent || c.ended():
		return ErrClosed
	case c.w.err != nil:
		return c.w.err
	}
	return c.writeFrame(ws.OpPing, 0, payload)
}

// writeControl sends a pong (or another control frame) unless the stream is
// broken or closing. The caller is the reader.
func (c *Conn) writeControl(op ws.OpCode, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.w.err != nil || c.w.closeSent {
		return ErrClosed
	}
	return c.writeFrame(op, 0, p)
}

// writeFrame masks and writes one final frame. The caller holds wmu.
func (c *Conn) writeFrame(op ws.OpCode, rsv byte, payload []byte) error {
	w := &c.w
	mask := c.mask()
	b := codec.AppendHeader(w.buf[:0], ws.Header{Fin: true, Rsv: rsv, OpCode: op, Masked: true, Mask: mask, Length: int64(len(payload))})
	for off := 0; ; {
		n := min(len(payload)-off, writeChunk)
		start := len(b)
		b = append(b, payload[off:off+n]...)
		ws.Cipher(b[start:], mask, off)
		off += n
		if _, err := c.nc.Write(b); err != nil {
			w.err = err
			return err
		}
		if off == len(payload) {
			break
		}
		b = b[:0]
	}
	w.buf = b[:0]
	return nil
}

// mask returns a fresh masking key, drawing crypto/rand 16 keys at a time.
func (c *Conn) mask() [4]byte {
	w := &c.w
	if w.maskN < 4 {
		_, _ = rand.Read(w.masks[:]) // never fails (crypto/rand, Go 1.24+)
		w.maskN = len(w.masks)
	}
	w.maskN -= 4
	var m [4]byte
	copy(m[:], w.masks[w.maskN:])
	return m
}

// checkClose validates what Close is asked to send.
func checkClose(code ws.StatusCode, reason string) error {
	if code == 0 {
		if reason != "" {
			return ErrInvalidCloseCode
		}
		return nil
	}
	if !codec.ValidCloseCode(code) {
		return ErrInvalidCloseCode
	}
	if len(reason) > codec.MaxControlPayload-2 {
		return ErrControlTooLong
	}
	if !utf8.ValidString(reason) {
		return ErrInvalidUTF8
	}
	return nil
}

// appendClosePayload appends a close frame's payload: nothing for code 0.
func appendClosePayload(dst []byte, code ws.StatusCode, reason string) []byte {
	if code == 0 {
		return dst
	}
	return append(append(dst, byte(code>>8), byte(code)), reason...)
}

// sendClose writes this side's close frame once, within deadline; nil if
// one was already sent.
func (c *Conn) sendClose(code ws.StatusCode, reason string, deadline time.Time) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.sendCloseLocked(code, reason, deadline)
}

func (c *Conn) sendCloseLocked(code ws.StatusCode, reason string, deadline time.Time) error {
	w := &c.w
	if w.closeSent {
		return nil
	}
	w.closeSent, w.closeCode, w.closeReason = true, code, reason
	if w.err != nil {
		return w.err
	}
	_ = c.nc.SetWriteDeadline(earliest(c.userWriteDeadline(), deadline))
	var p [codec.MaxControlPayload]byte
	return c.writeFrame(ws.OpClose, 0, appendClosePayload(p[:0], code, reason))
}

// failClose sends the close code for a protocol failure unless a writer is
// busy (it may be blocked on a server that stopped reading; closing TCP
// right after will free it).
func (c *Conn) failClose(code ws.StatusCode) {
	if !c.wmu.TryLock() {
		return
	}
	defer c.wmu.Unlock()
	_ = c.sendCloseLocked(code, "", time.Now().Add(c.closeTO))
}

// answerClose echoes the server's close code if this side has not sent a
// close frame yet; it reports whether the server closed first, and what
// this side had sent otherwise.
func (c *Conn) answerClose(echo ws.StatusCode) (first bool, code ws.StatusCode, reason string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.w.closeSent {
		return false, c.w.closeCode, c.w.closeReason
	}
	_ = c.sendCloseLocked(echo, "", time.Now().Add(c.closeTO))
	return true, 0, ""
}

// sentCode returns the code of the close frame this side sent.
func (c *Conn) sentCode() ws.StatusCode {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.w.closeCode
}
