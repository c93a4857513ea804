// Package handshake is the client side of the RFC 6455 opening handshake as
// pure functions over bytes: the request a client sends and the checks its
// 101 response must pass. Both the blocking dialer (package client) and the
// event-loop pool (package client/loop) use it, so there is one reading of
// the response.
package handshake

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/megaws/megaws/codec"
)

// MaxResponseHead bounds the server's response head (status line, header
// lines and the blank line).
const MaxResponseHead = 8 << 10

// KeyLen is the length of a Sec-WebSocket-Key: 16 bytes in base64 (§4.1).
const KeyLen = 24

// EncodeKey writes the Sec-WebSocket-Key for the 16 random bytes raw into key.
func EncodeKey(key *[KeyLen]byte, raw [16]byte) {
	base64.StdEncoding.Encode(key[:], raw[:])
}

// RequestParts returns the opening handshake request (RFC 6455 §4.1) in two
// parts, the bytes before the Sec-WebSocket-Key value and those after it, so
// that a client sending many handshakes builds them once: target is the
// request-target ("/path?query"), host the Host header value, extra
// complete header lines ("Name: value\r\n"...) or nil.
func RequestParts(target, host string, extra []byte) (head, tail []byte) {
	head = append(head, "GET "...)
	head = append(head, target...)
	head = append(head, " HTTP/1.1\r\nHost: "...)
	head = append(head, host...)
	head = append(head, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "...)
	tail = append(tail, "\r\nSec-WebSocket-Version: 13\r\n"...)
	tail = append(tail, extra...)
	tail = append(tail, "\r\n"...)
	return head, tail
}

// AppendRequest appends the whole request for key to dst (see RequestParts).
func AppendRequest(dst []byte, target, host string, key []byte, extra []byte) []byte {
	head, tail := RequestParts(target, host, extra)
	dst = append(dst, head...)
	dst = append(dst, key...)
	return append(dst, tail...)
}

// reserved are the request headers the handshake itself sets; a caller may
// not supply them.
var reserved = []string{"Upgrade", "Connection", "Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Extensions", "Sec-Websocket-Protocol"}

// AppendHeader appends h as header lines to dst, refusing the headers the
// handshake sets itself and any name or value that would break the request
// (a non-token name, a CR, LF or other control byte in a value). Host is
// skipped: the caller reads it with h.Get("Host").
func AppendHeader(dst []byte, h http.Header) ([]byte, error) {
	for name, values := range h {
		canon := http.CanonicalHeaderKey(name)
		for _, r := range reserved {
			if canon == r {
				return dst, fmt.Errorf("megaws: request header %q is set by the handshake", name)
			}
		}
		if canon == "Host" {
			continue
		}
		if name == "" || !isToken(name) {
			return dst, fmt.Errorf("megaws: invalid request header name %q", name)
		}
		for _, v := range values {
			for i := 0; i < len(v); i++ {
				if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
					return dst, fmt.Errorf("megaws: invalid byte %#02x in request header %q", c, name)
				}
			}
			dst = append(dst, name...)
			dst = append(dst, ": "...)
			dst = append(dst, v...)
			dst = append(dst, "\r\n"...)
		}
	}
	return dst, nil
}

// Response is the part of a response head the handshake checks. The byte
// slices alias the buffer given to ParseResponse.
type Response struct {
	Status     int
	StatusLine []byte
	Accept     []byte
	Upgrade    []byte
	Connection [][]byte // every Connection line
	// Protocol and Extensions are the Sec-WebSocket-Protocol and
	// Sec-WebSocket-Extensions lines; HasProtocol and HasExtensions report
	// that the header was present at all (even empty).
	Protocol, Extensions       []byte
	HasProtocol, HasExtensions bool
	protocols, extensions      int
}

// ErrHeadTooLarge is returned when no blank line ends the response head
// within MaxResponseHead bytes.
var ErrHeadTooLarge = errors.New("megaws: handshake response head too large")

// ErrMalformed is returned for a response head that is not HTTP/1.1.
var ErrMalformed = errors.New("megaws: malformed handshake response")

