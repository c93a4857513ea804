package codec

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"strconv"
)

// Handshake limits used when ParseRequest is given zero.
const (
	DefaultMaxHeaderBytes = 8 << 10
	DefaultMaxHeaderLines = 64
)

// HandshakeError rejects an HTTP request with the status the RFCs ask for.
// Header holds extra response header lines ("Name: value\r\n"...), such as
// "Sec-WebSocket-Version: 13\r\n" for a 426 (RFC 6455 §4.4).
type HandshakeError struct {
	Status int
	Reason string
	Header string
}

func (e *HandshakeError) Error() string {
	return "megaws: handshake rejected: " + strconv.Itoa(e.Status) + " " + e.Reason
}

// Handshake rejections. The statuses follow RFC 6455 §4.2.1-§4.2.2 and RFC 9110.
var (
	ErrBadRequest          = &HandshakeError{Status: 400, Reason: "malformed HTTP request"}
	ErrTLSOnPlainPort      = &HandshakeError{Status: 400, Reason: "TLS handshake sent to a plain-text port"}
	ErrHeaderTooLarge      = &HandshakeError{Status: 431, Reason: "request header fields too large"}
	ErrTooManyHeaders      = &HandshakeError{Status: 431, Reason: "too many request header fields"}
	ErrURITooLong          = &HandshakeError{Status: 414, Reason: "request line too long"}
	ErrHTTPVersion         = &HandshakeError{Status: 505, Reason: "HTTP version not supported"}
	ErrHTTP10              = &HandshakeError{Status: 400, Reason: "WebSocket requires HTTP/1.1"}
	ErrMethod              = &HandshakeError{Status: 405, Reason: "WebSocket upgrade requires GET", Header: "Allow: GET\r\n"}
	ErrMissingHost         = &HandshakeError{Status: 400, Reason: "missing, repeated or malformed Host header"}
	ErrNotUpgrade          = &HandshakeError{Status: 426, Reason: "this endpoint speaks WebSocket", Header: "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"}
	ErrConnectionHeader    = &HandshakeError{Status: 400, Reason: "Connection header lacks the upgrade token"}
	ErrVersion             = &HandshakeError{Status: 426, Reason: "unsupported Sec-WebSocket-Version", Header: "Sec-WebSocket-Version: 13\r\n"}
	ErrKey                 = &HandshakeError{Status: 400, Reason: "missing or malformed Sec-WebSocket-Key"}
	ErrServiceUnavailable  = &HandshakeError{Status: 503, Reason: "too many connections", Header: "Retry-After: 1\r\n"}
	ErrForbiddenOrigin     = &HandshakeError{Status: 403, Reason: "origin not allowed"}
	errNeedsCRLF           = &HandshakeError{Status: 400, Reason: "bare LF in request head"}
	errRepeatedWebSocketKy = &HandshakeError{Status: 400, Reason: "repeated Sec-WebSocket-Key"}
)

// Request is a parsed HTTP/1.1 request head. Every byte slice aliases the buffer
// given to ParseRequest and is valid only until that buffer is consumed; copy
// what must outlive it.
type Request struct {
	Method []byte
	URI    []byte // request-target as sent, path and query
	Proto  []byte // "HTTP/1.1"

	Host       []byte
	Key        []byte // Sec-WebSocket-Key
	Version    []byte // Sec-WebSocket-Version
	Origin     []byte
	Protocol   []byte // first Sec-WebSocket-Protocol line; see Protocols for all
	Extensions []byte // first Sec-WebSocket-Extensions line; see ExtensionLines

	// Upgrade reports an "Upgrade: websocket" header, i.e. the client asks for
	// a WebSocket; ConnectionUpgrade a "Connection: ... upgrade" token.
	Upgrade           bool
	ConnectionUpgrade bool

	head     []byte // header lines, each ending in CRLF
	hosts    int
	keys     int
	protoCnt int
	extCnt   int
}

// Path returns the URI without its query.
func (r *Request) Path() []byte {
	if i := bytes.IndexByte(r.URI, '?'); i >= 0 {
		return r.URI[:i]
	}
	return r.URI
}

// Query returns the URI's query without the '?', or nil.
func (r *Request) Query() []byte {
	if i := bytes.IndexByte(r.URI, '?'); i >= 0 {
		return r.URI[i+1:]
	}
	return nil
}

// Header returns the value of the first header named name (case-insensitive), or nil.
func (r *Request) Header(name string) []byte {
	var v []byte
	r.VisitHeaders(func(k, val []byte) bool {
		if asciiEqualFold(k, name) {
			v = val
			return false
		}
		return true
	})
	return v
}

