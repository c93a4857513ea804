//go:build linux

package loop

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"

	"github.com/megaws/megaws/client"
	"github.com/megaws/megaws/client/internal/handshake"
	"github.com/megaws/megaws/codec"
)

type state uint8

const (
	stateConnecting state = iota
	stateHandshaking
	stateOpen
	stateClosing
	stateClosed
)

var (
	errHandshakeTimeout = errors.New("megaws/loop: handshake timeout")
	errCloseTimeout     = client.ErrCloseTimeout
	errAborted          = errors.New("megaws/loop: stopped")
	errExtensions       = errors.New("megaws/loop: server selected an extension that was not offered")
)

// Conn is one connection of a Loop. Its methods must be called on its
// loop's goroutine (from a Handler method or a function given to Post).
type Conn struct {
	loop    *Loop
	ctx     any
	id      int
	fd      int
	state   state
	dirty   bool
	fragOp  ws.OpCode
	utf8    codec.UTF8
	oidx    int   // index in loop.open, -1 when not open
	started int64 // dial start, ns
	hsDur   time.Duration
	key     [handshake.KeyLen]byte

	rbuf []byte // unparsed bytes carried between reads
	wbuf []byte // bytes not yet written
	msg  []byte // fragments of the data message in progress
}

// ID numbers the connections of a loop in dial order, from 0.
func (c *Conn) ID() int { return c.id }

// Loop returns the loop that owns c.
func (c *Conn) Loop() *Loop { return c.loop }

// Context returns the value set with SetContext: the application's state
// for this connection.
func (c *Conn) Context() any { return c.ctx }

// SetContext attaches v to c.
func (c *Conn) SetContext(v any) { c.ctx = v }

// IsOpen reports whether the handshake is done and no close has started.
func (c *Conn) IsOpen() bool { return c.state == stateOpen }

// HandshakeDuration returns the time from the start of connect(2) to the
// verified 101 response; zero before the connection opened.
func (c *Conn) HandshakeDuration() time.Duration { return c.hsDur }

func (l *Loop) dial() {
	cnt := &l.cnt
	cnt.dialed.Add(1)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		l.dialFailed("socket: " + err.Error())
		return
	}
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if src, ok := l.nextSource(); ok {
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: src.As4()}); err != nil {
			_ = unix.Close(fd)
			l.dialFailed("bind " + src.String() + ": " + err.Error())
			return
		}
	}
	err = unix.Connect(fd, &l.dst)
	if err != nil && !errors.Is(err, unix.EINPROGRESS) {
		_ = unix.Close(fd)
		l.dialFailed("connect: " + err.Error())
		return
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		_ = unix.Close(fd)
		l.dialFailed("epoll_ctl: " + err.Error())
		return
	}
	c := &Conn{id: int(cnt.dialed.Load()) - 1, loop: l, fd: fd, oidx: -1, started: time.Now().UnixNano()}
	l.conns[fd] = c
	l.timed[c] = c.started + int64(l.cfg.HandshakeTimeout)
	l.pending++
	if err == nil {
		c.connected()
	}
}

func (l *Loop) dialFailed(msg string) {
	l.cnt.failed.Add(1)
	l.errs.add(msg)
}

func (c *Conn) onEvent(ev uint32) {
	switch c.state {
	case stateConnecting:
		if ev&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) == 0 {
			return
		}
		if e, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil || e != 0 {
			if err == nil {
				err = unix.Errno(e)
			}
			c.fail(fmt.Errorf("connect: %w", err))
			return
		}
		c.connected()
		if ev&unix.EPOLLIN != 0 {
			c.onReadable(ev)
		}
		return
	case stateClosed:
		return
	}
	if ev&unix.EPOLLOUT != 0 && len(c.wbuf) > 0 {
		c.flush()
	}
	if c.state != stateClosed && ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.onReadable(ev)
	}
}

