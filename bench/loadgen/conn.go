package loadgen

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"

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
	errHandshakeTimeout = errors.New("handshake timeout")
	errCloseTimeout     = errors.New("close handshake timeout")
	errAborted          = errors.New("aborted by the load generator")
	errEOF              = errors.New("connection closed by server (EOF)")
)

// maxResponseHead bounds the server's handshake response.
const maxResponseHead = 8 << 10

// Conn is one client connection. Its methods must be called on its loop's
// goroutine. The exported fields belong to the scenario.
type Conn struct {
	// ID numbers the connections of a loop in dial order.
	ID int
	// Seq, Next and Stamps are scratch for scenarios: messages sent,
	// messages expected next, send times of messages in flight.
	Seq, Next uint64
	Stamps    []int64
	// Sample marks a connection chosen for a liveness sample.
	Sample bool

	loop    *Loop
	fd      int
	state   state
	key     [24]byte
	started int64 // dial start, ns
	oidx    int   // index in loop.open, -1 when not open
	dirty   bool

	rbuf   []byte // unparsed bytes carried between reads
	wbuf   []byte // bytes not yet written
	msg    []byte // fragments of the data message in progress
	fragOp ws.OpCode
	// MsgOp is the opcode (text or binary) of the message being handed to
	// Handler.OnMessage.
	MsgOp ws.OpCode
}

// Loop returns the loop that owns c.
func (c *Conn) Loop() *Loop { return c.loop }

// IsOpen reports whether the handshake is done and no close has started.
func (c *Conn) IsOpen() bool { return c.state == stateOpen }

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
	c := &Conn{ID: int(cnt.dialed.Load()) - 1, loop: l, fd: fd, oidx: -1, started: time.Now().UnixNano()}
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
			c.onReadable()
		}
		return
	case stateClosed:
		return
	}
	if ev&unix.EPOLLOUT != 0 && len(c.wbuf) > 0 {
		c.flush()
	}
	if c.state != stateClosed && ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		c.onReadable()
	}
}

func (c *Conn) connected() {
	c.state = stateHandshaking
	var raw [16]byte
	v1, v2 := c.loop.rng.Uint64(), c.loop.rng.Uint64()
	for i := 0; i < 8; i++ {
		raw[i], raw[8+i] = byte(v1>>(8*i)), byte(v2>>(8*i))
	}
	base64.StdEncoding.Encode(c.key[:], raw[:])
	b := c.wbuf[:0]
	b = append(b, "GET "...)
	b = append(b, c.loop.cfg.Path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, c.loop.host...)
	b = append(b, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "...)
	b = append(b, c.key[:]...)
	b = append(b, "\r\nSec-WebSocket-Version: 13\r\n\r\n"...)
	c.wbuf = b
	c.flush()
}

func (c *Conn) onReadable() {
	l := c.loop
	for c.state != stateClosed {
		n, err := unix.Read(c.fd, l.readBuf)
		if n > 0 {
			c.feed(l.readBuf[:n])
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
			c.fail(errEOF)
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
		total := n + int(h.Length)
		if len(b)-used < total {
			if h.Length > 0 && cap(c.rbuf) < total {
				// Reserve room for the whole frame once, not once per read.
				nb := make([]byte, 0, total+4096)
				c.rbuf = append(nb, c.rbuf...)
			}
			return used
		}
		if err := codec.CheckServerHeader(h, c.fragOp, false); err != nil {
			c.protocolError(err)
			return used
		}
		payload := b[used+n : used+total]
		used += total
		c.frame(h, payload)
	}
	return used
}

func (c *Conn) parseResponse(b []byte) int {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		if len(b) > maxResponseHead {
			c.fail(errors.New("handshake: response head too large"))
		}
		return 0
	}
	head := b[:end+2]
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 101")) {
		c.fail(fmt.Errorf("handshake: status %q", truncate(line, 60)))
		return 0
	}
	var accept, upgrade, connection []byte
	for len(rest) > 0 {
		var l []byte
		l, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, ok := bytes.Cut(l, []byte(":"))
		if !ok {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Sec-WebSocket-Accept")):
			accept = value
		case bytes.EqualFold(name, []byte("Upgrade")):
			upgrade = value
		case bytes.EqualFold(name, []byte("Connection")):
			connection = value
		}
	}
	var want [28]byte
	codec.AppendAccept(want[:0], c.key[:])
	switch {
	case !bytes.Equal(accept, want[:]):
		c.fail(fmt.Errorf("handshake: Sec-WebSocket-Accept %q, want %q", truncate(accept, 40), want[:]))
		return 0
	case !bytes.EqualFold(upgrade, []byte("websocket")):
		c.fail(fmt.Errorf("handshake: Upgrade %q", truncate(upgrade, 40)))
		return 0
	case !containsTokenFold(connection, "upgrade"):
		c.fail(fmt.Errorf("handshake: Connection %q", truncate(connection, 40)))
		return 0
	}
	l := c.loop
	c.state = stateOpen
	delete(l.timed, c)
	l.pending--
	l.cnt.established.Add(1)
	l.cnt.open.Add(1)
	_ = l.HS.RecordValue((time.Now().UnixNano() - c.started) / 1e3)
	c.oidx = len(l.open)
	l.open = append(l.open, c)
	if cap(c.wbuf) > 0 && len(c.wbuf) == 0 {
		c.wbuf = nil // an idle connection keeps no buffers
	}
	l.h.OnOpen(c)
	return end + 4
}