// VisitHeaders calls fn for each header line in order until fn returns false.
func (r *Request) VisitHeaders(fn func(name, value []byte) bool) {
	h := r.head
	for len(h) > 0 {
		i := bytes.Index(h, crlf)
		if i < 0 {
			return
		}
		line := h[:i]
		h = h[i+2:]
		c := bytes.IndexByte(line, ':')
		if c <= 0 {
			continue
		}
		if !fn(line[:c], trimOWS(line[c+1:])) {
			return
		}
	}
}

// Protocols calls fn for each subprotocol the client offers, in order, across all
// Sec-WebSocket-Protocol lines, until fn returns false.
func (r *Request) Protocols(fn func(p []byte) bool) {
	if r.protoCnt == 0 {
		return
	}
	r.VisitHeaders(func(k, v []byte) bool {
		if !asciiEqualFold(k, "sec-websocket-protocol") {
			return true
		}
		return visitTokens(v, fn)
	})
}

// ExtensionLines calls fn for each Sec-WebSocket-Extensions line until fn returns false.
func (r *Request) ExtensionLines(fn func(v []byte) bool) {
	if r.extCnt == 0 {
		return
	}
	r.VisitHeaders(func(k, v []byte) bool {
		if !asciiEqualFold(k, "sec-websocket-extensions") {
			return true
		}
		return fn(v)
	})
}

var crlf = []byte("\r\n")

// ParseRequest parses the HTTP request head at the start of b.
//
// It returns n == 0 and a nil error while b holds only part of a head that may
// still become valid: the caller waits for more bytes. On success n is the
// length of the head including the blank line, and any bytes after b[n] belong
// to the WebSocket frame stream (a client may pipeline frames after its
// handshake). Errors are *HandshakeError values. maxBytes and maxLines bound
// the head (zero selects DefaultMaxHeaderBytes and DefaultMaxHeaderLines).
//
// ParseRequest checks HTTP syntax only; Check applies the WebSocket rules.
func ParseRequest(b []byte, maxBytes, maxLines int) (r Request, n int, err error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxHeaderBytes
	}
	if maxLines <= 0 {
		maxLines = DefaultMaxHeaderLines
	}
	if len(b) == 0 {
		return r, 0, nil
	}
	// Fail fast on bytes that can never start a request line: a TLS ClientHello
	// (0x16) or binary garbage should not wait for the handshake timeout.
	if c := b[0]; c < 'A' || c > 'Z' {
		if c == 0x16 {
			return r, 0, ErrTLSOnPlainPort
		}
		return r, 0, ErrBadRequest
	}
	// A head must fit in maxBytes, so later bytes cannot change the answer;
	// ignoring them makes it independent of how much has arrived.
	if len(b) > maxBytes {
		b = b[:maxBytes]
	}
	full := len(b) == maxBytes
	// Lines are checked in order as soon as they are complete, with the same
	// rules whether or not the blank line has arrived, so garbage is refused
	// when it is seen (not at the handshake timeout) and the answer does not
	// depend on how the bytes were split.
	line, rest, ok := bytes.Cut(b, crlf)
	if !ok {
		return Request{}, 0, partialLine(line, true, 0, maxLines, full)
	}
	if err = parseRequestLine(&r, line); err != nil {
		return r, 0, err
	}
	head := rest
	for lines := 0; ; {
		if line, rest, ok = bytes.Cut(rest, crlf); !ok {
			return Request{}, 0, partialLine(line, false, lines, maxLines, full)
		}
		if len(line) == 0 {
			r.head = head[:len(head)-len(rest)-2]
			return r, len(b) - len(rest), nil
		}
		if lines++; lines > maxLines {
			return r, 0, ErrTooManyHeaders
		}
		if err = r.header(line); err != nil {
			return r, 0, err
		}
	}
}