func (c *Conn) connected() {
	c.state = stateHandshaking
	var raw [16]byte
	v1, v2 := c.loop.rng.Uint64(), c.loop.rng.Uint64()
	for i := 0; i < 8; i++ {
		raw[i], raw[8+i] = byte(v1>>(8*i)), byte(v2>>(8*i))
	}
	handshake.EncodeKey(&c.key, raw)
	b := append(c.wbuf[:0], c.loop.reqHead...)
	b = append(b, c.key[:]...)
	c.wbuf = append(b, c.loop.reqTail...)
	c.flush()
}

// onReadable reads what the socket holds. The socket is edge-triggered: a
// read that does not fill the buffer has emptied the receive queue, and any
// byte that arrives later raises a new event, so the loop stops there rather
// than spend a read(2) on EAGAIN (for a loop answering keepalive pings, one
// syscall in three). A hang-up reported with the event is read to its end.
func (c *Conn) onReadable(ev uint32) {
	l := c.loop
	drain := ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0
	for c.state != stateClosed {
		n, err := unix.Read(c.fd, l.readBuf)
		if n > 0 {
			c.feed(l.readBuf[:n])
			if n < len(l.readBuf) && !drain {
				return
			}
			continue
		}
		switch {
		case errors.Is(err, unix.EAGAIN):
			return
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			c.fail(fmt.Errorf("read: %w", err))
		default:
			c.fail(&client.CloseError{Code: ws.StatusAbnormalClosure, Err: io.EOF})
		}
		return
	}
}

// feed parses data, carrying an incomplete tail over to the next read.
func (c *Conn) feed(data []byte) {
	if len(c.rbuf) > 0 {
		c.rbuf = append(c.rbuf, data...)
		data = c.rbuf
	}
	n := c.parse(data)
	if c.state == stateClosed {
		return
	}
	rest := data[n:]
	switch {
	case len(rest) == 0:
		if cap(c.rbuf) > 64<<10 {
			c.rbuf = nil
		} else {
			c.rbuf = c.rbuf[:0]
		}
	case len(c.rbuf) > 0:
		c.rbuf = c.rbuf[:copy(c.rbuf, rest)]
	default:
		c.rbuf = append(c.rbuf[:0], rest...)
	}
}

// parse consumes what it can of b and returns the number of bytes used.
func (c *Conn) parse(b []byte) int {
	used := 0
	if c.state == stateHandshaking {
		n := c.parseResponse(b)
		if n == 0 || c.state != stateOpen {
			return 0
		}
		used = n
	}
	for c.state == stateOpen || c.state == stateClosing {
		h, n, err := codec.DecodeHeader(b[used:])
		if err != nil {
			c.protocolError(err)
			return used
		}
		if n == 0 {
			return used
		}
		if err := codec.CheckServerHeader(h, c.fragOp, false); err != nil {
			c.protocolError(err)
			return used
		}
		if !h.OpCode.IsControl() && h.Length > int64(c.loop.cfg.MaxMessageSize-len(c.msg)) {
			c.protocolError(codec.ErrMessageTooBig)
			return used
		}
		total := n + int(h.Length)
		if len(b)-used < total {
			if h.Length > 0 && cap(c.rbuf) < total {
				// Reserve room for the whole frame once, not once per read.
				nb := make([]byte, 0, total+4096)
				c.rbuf = append(nb, c.rbuf...)
			}
			return used
		}
		payload := b[used+n : used+total]
		used += total
		c.frame(h, payload)
	}
	return used
}

func (c *Conn) parseResponse(b []byte) int {
	r, n, err := handshake.ParseResponse(b)
	if err != nil {
		c.fail(err)
		return 0
	}
	if n == 0 {
		return 0
	}
	if err := r.CheckUpgrade(c.key[:]); err != nil {
		c.fail(err)
		return 0
	}
	if _, err := r.CheckProtocol(nil); err != nil {
		c.fail(err)
		return 0
	}
	if len(r.Extensions) > 0 {
		c.fail(errExtensions)
		return 0
	}
	l := c.loop
	c.state = stateOpen
	delete(l.timed, c)
	l.pending--
	l.cnt.established.Add(1)
	l.cnt.open.Add(1)
	c.hsDur = time.Duration(time.Now().UnixNano() - c.started)
	c.oidx = len(l.open)
	l.open = append(l.open, c)
	if cap(c.wbuf) > 0 && len(c.wbuf) == 0 {
		c.wbuf = nil // an idle connection keeps no buffers
	}
	l.h.OnOpen(c)
	return n
}