// ParseResponse parses the response head at the start of b. It returns n == 0
// and a nil error while the head is incomplete; on success n is the length of
// the head including the blank line, and bytes after it are WebSocket frames.
func ParseResponse(b []byte) (r Response, n int, err error) {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		if len(b) >= MaxResponseHead {
			return r, 0, ErrHeadTooLarge
		}
		return r, 0, nil
	}
	if end+4 > MaxResponseHead {
		return r, 0, ErrHeadTooLarge
	}
	head := b[:end+2]
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	r.StatusLine = line
	// "HTTP/1.1 101 Switching Protocols": version, space, three digits.
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return r, 0, ErrMalformed
	}
	st, err := strconv.Atoi(string(line[9:12]))
	if err != nil || (len(line) > 12 && line[12] != ' ') {
		return r, 0, ErrMalformed
	}
	r.Status = st
	for len(rest) > 0 {
		var l []byte
		l, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, ok := bytes.Cut(l, []byte(":"))
		if !ok {
			return r, 0, ErrMalformed
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Sec-WebSocket-Accept")):
			r.Accept = value
		case bytes.EqualFold(name, []byte("Upgrade")):
			r.Upgrade = value
		case bytes.EqualFold(name, []byte("Connection")):
			r.Connection = append(r.Connection, value)
		case bytes.EqualFold(name, []byte("Sec-WebSocket-Protocol")):
			r.Protocol, r.HasProtocol = value, true
			r.protocols++
		case bytes.EqualFold(name, []byte("Sec-WebSocket-Extensions")):
			r.Extensions, r.HasExtensions = value, true
			r.extensions++
		}
	}
	return r, end + 4, nil
}

// Error is a response that does not complete the handshake.
type Error struct {
	Status int    // the response's status code, 0 if none was read
	Reason string // what is wrong
}

func (e *Error) Error() string {
	if e.Status != 0 && e.Status != http.StatusSwitchingProtocols {
		return "megaws: handshake failed: " + e.Reason + " (status " + strconv.Itoa(e.Status) + ")"
	}
	return "megaws: handshake failed: " + e.Reason
}

// CheckUpgrade verifies the parts of r every client must check (RFC 6455
// §4.1, items 1-4 of the client's validation): status 101, "Upgrade:
// websocket", a Connection "upgrade" token and the Sec-WebSocket-Accept for
// key. Subprotocol and extension negotiation are the caller's.
func (r *Response) CheckUpgrade(key []byte) error {
	if r.Status != http.StatusSwitchingProtocols {
		return &Error{Status: r.Status, Reason: fmt.Sprintf("status line %q", truncate(r.StatusLine, 60))}
	}
	if !bytes.EqualFold(r.Upgrade, []byte("websocket")) {
		return &Error{Status: r.Status, Reason: fmt.Sprintf("Upgrade %q", truncate(r.Upgrade, 40))}
	}
	found := false
	for _, v := range r.Connection {
		if hasTokenFold(v, "upgrade") {
			found = true
		}
	}
	if !found {
		return &Error{Status: r.Status, Reason: "Connection header lacks the upgrade token"}
	}
	var want [28]byte
	codec.AppendAccept(want[:0], key)
	if !bytes.Equal(r.Accept, want[:]) {
		return &Error{Status: r.Status, Reason: fmt.Sprintf("Sec-WebSocket-Accept %q, want %q", truncate(r.Accept, 40), want[:])}
	}
	return nil
}

// CheckProtocol verifies the selected subprotocol against the offer (§4.1:
// the server may select only one the client offered) and returns it.
func (r *Response) CheckProtocol(offered []string) (string, error) {
	if !r.HasProtocol {
		return "", nil
	}
	if r.protocols > 1 {
		return "", &Error{Status: r.Status, Reason: "repeated Sec-WebSocket-Protocol"}
	}
	for _, p := range offered {
		if string(r.Protocol) == p {
			return p, nil
		}
	}
	return "", &Error{Status: r.Status, Reason: fmt.Sprintf("server selected subprotocol %q, which was not offered", truncate(r.Protocol, 40))}
}

// RepeatedExtensions reports more than one Sec-WebSocket-Extensions line.
func (r *Response) RepeatedExtensions() bool { return r.extensions > 1 }

func hasTokenFold(v []byte, tok string) bool {
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

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
			continue
		}
		switch c {
		case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
			continue
		}
		return false
	}
	return true
}
