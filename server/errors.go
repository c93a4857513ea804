package server

import (
	"errors"
	"strconv"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/codec"
)

// CloseError describes how a connection ended. OnClose receives one for every
// connection that was open; match it with errors.As, CloseStatus, or errors.Is
// against the sentinels below and codec's *ProtocolError values (Unwrap returns
// the cause).
type CloseError struct {
	// Code is the close status: the one the peer sent when Remote is true,
	// otherwise the one megaws sent (or ws.StatusAbnormalClosure, 1006, when the
	// TCP connection ended without a close frame).
	Code   ws.StatusCode
	Reason string
	// Remote reports that the peer started the close handshake.
	Remote bool
	// Err is the cause when the connection did not end with a clean close
	// handshake: a *codec.ProtocolError, one of this package's sentinels, or an
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

// Sentinel errors. The close code each one causes is in its comment.
var (
	// ErrClosed: the connection is closing or closed; the write was dropped.
	ErrClosed = errors.New("megaws: connection closed")
	// ErrWriteQueueFull: the peer does not read fast enough and the
	// connection's outbound queue passed Config.MaxWriteQueue (close 1008).
	ErrWriteQueueFull = errors.New("megaws: write queue full")
	// ErrServerQueueFull: the bytes waiting for all slow readers together
	// passed Config.MaxQueuedBytes and this connection had the most of them
	// (close 1008).
	ErrServerQueueFull = errors.New("megaws: server output budget exhausted; slowest reader dropped")
	// ErrReadQueueFull: the peer went on sending while reading from it was
	// paused (it does not read its answers) and its unhandled input passed
	// Config.MaxReadQueue (close 1008).
	ErrReadQueueFull = errors.New("megaws: peer sends without reading; read queue full")
	// ErrIdleTimeout: nothing arrived from the peer for Config.IdleTimeout,
	// keepalive pings included (close 1001).
	ErrIdleTimeout = errors.New("megaws: idle timeout")
	// ErrCloseTimeout: the peer did not answer our close frame within
	// Config.CloseTimeout; the TCP connection was closed.
	ErrCloseTimeout = errors.New("megaws: close handshake timeout")
	// ErrServerStopping: Stop is shutting the server down (close 1001).
	ErrServerStopping = errors.New("megaws: server stopping")
	// ErrServerStopped: Stop was called; nothing more is queued or sent.
	ErrServerStopped = errors.New("megaws: server stopped")
	// ErrSnapshotControl: snapshots are data messages (text or binary).
	ErrSnapshotControl = errors.New("megaws: a snapshot must be a text or binary message")
	// ErrControlTooLong: a control frame written by the application exceeds
	// 125 bytes (RFC 6455 §5.5). It is codec.ErrControlTooLong, the error a
	// peer's over-long control frame fails with, so errors.Is matches both.
	ErrControlTooLong = codec.ErrControlTooLong
)

// Reject returns an error for Handler.OnUpgrade that refuses the upgrade with
// the HTTP status code and reason (for example 401, 403, 404).
func Reject(status int, reason string) error {
	return &codec.HandshakeError{Status: status, Reason: reason}
}