func (c *Conn) frame(h ws.Header, payload []byte) {
	l := c.loop
	switch h.OpCode {
	case ws.OpPing:
		l.cnt.pings.Add(1)
		if c.state == stateOpen {
			c.send(ws.OpPong, payload)
		}
		return
	case ws.OpPong:
		l.h.OnMessage(c, ws.OpPong, payload)
		return
	case ws.OpClose:
		code, reason, err := codec.ParseClose(payload)
		if c.state == stateClosing {
			c.finish(nil)
			return
		}
		if err != nil {
			c.protocolError(err)
			return
		}
		c.send(ws.OpClose, payload[:min(len(payload), 2)])
		c.flush()
		c.finish(&client.CloseError{Code: code, Reason: string(reason), Remote: true})
		return
	}
	if c.state != stateOpen {
		return // data after our close frame is allowed; ignore it
	}
	if h.OpCode != ws.OpContinuation {
		c.fragOp = h.OpCode
		c.utf8.Reset()
	}
	if c.fragOp == ws.OpText && !c.utf8.Feed(payload) {
		c.protocolError(codec.ErrInvalidUTF8)
		return
	}
	if !h.Fin {
		c.msg = append(c.msg, payload...)
		return
	}
	op := c.fragOp
	c.fragOp = 0
	if op == ws.OpText && !c.utf8.Complete() {
		c.protocolError(codec.ErrInvalidUTF8)
		return
	}
	if h.OpCode == ws.OpContinuation {
		c.msg = append(c.msg, payload...)
		payload = c.msg
	}
	l.cnt.recv.Add(1)
	l.cnt.bytesRecv.Add(int64(len(payload)))
	l.h.OnMessage(c, op, payload)
	if len(c.msg) > 0 {
		c.msg = c.msg[:0]
		if cap(c.msg) > 1<<20 {
			c.msg = nil
		}
	}
}

// protocolError fails the connection because the server broke the
// protocol: the close code for err is sent, then TCP is closed.
func (c *Conn) protocolError(err error) {
	code := codec.CloseCode(err)
	c.loop.cnt.protocolErrors.Add(1)
	if c.state == stateOpen {
		var p [2]byte
		p[0], p[1] = byte(code>>8), byte(code)
		c.send(ws.OpClose, p[:])
		c.flush()
	}
	c.fail(&client.CloseError{Code: code, Err: err})
}

// Send queues one data message, op ws.OpText or ws.OpBinary, masked; it is
// written when the loop iteration ends. payload is copied. Sends on a
// connection that is not open are dropped.
func (c *Conn) Send(op ws.OpCode, payload []byte) {
	if c.state != stateOpen {
		return
	}
	c.loop.cnt.sent.Add(1)
	c.loop.cnt.bytesSent.Add(int64(len(payload)))
	c.send(op, payload)
}

// Ping queues a ping carrying payload (at most 125 bytes); the pong reaches
// Handler.OnMessage with op ws.OpPong.
func (c *Conn) Ping(payload []byte) {
	if c.state == stateOpen && len(payload) <= codec.MaxControlPayload {
		c.send(ws.OpPing, payload)
	}
}

func (c *Conn) send(op ws.OpCode, payload []byte) {
	c.wbuf = codec.AppendFrameMasked(c.wbuf, op, true, payload, c.loop.mask())
	if !c.dirty {
		c.dirty = true
		c.loop.dirty = append(c.loop.dirty, c)
	}
}