// partialLine decides whether the line in progress of a head without its
// blank line may still become valid. It refuses only what the complete line
// would be refused for, with the same status and in the same order (a header
// line is counted before it is checked); full reports that the line cannot
// grow because the head reached maxBytes.
func partialLine(line []byte, requestLine bool, lines, maxLines int, full bool) error {
	if !requestLine && len(line) > 0 && string(line) != "\r" && lines+1 > maxLines {
		return ErrTooManyHeaders // it is a header line, whatever follows
	}
	for i, c := range line {
		switch {
		case c == '\n':
			return errNeedsCRLF
		case c == '\r' && i == len(line)-1:
			// The start of a CRLF.
		case (c < 0x20 && c != '\t') || c == 0x7f:
			return ErrBadRequest
		}
	}
	if requestLine {
		for _, c := range line {
			if c == ' ' {
				break
			}
			if c < 'A' || c > 'Z' {
				return ErrBadRequest
			}
		}
	} else {
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			return ErrBadRequest // obsolete line folding
		}
		for _, c := range line {
			if c == ':' {
				break
			}
			if !isTokenChar(c) && c != '\r' {
				return ErrBadRequest
			}
		}
	}
	if full {
		if requestLine {
			return ErrURITooLong
		}
		return ErrHeaderTooLarge
	}
	return nil
}

func parseRequestLine(r *Request, line []byte) error {
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return ErrBadRequest
	}
	rest := line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 {
		return ErrBadRequest
	}
	r.Method, r.URI, r.Proto = line[:sp1], rest[:sp2], rest[sp2+1:]
	for _, c := range r.Method {
		if c < 'A' || c > 'Z' {
			return ErrBadRequest
		}
	}
	for _, c := range r.URI {
		if c <= ' ' || c >= 0x7f {
			return ErrBadRequest
		}
	}
	p := r.Proto
	if len(p) != 8 || string(p[:5]) != "HTTP/" || p[6] != '.' || p[5] < '0' || p[5] > '9' || p[7] < '0' || p[7] > '9' {
		return ErrBadRequest
	}
	if p[5] != '1' {
		return ErrHTTPVersion
	}
	return nil
}

func (r *Request) header(line []byte) error {
	if len(line) == 0 || line[0] == ' ' || line[0] == '\t' {
		return ErrBadRequest // obsolete line folding (RFC 9112 §5.2)
	}
	c := bytes.IndexByte(line, ':')
	if c <= 0 {
		return ErrBadRequest
	}
	name, value := line[:c], trimOWS(line[c+1:])
	for _, ch := range name {
		if !isTokenChar(ch) {
			return ErrBadRequest
		}
	}
	for _, ch := range value {
		if (ch < 0x20 && ch != '\t') || ch == 0x7f {
			return ErrBadRequest
		}
	}
	switch len(name) {
	case 4:
		if asciiEqualFold(name, "host") {
			r.Host = value
			r.hosts++
		}
	case 6:
		if asciiEqualFold(name, "origin") {
			r.Origin = value
		}
	case 7:
		if asciiEqualFold(name, "upgrade") && hasToken(value, "websocket") {
			r.Upgrade = true
		}
	case 10:
		if asciiEqualFold(name, "connection") && hasToken(value, "upgrade") {
			r.ConnectionUpgrade = true
		}
	case 17:
		if asciiEqualFold(name, "sec-websocket-key") {
			r.Key = value
			r.keys++
		}
	case 21:
		if asciiEqualFold(name, "sec-websocket-version") {
			r.Version = value
		}
	case 22:
		if asciiEqualFold(name, "sec-websocket-protocol") {
			if r.protoCnt == 0 {
				r.Protocol = value
			}
			r.protoCnt++
		}
	case 24:
		if asciiEqualFold(name, "sec-websocket-extensions") {
			if r.extCnt == 0 {
				r.Extensions = value
			}
			r.extCnt++
		}
	}
	return nil
}

// Check applies RFC 6455 §4.2.1 to a request that asks for a WebSocket
// (r.Upgrade is true) and returns the rejection to send, or nil.
func (r *Request) Check() error {
	switch {
	case string(r.Method) != "GET":
		return ErrMethod
	case string(r.Proto) == "HTTP/1.0":
		return ErrHTTP10
	case r.hosts != 1 || !validHost(r.Host):
		return ErrMissingHost
	case !r.Upgrade:
		return ErrNotUpgrade
	case !r.ConnectionUpgrade:
		return ErrConnectionHeader
	case string(r.Version) != "13":
		return ErrVersion
	case r.keys > 1:
		return errRepeatedWebSocketKy
	case !validKey(r.Key):
		return ErrKey
	}
	return nil
}

