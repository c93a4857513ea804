package client

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/megaws/megaws/codec"
)

// rsv1 is the RSV1 bit in ws.Header.Rsv: "per-message compressed" (RFC 7692).
const rsv1 = 0x4

// readState is where a read stands between frames, and within one, so a
// read interrupted by a deadline or a cancelled ctx resumes exactly there.
type readState struct {
	h       ws.Header
	inFrame bool // h is read, its payload not all yet
	got     int  // payload bytes of h read so far
	ctl     [codec.MaxControlPayload]byte

	msg        []byte    // the data message being received
	op         ws.OpCode // its opcode while it is fragmented, else 0
	compressed bool
	utf8       codec.UTF8
}

var inflaters = sync.Pool{New: func() any { return new(codec.Inflater) }}

// ReadMessage returns the next data message: its opcode (ws.OpText or
// ws.OpBinary) and payload, after fragments are reassembled, the message
// decompressed and text checked to be UTF-8 (RFC 6455 §8.1). The payload is
// the caller's to keep. Control frames are handled on the way: pings are
// answered with pongs, pongs and pings reported to Options.OnPong and
// OnPing, and a close frame answered (RFC 6455 §5.5.1) and returned as a
// *CloseError with the server's code and reason.
//
// ctx and the read deadline bound the wait; when either ends it,
// ReadMessage returns ctx.Err() (or an error wrapping
// os.ErrDeadlineExceeded) and the connection stays usable: the next call
// resumes mid-frame if need be. Any other error ends the connection: a
// server that breaks the protocol gets the close code the RFC asks for
// (1002, 1007, or 1009 for a message over Options.MaxMessageSize) before
// the TCP connection is closed, and this and every later call return the
// same *CloseError (see CloseStatus). One goroutine at a time may read.
func (c *Conn) ReadMessage(ctx context.Context) (ws.OpCode, []byte, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.ended() {
		return 0, nil, c.end
	}
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	release := c.armRead(ctx)
	defer release()
	if c.kaEvery > 0 {
		c.readSince.Store(time.Now().UnixNano())
		defer c.readSince.Store(0)
	}
	op, p, err := c.next()
	if err != nil {
		return 0, nil, c.readError(ctx, err)
	}
	return op, p, nil
}

// armRead applies ctx to the read deadline for one ReadMessage and returns
// the function that undoes it.
func (c *Conn) armRead(ctx context.Context) func() {
	c.dlmu.Lock()
	c.dl.gen++
	gen := c.dl.gen
	c.dl.active, c.dl.canceled = true, false
	c.dl.ctxDL, _ = ctx.Deadline()
	_ = c.nc.SetReadDeadline(earliest(c.dl.user, c.dl.ctxDL))
	c.dlmu.Unlock()
	stop := func() bool { return true }
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() {
			c.dlmu.Lock()
			defer c.dlmu.Unlock()
			if c.dl.gen == gen && c.dl.active {
				c.dl.canceled = true
				_ = c.nc.SetReadDeadline(aLongTimeAgo)
			}
		})
	}
	return func() {
		stop()
		c.dlmu.Lock()
		c.dl.gen++
		c.dl.active, c.dl.canceled, c.dl.ctxDL = false, false, time.Time{}
		c.dlmu.Unlock()
	}
}

// readError turns an error from next into what ReadMessage returns: a
// timeout caused by ctx or the deadline is returned as such and leaves the
// connection usable; anything else ends it.
func (c *Conn) readError(ctx context.Context, err error) error {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce
	}
	if c.ended() {
		return c.end // Close, the keepalive or a failed write ended it
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
			return context.DeadlineExceeded
		}
		return err
	}
	if errors.Is(err, io.EOF) && c.rd.inFrame {
		err = io.ErrUnexpectedEOF
	}
	return c.finish(&CloseError{Code: ws.StatusAbnormalClosure, Err: err})
}

