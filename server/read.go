package server

import (
	"errors"
	"log/slog"
	"sync"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/codec"
)

// handshake consumes the HTTP upgrade request, if it has arrived whole, and
// answers it. Bytes after the request stay in gnet's buffer for readFrames.
func (s *Server) handshake(c *Conn) {
	gc := c.gc
	avail := gc.InboundBuffered()
	b, _ := gc.Peek(min(avail, max(s.cfg.MaxHeaderBytes, codec.DefaultMaxHeaderBytes)))
	if n := s.handshakeFrom(c, b); n > 0 {
		_, _ = gc.Discard(n)
	}
}

// handshakeFrom answers the request at the start of b — read from the socket,
// or handed over by ServeHTTP — and returns how many bytes it used (0 while
// the request is incomplete).
func (s *Server) handshakeFrom(c *Conn, b []byte) int {
	gc, l := c.gc, c.l
	if s.cfg.MaxHeaderBytes > 0 && len(b) > s.cfg.MaxHeaderBytes {
		b = b[:s.cfg.MaxHeaderBytes]
	}
	// The request lives in the loop, reused by every handshake: Handler
	// callbacks see it only until they return, so it never escapes.
	var n int
	var err error
	req := &l.req.raw
	*req, n, err = codec.ParseRequest(b, s.cfg.MaxHeaderBytes, s.cfg.MaxHeaderLines)
	if err != nil {
		s.reject(c, err)
		return 0
	}
	if n == 0 {
		return 0
	}
	if !req.Upgrade {
		s.plainHTTP(c, req)
		return n
	}
	if err := req.Check(); err != nil {
		s.reject(c, err)
		return n
	}
	if len(s.cfg.AllowedOrigins) > 0 && !contains(s.cfg.AllowedOrigins, string(req.Origin)) {
		s.reject(c, codec.ErrForbiddenOrigin)
		return n
	}
	if s.stopping.Load() || s.open.Load() >= int64(s.cfg.MaxConns) {
		s.reject(c, codec.ErrServiceUnavailable)
		return n
	}
	r := &l.req
	r.remote, r.protocol = gc.RemoteAddr(), ""
	for _, p := range s.cfg.Subprotocols {
		if r.SetProtocol(p); r.protocol != "" {
			break
		}
	}
	if err := l.callUpgrade(c, r); err != nil {
		s.reject(c, err)
		return n
	}
	c.setPath(req.Path())
	if r.protocol != "" {
		c.extState().protocol = r.protocol
		c.opts |= optProtocol
	}
	ext := s.negotiateDeflate(c, req)
	l.out = codec.AppendUpgradeResponse(l.out, req.Key, r.protocol, ext)
	c.state = stateOpen
	c.flags |= flagOpened
	c.lastRead = l.now
	s.open.Add(1)
	l.stats.handshakes.Add(1)
	l.arm(c)
	l.callOpen(c)
	return n
}

// reject answers a refused handshake with its HTTP status and closes.
func (s *Server) reject(c *Conn, err error) {
	var he *codec.HandshakeError
	switch {
	case errors.As(err, &he):
	case errors.Is(err, ErrHandlerPanic):
		he = &codec.HandshakeError{Status: 500, Reason: "internal server error"}
	default:
		he = &codec.HandshakeError{Status: 403, Reason: "upgrade refused"}
	}
	c.l.stats.answered(he.Status)
	c.l.out = codec.AppendRejection(c.l.out, he)
	c.state = stateClosed
	c.l.logConn(slog.LevelDebug, "megaws: upgrade refused", c, "status", he.Status, "reason", he.Reason)
}