// validHost reports whether h is a uri-host with an optional port (RFC 9110
// §7.2, RFC 3986 §3.2.2): a bracketed IP literal, or a registered name or IPv4
// address made of unreserved, sub-delims and percent-encoding characters.
func validHost(h []byte) bool {
	if len(h) == 0 {
		return false
	}
	port := h[:0]
	if h[0] == '[' {
		end := bytes.IndexByte(h, ']')
		if end < 2 {
			return false
		}
		for _, c := range h[1:end] {
			if !isHexDigit(c) && c != ':' && c != '.' {
				return false
			}
		}
		if rest := h[end+1:]; len(rest) > 0 {
			if rest[0] != ':' {
				return false
			}
			port = rest[1:]
		}
	} else {
		host := h
		if i := bytes.IndexByte(h, ':'); i >= 0 {
			host, port = h[:i], h[i+1:]
		}
		if len(host) == 0 {
			return false
		}
		for _, c := range host {
			if !isRegNameChar(c) {
				return false
			}
		}
	}
	for _, c := range port {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func isHexDigit(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// isRegNameChar reports whether c may appear in a reg-name (RFC 3986 §3.2.2):
// unreserved, sub-delims, or '%' of a percent-encoded octet.
func isRegNameChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '_', '~', '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', '%':
		return true
	}
	return false
}

// validKey reports whether k is the base64 encoding of 16 bytes (§4.1).
func validKey(k []byte) bool {
	if len(k) != 24 || k[22] != '=' || k[23] != '=' {
		return false
	}
	var dst [18]byte
	n, err := base64.StdEncoding.Decode(dst[:], k)
	return err == nil && n == 16
}

// acceptGUID is the GUID of RFC 6455 §1.3.
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// AppendAccept appends the Sec-WebSocket-Accept value for key to dst (§4.2.2).
func AppendAccept(dst, key []byte) []byte {
	h := sha1.New()
	h.Write(key)
	h.Write([]byte(acceptGUID))
	var sum [sha1.Size]byte
	var enc [28]byte
	base64.StdEncoding.Encode(enc[:], h.Sum(sum[:0]))
	return append(dst, enc[:]...)
}

// AppendUpgradeResponse appends the 101 Switching Protocols response for key to
// dst, with the chosen subprotocol and extension response when non-empty.
func AppendUpgradeResponse(dst, key []byte, protocol, extensions string) []byte {
	dst = append(dst, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	dst = AppendAccept(dst, key)
	dst = append(dst, "\r\n"...)
	if protocol != "" {
		dst = append(dst, "Sec-WebSocket-Protocol: "...)
		dst = append(dst, protocol...)
		dst = append(dst, "\r\n"...)
	}
	if extensions != "" {
		dst = append(dst, "Sec-WebSocket-Extensions: "...)
		dst = append(dst, extensions...)
		dst = append(dst, "\r\n"...)
	}
	return append(dst, "\r\n"...)
}

// AppendResponse appends a complete plain HTTP/1.1 response with a text body to
// dst. header holds extra header lines, each ending in CRLF. The response says
// "Connection: close": megaws answers one plain request per connection.
func AppendResponse(dst []byte, status int, header, body string) []byte {
	return AppendResponseType(dst, status, "text/plain; charset=utf-8", header, []byte(body))
}

// AppendResponseType is AppendResponse with a content type and a byte body.
func AppendResponseType(dst []byte, status int, contentType, header string, body []byte) []byte {
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	text := http.StatusText(status)
	if text == "" {
		text = "Status " + strconv.Itoa(status)
	}
	dst = append(dst, text...)
	dst = append(dst, "\r\nConnection: close\r\nContent-Type: "...)
	dst = append(dst, contentType...)
	dst = append(dst, "\r\nContent-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(body)), 10)
	dst = append(dst, "\r\n"...)
	dst = append(dst, header...)
	dst = append(dst, "\r\n"...)
	return append(dst, body...)
}

// AppendRejection appends the response for a handshake error to dst.
func AppendRejection(dst []byte, e *HandshakeError) []byte {
	return AppendResponse(dst, e.Status, e.Header, e.Reason+"\n")
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// visitTokens calls fn for each comma-separated, trimmed, non-empty element of v.
func visitTokens(v []byte, fn func([]byte) bool) bool {
	for len(v) > 0 {
		var tok []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			tok, v = v[:i], v[i+1:]
		} else {
			tok, v = v, nil
		}
		if tok = trimOWS(tok); len(tok) > 0 && !fn(tok) {
			return false
		}
	}
	return true
}

func hasToken(v []byte, token string) bool {
	found := false
	visitTokens(v, func(t []byte) bool {
		found = asciiEqualFold(t, token)
		return !found
	})
	return found
}

// asciiEqualFold reports whether b and s are equal, ignoring ASCII case.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c, d := b[i], s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// isTokenChar reports whether c may appear in an HTTP token (RFC 9110 §5.6.2).
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}