// next reads frames until a data message is complete.
func (c *Conn) next() (ws.OpCode, []byte, error) {
	rd := &c.rd
	for {
		if !rd.inFrame {
			h, err := c.readHeader()
			if err != nil {
				return 0, nil, err
			}
			if err := c.startFrame(h); err != nil {
				return 0, nil, err
			}
		}
		h := rd.h
		var dst []byte
		if h.OpCode.IsControl() {
			dst = rd.ctl[:h.Length]
		} else {
			dst = rd.msg[len(rd.msg) : len(rd.msg)+int(h.Length)]
		}
		for rd.got < len(dst) {
			n, err := c.br.Read(dst[rd.got:])
			rd.got += n
			if err != nil && rd.got < len(dst) {
				return 0, nil, err
			}
		}
		rd.inFrame = false
		if h.OpCode.IsControl() {
			if err := c.control(h.OpCode, dst); err != nil {
				return 0, nil, err
			}
			continue
		}
		rd.msg = rd.msg[:len(rd.msg)+len(dst)]
		if rd.op == ws.OpText && !rd.compressed && !rd.utf8.Feed(dst) {
			return 0, nil, c.fail(codec.ErrInvalidUTF8)
		}
		if !h.Fin {
			continue
		}
		op, msg := rd.op, rd.msg
		rd.op, rd.msg = 0, nil
		if rd.compressed {
			var err error
			if msg, err = c.inflate(msg); err != nil {
				return 0, nil, c.fail(err)
			}
			if op == ws.OpText && !utf8.Valid(msg) {
				return 0, nil, c.fail(codec.ErrInvalidUTF8)
			}
		} else if op == ws.OpText && !rd.utf8.Complete() {
			return 0, nil, c.fail(codec.ErrInvalidUTF8)
		}
		return op, msg, nil
	}
}

// readHeader reads the next frame header; on an error nothing is consumed.
func (c *Conn) readHeader() (ws.Header, error) {
	b, err := c.br.Peek(2)
	if err != nil {
		return ws.Header{}, err
	}
	need := 2
	switch b[1] & 0x7f {
	case 126:
		need = 4
	case 127:
		need = 10
	}
	if b[1]&0x80 != 0 {
		need += 4
	}
	if b, err = c.br.Peek(need); err != nil {
		return ws.Header{}, err
	}
	h, n, err := codec.DecodeHeader(b)
	if err != nil {
		return h, c.fail(err)
	}
	_, _ = c.br.Discard(n)
	return h, nil
}

// startFrame checks a new frame's header against the connection's state
// and makes room for its payload.
func (c *Conn) startFrame(h ws.Header) error {
	rd := &c.rd
	if err := codec.CheckServerHeader(h, rd.op, c.deflate); err != nil {
		return c.fail(err)
	}
	if !h.OpCode.IsControl() {
		if h.Length > int64(c.maxMsg-len(rd.msg)) {
			return c.fail(codec.ErrMessageTooBig)
		}
		n := int(h.Length)
		if h.OpCode != ws.OpContinuation {
			rd.op, rd.compressed = h.OpCode, h.Rsv&rsv1 != 0
			rd.utf8.Reset()
			rd.msg = make([]byte, 0, n)
		} else if cap(rd.msg)-len(rd.msg) < n {
			grown := make([]byte, len(rd.msg), min(max(2*cap(rd.msg), len(rd.msg)+n), c.maxMsg))
			copy(grown, rd.msg)
			rd.msg = grown
		}
	}
	rd.h, rd.inFrame, rd.got = h, true, 0
	return nil
}

// control handles a ping, pong or close frame.
func (c *Conn) control(op ws.OpCode, p []byte) error {
	switch op {
	case ws.OpPing:
		_ = c.writeControl(ws.OpPong, p)
		if c.onPing != nil {
			c.onPing(p)
		}
	case ws.OpPong:
		if c.onPong != nil {
			c.onPong(p)
		}
	case ws.OpClose:
		code, reason, err := codec.ParseClose(p)
		if err != nil {
			return c.fail(err)
		}
		// Echo the status (§5.5.1) unless this side closed first.
		echo := code
		if echo == ws.StatusNoStatusRcvd {
			echo = 0
		}
		first, sentCode, sentReason := c.answerClose(echo)
		if first {
			return c.finish(&CloseError{Code: code, Reason: string(reason), Remote: true})
		}
		return c.finish(&CloseError{Code: sentCode, Reason: sentReason})
	}
	return nil
}

// inflate decompresses a permessage-deflate message into a new slice.
func (c *Conn) inflate(p []byte) ([]byte, error) {
	f := inflaters.Get().(*codec.Inflater)
	defer inflaters.Put(f)
	out, err := f.Inflate(p, c.maxMsg)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), out...), nil
}

// fail ends the connection because the server broke the protocol: the close
// code for err is sent (best effort, within the close timeout), then TCP is
// closed.
func (c *Conn) fail(err error) error {
	code := codec.CloseCode(err)
	c.failClose(code)
	return c.finish(&CloseError{Code: code, Err: err})
}

// drain reads for Close until the server's close frame, an error or
// deadline, discarding data messages. The caller holds rmu.
func (c *Conn) drain(deadline time.Time) {
	c.dlmu.Lock()
	_ = c.nc.SetReadDeadline(deadline)
	c.dlmu.Unlock()
	for !c.ended() {
		if _, _, err := c.next(); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				_ = c.finish(&CloseError{Code: c.sentCode(), Err: ErrCloseTimeout})
				return
			}
			_ = c.finish(&CloseError{Code: ws.StatusAbnormalClosure, Err: err})
			return
		}
	}
}