// plainHTTP answers a request that does not ask for a WebSocket.
func (s *Server) plainHTTP(c *Conn, req *codec.Request) {
	l := c.l
	c.state = stateClosed
	method := string(req.Method)
	if method != "GET" && method != "HEAD" {
		l.stats.answered(codec.ErrMethod.Status)
		l.out = codec.AppendRejection(l.out, codec.ErrMethod)
		return
	}
	status, ctype, header, body := 0, "", "", []byte(nil)
	if s.http != nil {
		r := &l.req
		r.remote, r.protocol = c.gc.RemoteAddr(), ""
		var ok bool
		if status, ctype, header, body, ok = l.callServeHTTP(r); !ok {
			status, ctype, header, body = 500, "text/plain; charset=utf-8", "", []byte("internal server error\n")
		}
	}
	if status == 0 {
		if string(req.Path()) != "/healthz" {
			l.stats.answered(codec.ErrNotUpgrade.Status)
			l.out = codec.AppendRejection(l.out, codec.ErrNotUpgrade)
			return
		}
		status, ctype, body = 200, "text/plain; charset=utf-8", []byte("ok\n")
	}
	if method == "HEAD" {
		body = nil
	}
	l.stats.answered(status)
	l.out = codec.AppendResponseType(l.out, status, ctype, header, body)
}

// readFrames handles every complete frame in gnet's inbound buffer.
func (s *Server) readFrames(c *Conn) {
	gc, l := c.gc, c.l
	maxMsg := int64(s.cfg.MaxMessageSize)
	for c.state == stateOpen || c.state == stateClosing {
		avail := gc.InboundBuffered()
		if avail < 2 {
			return
		}
		hb, _ := gc.Peek(min(avail, codec.MaxHeaderSize))
		h, hn, err := codec.DecodeHeader(hb)
		if err != nil {
			l.fail(c, err)
			return
		}
		if hn == 0 {
			return
		}
		if err := codec.CheckClientHeader(h, c.fragOp, c.opts&optDeflate != 0); err != nil {
			l.fail(c, err)
			return
		}
		if h.OpCode.IsData() || h.OpCode == ws.OpContinuation {
			var have int64
			if c.ext != nil && c.ext.asm != nil {
				have = int64(len(*c.ext.asm))
			}
			if h.Length > maxMsg-have {
				l.fail(c, codec.ErrMessageTooBig)
				return
			}
		}
		total := hn + int(h.Length)
		if avail < total {
			s.validatePartial(c, h, hn, avail)
			return
		}
		buf, _ := gc.Peek(total)
		p := buf[hn:]
		codec.UnmaskInPlace(p, h.Mask, 0)
		if c.state == stateOpen { // when closing, lastRead is the close deadline
			c.lastRead = l.now
		}
		c.flags &^= flagPinged
		s.frame(c, h, p)
		if c.ext != nil {
			c.ext.partial = 0
		}
		if c.state == stateGone {
			return
		}
		_, _ = gc.Discard(total)
	}
}

// partialLimit bounds the bytes of an incomplete frame that are validated as
// they arrive: gnet can only show the frame from its start, so each check
// copies up to this much.
const partialLimit = 64 << 10

// validatePartial checks the UTF-8 of a text frame whose payload has only
// partly arrived, so that invalid text fails the connection at once (RFC 6455
// §8.1, Autobahn 6.4.3-6.4.4) rather than when the frame completes. It works on
// a copy: the frame is unmasked in place only once it is whole.
func (s *Server) validatePartial(c *Conn, h ws.Header, hn, avail int) {
	if h.Rsv != 0 || avail > partialLimit || !isText(c, h) {
		return
	}
	have := avail - hn
	done := c.validated()
	if have <= done {
		return
	}
	if done == 0 && h.OpCode == ws.OpText {
		c.utf8.Reset()
	}
	b, _ := c.gc.Peek(avail)
	var scratch [512]byte
	for off := done; off < have; {
		n := copy(scratch[:], b[hn+off:])
		codec.UnmaskInPlace(scratch[:n], h.Mask, off)
		if !c.utf8.Feed(scratch[:n]) {
			c.l.fail(c, codec.ErrInvalidUTF8)
			return
		}
		off += n
	}
	c.extState().partial = uint32(have)
}

// isText reports whether h carries (part of) an uncompressed text message.
func isText(c *Conn, h ws.Header) bool {
	if h.OpCode == ws.OpText {
		return true
	}
	return h.OpCode == ws.OpContinuation && c.fragOp == ws.OpText && c.flags&flagCompressed == 0
}

