package server

import (
	"errors"
	"sync"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/codec"
)

// handshake consumes the HTTP upgrade request, if it has arrived whole, and
// answers it. Bytes after the request stay in gnet's buffer for readFrames.
func (s *Server) handshake(c *Conn) {
	gc, l := c.gc, c.l
	avail := gc.InboundBuffered()
	b, _ := gc.Peek(min(avail, max(s.cfg.MaxHeaderBytes, codec.DefaultMaxHeaderBytes)))
	if s.cfg.MaxHeaderBytes > 0 && len(b) > s.cfg.MaxHeaderBytes {
		b = b[:s.cfg.MaxHeaderBytes]
	}
	req, n, err := codec.ParseRequest(b, s.cfg.MaxHeaderBytes, s.cfg.MaxHeaderLines)
	if err != nil {
		s.reject(c, err)
		return
	}
	if n == 0 {
		return
	}
	if !req.Upgrade {
		s.plainHTTP(c, &req)
		return
	}
	if err := req.Check(); err != nil {
		s.reject(c, err)
		return
	}
	if len(s.cfg.AllowedOrigins) > 0 && !contains(s.cfg.AllowedOrigins, string(req.Origin)) {
		s.reject(c, codec.ErrForbiddenOrigin)
		return
	}
	if s.stopping.Load() || s.open.Load() >= int64(s.cfg.MaxConns) {
		s.reject(c, codec.ErrServiceUnavailable)
		return
	}
	r := Request{raw: &req, remote: gc.RemoteAddr()}
	for _, p := range s.cfg.Subprotocols {
		if r.SetProtocol(p); r.protocol != "" {
			break
		}
	}
	if err := s.h.OnUpgrade(c, &r); err != nil {
		s.reject(c, err)
		return
	}
	c.path = string(req.Path())
	if r.protocol != "" {
		c.extState().protocol = r.protocol
	}
	l.out = codec.AppendUpgradeResponse(l.out, req.Key, r.protocol, "")
	_, _ = gc.Discard(n)
	c.state = stateOpen
	c.flags |= flagOpened
	c.lastRead = l.now
	s.open.Add(1)
	l.stats.handshakes++
	l.arm(c)
	s.h.OnOpen(c)
}

// reject answers a refused handshake with its HTTP status and closes.
func (s *Server) reject(c *Conn, err error) {
	var he *codec.HandshakeError
	if !errors.As(err, &he) {
		he = &codec.HandshakeError{Status: 403, Reason: "upgrade refused"}
	}
	c.l.stats.reject(he.Status)
	c.l.out = codec.AppendRejection(c.l.out, he)
	c.state = stateClosed
}

// plainHTTP answers a request that does not ask for a WebSocket.
func (s *Server) plainHTTP(c *Conn, req *codec.Request) {
	l := c.l
	c.state = stateClosed
	method := string(req.Method)
	if method != "GET" && method != "HEAD" {
		l.stats.reject(codec.ErrMethod.Status)
		l.out = codec.AppendRejection(l.out, codec.ErrMethod)
		return
	}
	status, ctype, body := 0, "", []byte(nil)
	if s.http != nil {
		r := Request{raw: req, remote: c.gc.RemoteAddr()}
		status, ctype, body = s.http.ServeHTTP(&r)
	}
	if status == 0 {
		if string(req.Path()) != "/healthz" {
			l.stats.reject(codec.ErrNotUpgrade.Status)
			l.out = codec.AppendRejection(l.out, codec.ErrNotUpgrade)
			return
		}
		status, ctype, body = 200, "text/plain; charset=utf-8", []byte("ok\n")
	}
	if method == "HEAD" {
		body = nil
	}
	l.stats.reject(status)
	l.out = codec.AppendResponseType(l.out, status, ctype, "", body)
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
		if err := codec.CheckClientHeader(h, c.fragOp, false); err != nil {
			l.fail(c, err)
			return
		}
		if h.OpCode.IsData() || h.OpCode == ws.OpContinuation {
			var have int64
			if c.asm != nil {
				have = int64(len(*c.asm))
			}
			if h.Length > maxMsg-have {
				l.fail(c, codec.ErrMessageTooBig)
				return
			}
		}
		total := hn + int(h.Length)
		if avail < total {
			return
		}
		buf, _ := gc.Peek(total)
		p := buf[hn:]
		codec.UnmaskInPlace(p, h.Mask, 0)
		c.lastRead = l.now
		c.flags &^= flagPinged
		s.frame(c, h, p)
		if c.state == stateGone {
			return
		}
		_, _ = gc.Discard(total)
	}
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
		if h.OpCode == ws.OpText && !utf8.Valid(p) {
			l.fail(c, codec.ErrInvalidUTF8)
			return
		}
		l.stats.msgsIn++
		l.stats.bytesIn += uint64(len(p))
		s.h.OnMessage(c, h.OpCode, p)
		return
	}
	if h.OpCode != ws.OpContinuation {
		c.fragOp = h.OpCode
		c.utf8.Reset()
		c.asm = getAsm()
	}
	if c.fragOp == ws.OpText && !c.utf8.Feed(p) {
		l.fail(c, codec.ErrInvalidUTF8) // fail fast, before the message completes
		return
	}
	*c.asm = append(*c.asm, p...)
	if !h.Fin {
		return
	}
	if c.fragOp == ws.OpText && !c.utf8.Complete() {
		l.fail(c, codec.ErrInvalidUTF8)
		return
	}
	op, msg := c.fragOp, c.asm
	c.fragOp, c.asm = 0, nil
	l.stats.msgsIn++
	l.stats.bytesIn += uint64(len(*msg))
	s.h.OnMessage(c, op, *msg)
	putAsm(msg)
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

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
