package client

import (
	"errors"
	"strconv"

	"github.com/gobwas/ws"

	"github.com/megaws/megaws/client/internal/handshake"
	"github.com/megaws/megaws/codec"
)

// CloseError describes how a connection ended. ReadMessage returns one once
// the connection is over, and every later call returns the same one; match
// it with errors.As or CloseStatus, or errors.Is against this package's
// sentinels and codec's *ProtocolError values (Unwrap returns the cause). It
// has the shape of the server package's CloseError.
type CloseError struct {
	// Code is the close status: the one the server sent when Remote is
	// true, otherwise the one this side sent (ws.StatusAbnormalClosure, 1006,
	// when the TCP connection ended without a close frame).
	Code   ws.StatusCode
	Reason string
	// Remote reports that the server started the close handshake.
	Remote bool
	// Err is the cause when the connection did not end with a clean close
	// handshake: a *codec.ProtocolError (the server broke RFC 6455; Code is
	// the status this side sent), ErrCloseTimeout, ErrKeepaliveTimeout, or an
	// I/O error such as io.EOF. It is nil after a clean close.
	Err error
}

func (e *CloseError) Error() string {
	s := "megaws: connection closed: " + strconv.Itoa(int(e.Code))
	if e.Reason != "" {
		s += " " + e.Reason
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *CloseError) Unwrap() error { return e.Err }

// CloseStatus returns the close code carried by err (a *CloseError or a
// *codec.ProtocolError anywhere in its chain), or 0 when it carries none.
func CloseStatus(err error) ws.StatusCode {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	var pe *codec.ProtocolError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return 0
}

// HandshakeError is returned by Dial when the server answered but did not
// complete the opening handshake: a status other than 101 (a redirect
// included: Dial does not follow redirects, the Location is in the returned
// *http.Response), a wrong Sec-WebSocket-Accept, a subprotocol or extension
// that was not offered. StatusCode is the response's status.
type HandshakeError struct {
	StatusCode int
	Reason     string
}

func (e *HandshakeError) Error() string {
	return (&handshake.Error{Status: e.StatusCode, Reason: e.Reason}).Error()
}

// Sentinel errors.
var (
	// ErrClosed: Close was called, or the close handshake is under way; the
	// write was not sent.
	ErrClosed = errors.New("megaws: connection closed")
	// ErrCloseTimeout: the server did not answer the close frame within
	// Options.CloseTimeout; the TCP connection was closed.
	ErrCloseTimeout = errors.New("megaws: close handshake timeout")
	// ErrKeepaliveTimeout: with Options.PingInterval set, nothing (not even
	// a pong) arrived for two intervals while a read was waiting; the TCP
	// connection was closed.
	ErrKeepaliveTimeout = errors.New("megaws: keepalive timeout: the server stopped answering")
	// ErrControlTooLong: a ping payload or close reason longer than a
	// control frame carries (125 bytes, RFC 6455 §5.5).
	ErrControlTooLong = errors.New("megaws: control frame payload longer than 125 bytes")
	// ErrOpCode: WriteMessage takes ws.OpText or ws.OpBinary.
	ErrOpCode = errors.New("megaws: WriteMessage takes ws.OpText or ws.OpBinary")
	// ErrInvalidCloseCode: Close was given a code that may not be sent
	// (RFC 6455 §7.4: 1004-1006, 1015 and unassigned codes below 3000).
	ErrInvalidCloseCode = errors.New("megaws: invalid close code")
	// ErrInvalidUTF8: a close reason to send is not UTF-8 (RFC 6455 §5.5.1).
	ErrInvalidUTF8 = errors.New("megaws: close reason is not valid UTF-8")
)