// Close starts the closing handshake (RFC 6455 §7.1.2) with code and reason
// (truncated to fit a control frame); OnClose follows with a nil error when
// the server answers, or client.ErrCloseTimeout after Config.CloseTimeout.
func (c *Conn) Close(code ws.StatusCode, reason string) {
	if c.state != stateOpen {
		return
	}
	var p [codec.MaxControlPayload]byte
	b := append(p[:0], byte(code>>8), byte(code))
	b = append(b, reason[:min(len(reason), codec.MaxControlPayload-2)]...)
	c.send(ws.OpClose, b)
	c.setClosing()
}

// Abort ends the connection at once, without a close handshake: the socket
// is closed, OnClose(c, err) is called and Counters.Aborted counts it. It is
// for an application that finds the stream wrong (a payload that fails
// verification) and cannot trust what follows.
func (c *Conn) Abort(err error) {
	if c.state != stateOpen && c.state != stateClosing {
		return
	}
	l := c.loop
	l.cnt.aborted.Add(1)
	l.errs.add(err.Error())
	c.removeOpen()
	c.state = stateClosed
	c.release()
	l.h.OnClose(c, err)
}

func (c *Conn) setClosing() {
	l := c.loop
	c.state = stateClosing
	c.removeOpen()
	l.timed[c] = l.now.UnixNano() + int64(l.cfg.CloseTimeout)
}

func (c *Conn) removeOpen() {
	l := c.loop
	if c.oidx < 0 {
		return
	}
	last := l.open[len(l.open)-1]
	l.open[c.oidx] = last
	last.oidx = c.oidx
	l.open[len(l.open)-1] = nil
	l.open = l.open[:len(l.open)-1]
	c.oidx = -1
	l.cnt.open.Add(-1)
}

func (c *Conn) flush() {
	for len(c.wbuf) > 0 {
		n, err := unix.Write(c.fd, c.wbuf)
		if n > 0 {
			if n == len(c.wbuf) {
				c.wbuf = c.wbuf[:0]
				if cap(c.wbuf) > 256<<10 {
					c.wbuf = nil
				}
				return
			}
			c.wbuf = c.wbuf[:copy(c.wbuf, c.wbuf[n:])]
			continue
		}
		switch {
		case errors.Is(err, unix.EAGAIN):
			return // EPOLLOUT (edge-triggered) resumes it
		case errors.Is(err, unix.EINTR):
			continue
		default:
			c.fail(fmt.Errorf("write: %w", err))
			return
		}
	}
}

// fail ends the connection because of err and counts it.
func (c *Conn) fail(err error) {
	l := c.loop
	switch c.state {
	case stateClosed:
		return
	case stateConnecting, stateHandshaking:
		l.pending--
		l.cnt.failed.Add(1)
		l.errs.add(err.Error())
		c.state = stateClosed
		c.release()
		return
	}
	c.finish(err)
}

// finish ends an open or closing connection: err nil is an orderly close.
func (c *Conn) finish(err error) {
	l := c.loop
	if c.state == stateClosed {
		return
	}
	wasOpen := c.state == stateOpen
	c.removeOpen()
	c.state = stateClosed
	switch {
	case err == nil:
		l.cnt.closed.Add(1)
	case errors.Is(err, errAborted):
	case errors.Is(err, errCloseTimeout):
		l.cnt.closeTimeouts.Add(1)
		l.errs.add(err.Error())
	default:
		if wasOpen || !errors.Is(err, io.EOF) {
			l.cnt.dropped.Add(1)
			l.errs.add(err.Error())
		} else {
			l.cnt.closed.Add(1) // server closed TCP right after its close frame
		}
	}
	c.release()
	l.h.OnClose(c, err)
}

func (c *Conn) release() {
	l := c.loop
	delete(l.timed, c)
	delete(l.conns, c.fd)
	_ = unix.Close(c.fd)
	c.fd = -1
	c.rbuf, c.wbuf, c.msg = nil, nil, nil
}