// frame dispatches one complete, unmasked frame.
func (s *Server) frame(c *Conn, h ws.Header, p []byte) {
	l := c.l
	switch h.OpCode {
	case ws.OpPing:
		if c.state == stateOpen {
			l.writeFrame(c, ws.OpPong, p)
		}
	case ws.OpPong:
		l.stats.pongsIn++
		// Liveness was recorded by the caller.
	case ws.OpClose:
		code, reason, err := codec.ParseClose(p)
		if err != nil {
			l.fail(c, err)
			return
		}
		if c.state == stateOpen {
			// Echo the peer's status code (RFC 6455 §5.5.1, §7.1.5).
			l.out = codec.AppendClose(l.out, code, "")
			c.extState().closeErr = &CloseError{Code: code, Reason: string(reason), Remote: true}
		} else {
			l.stats.closesAnswered++ // the peer answered our close frame
		}
		c.state = stateClosed
	default:
		if c.state == stateOpen {
			s.data(c, h, p)
		}
	}
}

// data handles a text, binary or continuation frame.
func (s *Server) data(c *Conn, h ws.Header, p []byte) {
	l := c.l
	if h.Fin && h.OpCode != ws.OpContinuation {
		// A whole message in one frame: handed over straight from gnet's buffer.
		if h.Rsv != 0 {
			var err error
			if p, err = l.inflateFrom(c, p); err != nil {
				l.fail(c, err)
				return
			}
		}
		if h.OpCode == ws.OpText && !validText(c, p) {
			l.fail(c, codec.ErrInvalidUTF8)
			return
		}
		l.stats.msgsIn++
		l.stats.bytesIn += uint64(len(p))
		if l.admit(c, len(p)) {
			l.callMessage(c, h.OpCode, p)
		}
		return
	}
	e := c.extState()
	if h.OpCode != ws.OpContinuation {
		c.fragOp = h.OpCode
		if e.partial == 0 {
			c.utf8.Reset()
		}
		e.asm = getAsm()
		c.flags &^= flagCompressed
		if h.Rsv != 0 {
			c.flags |= flagCompressed
		}
	}
	compressed := c.flags&flagCompressed != 0
	// Uncompressed text is validated as it arrives, so invalid UTF-8 fails
	// the connection before the message completes; compressed text can only
	// be checked once inflated.
	if c.fragOp == ws.OpText && !compressed && !c.utf8.Feed(p[e.partial:]) {
		l.fail(c, codec.ErrInvalidUTF8) // fail fast, before the message completes
		return
	}
	*e.asm = append(*e.asm, p...)
	if !h.Fin {
		return
	}
	op, msg := c.fragOp, e.asm
	c.fragOp, e.asm = 0, nil
	defer putAsm(msg)
	payload := *msg
	if compressed {
		var err error
		if payload, err = l.inflateFrom(c, payload); err != nil {
			l.fail(c, err)
			return
		}
		if op == ws.OpText && !utf8.Valid(payload) {
			l.fail(c, codec.ErrInvalidUTF8)
			return
		}
	} else if op == ws.OpText && !c.utf8.Complete() {
		l.fail(c, codec.ErrInvalidUTF8)
		return
	}
	l.stats.msgsIn++
	l.stats.bytesIn += uint64(len(payload))
	if l.admit(c, len(payload)) {
		l.callMessage(c, op, payload)
	}
}

// asmPool recycles reassembly buffers of fragmented messages.
var asmPool sync.Pool

func getAsm() *[]byte {
	if v, ok := asmPool.Get().(*[]byte); ok {
		*v = (*v)[:0]
		return v
	}
	b := make([]byte, 0, 4096)
	return &b
}

func putAsm(b *[]byte) {
	if cap(*b) <= 1<<20 {
		asmPool.Put(b)
	}
}

// validText validates a single-frame text message, continuing from the bytes
// validatePartial already checked.
func validText(c *Conn, p []byte) bool {
	done := c.validated()
	if done == 0 {
		return utf8.Valid(p)
	}
	return c.utf8.Feed(p[done:]) && c.utf8.Complete()
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