func containsTokenFold(v []byte, tok string) bool {
	for _, t := range bytes.Split(v, []byte(",")) {
		if bytes.EqualFold(bytes.TrimSpace(t), []byte(tok)) {
			return true
		}
	}
	return false
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
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
		l.h.OnMessage(c, true, payload)
		return
	case ws.OpClose:
		code, _, err := codec.ParseClose(payload)
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
		c.finish(fmt.Errorf("closed by server: status %d", code))
		return
	}
	if c.state != stateOpen {
		return // data after our close frame is allowed; ignore it
	}
	if !h.Fin {
		if h.OpCode != ws.OpContinuation {
			c.fragOp = h.OpCode
		}
		c.msg = append(c.msg, payload...)
		return
	}
	c.MsgOp = h.OpCode
	if h.OpCode == ws.OpContinuation {
		c.msg = append(c.msg, payload...)
		payload = c.msg
		c.MsgOp, c.fragOp = c.fragOp, 0
	}
	l.cnt.recv.Add(1)
	l.cnt.bytesRecv.Add(int64(len(payload)))
	l.h.OnMessage(c, false, payload)
	if len(c.msg) > 0 {
		c.msg = c.msg[:0]
		if cap(c.msg) > 1<<20 {
			c.msg = nil
		}
	}
}

func (c *Conn) protocolError(err error) {
	c.loop.cnt.protocolErrors.Add(1)
	c.fail(fmt.Errorf("protocol error: %w", err))
}

// Send queues a masked data message; it is written when the loop iteration
// ends. A binary message unless text is set.
func (c *Conn) Send(payload []byte) {
	c.SendOp(ws.OpBinary, payload)
}

// SendOp queues one masked data message with opcode op (ws.OpText or
// ws.OpBinary).
func (c *Conn) SendOp(op ws.OpCode, payload []byte) {
	if c.state != stateOpen {
		return
	}
	c.loop.cnt.sent.Add(1)
	c.loop.cnt.bytesSent.Add(int64(len(payload)))
	c.send(op, payload)
}

// Ping queues a masked ping carrying payload (≤ 125 bytes).
func (c *Conn) Ping(payload []byte) {
	if c.state == stateOpen {
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

// Close starts the closing handshake with status 1000 (RFC 6455 §7.1.2).
func (c *Conn) Close() {
	if c.state != stateOpen {
		return
	}
	code := uint16(ws.StatusNormalClosure)
	c.send(ws.OpClose, []byte{byte(code >> 8), byte(code)})
	c.setClosing()
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
		if wasOpen || !errors.Is(err, errEOF) {
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
	c.rbuf, c.wbuf, c.msg, c.Stamps = nil, nil, nil, nil
}
