package server

import (
	"net"
	"strings"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/codec"
)

// Handler receives a server's events. Every method is called on the event loop
// that owns the connection, one at a time per loop, so a handler may keep
// per-connection state in Conn.Context without locks. No method may block: a
// blocked callback stalls every connection of its loop. Work that blocks belongs
// to the handler's own goroutines, which reply with Conn.Send.
//
// Embed BaseHandler to implement only the methods you need.
type Handler interface {
	// OnUpgrade is called for each valid WebSocket upgrade request before the
	// 101 response. Returning a non-nil error refuses it: an error from Reject
	// sends its HTTP status; any other error sends 403. It may call
	// r.SetProtocol and c.SetContext. r and everything it returns are valid
	// only until OnUpgrade returns.
	OnUpgrade(c *Conn, r *Request) error
	// OnOpen is called once the handshake succeeded; c may be written to.
	OnOpen(c *Conn)
	// OnMessage is called for each complete text or binary message, after
	// fragments are reassembled, UTF-8 is validated for text and the message
	// is decompressed. The payload is borrowed from the event loop's buffers:
	// it is valid only until OnMessage returns and must not be retained or
	// handed to another goroutine; use Clone to keep it.
	OnMessage(c *Conn, op ws.OpCode, payload []byte)
	// OnClose is called exactly once for each connection that reached
	// OnOpen, when it ends for any reason; err is always a *CloseError
	// describing how (see CloseStatus). The connection can no longer be written.
	OnClose(c *Conn, err error)
}

// BaseHandler implements Handler with methods that accept every upgrade and
// ignore every event. Embed it and override what you need.
type BaseHandler struct{}

func (BaseHandler) OnUpgrade(*Conn, *Request) error    { return nil }
func (BaseHandler) OnOpen(*Conn)                       {}
func (BaseHandler) OnMessage(*Conn, ws.OpCode, []byte) {}
func (BaseHandler) OnClose(*Conn, error)               {}

// HTTPResponder is implemented by handlers that answer plain (non-upgrade) HTTP
// GET requests on the WebSocket port, e.g. a page that opens the socket.
// ServeHTTP returns the status, the content type and the body; a status of 0
// falls back to megaws's own answer (200 on /healthz, otherwise 426 Upgrade
// Required). It runs on the event loop and must not block; r and the returned
// body are used before the next event on the loop, so the body may be a shared
// static slice.
type HTTPResponder interface {
	ServeHTTP(r *Request) (status int, contentType string, body []byte)
}

// HTTPHeaderer is implemented by an HTTPResponder whose answers carry header
// lines besides Connection, Content-Type and Content-Length: security headers
// such as Content-Security-Policy, caching. HTTPHeader is called on the event
// loop right after ServeHTTP returned a non-zero status, with the same r and
// that status, and must not block. It returns complete header lines, each
// ending in "\r\n" ("X-Content-Type-Options: nosniff\r\n"), written as they
// are; "" adds none. The string may be a shared constant.
type HTTPHeaderer interface {
	HTTPHeader(r *Request, status int) string
}

// Request is the client's opening handshake, as seen by Handler.OnUpgrade. It is
// valid only during the callback that receives it.
type Request struct {
	raw      codec.Request
	remote   net.Addr
	protocol string
}

// Method returns the request method.
func (r *Request) Method() string { return string(r.raw.Method) }

// URI returns the request target, path and query, as sent.
func (r *Request) URI() string { return string(r.raw.URI) }

// Path returns the request path without the query.
func (r *Request) Path() string { return string(r.raw.Path()) }

// RawQuery returns the query string without the '?'.
func (r *Request) RawQuery() string { return string(r.raw.Query()) }

// Header returns the first value of the named header (case-insensitive).
func (r *Request) Header(name string) string {
	return string(r.raw.Header(toLowerASCII(name)))
}

// VisitHeaders calls fn for every header line; the slices are borrowed.
func (r *Request) VisitHeaders(fn func(name, value []byte) bool) { r.raw.VisitHeaders(fn) }

// RemoteAddr returns the client's address.
func (r *Request) RemoteAddr() net.Addr { return r.remote }

// Protocols returns the subprotocols the client offers, in its order.
func (r *Request) Protocols() []string {
	var ps []string
	r.raw.Protocols(func(p []byte) bool {
		ps = append(ps, string(p))
		return true
	})
	return ps
}

// Protocol returns the subprotocol selected so far ("" for none).
func (r *Request) Protocol() string { return r.protocol }

// SetProtocol selects the subprotocol sent in Sec-WebSocket-Protocol; it must
// be one the client offered (RFC 6455 §4.2.2), otherwise it is ignored.
func (r *Request) SetProtocol(p string) {
	ok := false
	r.raw.Protocols(func(q []byte) bool {
		ok = string(q) == p
		return !ok
	})
	if ok {
		r.protocol = p
	}
}

// validHeaderLines reports whether h is a sequence of "Name: value\r\n"
// lines with token names and no control characters in the values, so an
// application's header can neither split the response nor add a body.
func validHeaderLines(h string) bool {
	for h != "" {
		end := strings.Index(h, "\r\n")
		if end < 0 {
			return false
		}
		line := h[:end]
		h = h[end+2:]
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			return false
		}
		for i := 0; i < colon; i++ {
			if !isTokenChar(line[i]) {
				return false
			}
		}
		for i := colon + 1; i < len(line); i++ {
			if c := line[i]; c < 0x20 && c != '\t' || c == 0x7f {
				return false
			}
		}
	}
	return true
}

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func toLowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
