package client

import (
	"compress/flate"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"time"
)

// Defaults of Options' fields, used when a field is zero.
const (
	DefaultHandshakeTimeout     = 30 * time.Second
	DefaultCloseTimeout         = 5 * time.Second
	DefaultMaxMessageSize       = 16 << 20
	DefaultReadBufferSize       = 4 << 10
	DefaultCompressionThreshold = 256
	DefaultCompressionLevel     = flate.BestSpeed
)

// Options configures Dial. The zero value (and a nil *Options) selects every
// documented default; Dial copies what it uses and never modifies the
// caller's Options.
type Options struct {
	// Header holds extra request header lines (Authorization, Cookie,
	// User-Agent ...). A "Host" entry overrides the Host header. The headers
	// the handshake sets itself (Upgrade, Connection, Sec-WebSocket-*) are
	// refused with an error.
	Header http.Header
	// Origin, when non-empty, is sent as the Origin header, as a browser
	// would; servers that check origins (megaws's AllowedOrigins) refuse
	// mismatches with 403.
	Origin string
	// Subprotocols are offered in Sec-WebSocket-Protocol, in order of
	// preference; Conn.Subprotocol reports the server's choice.
	Subprotocols []string

	// Compression offers permessage-deflate (RFC 7692) without context
	// takeover in either direction, so no compression state outlives a
	// message. A server that accepts must agree to server_no_context_takeover
	// (megaws always does); a response that does not is a handshake error.
	// Conn.Compressed reports whether it was negotiated. Default: off.
	Compression bool
	// CompressionThreshold is the smallest payload WriteMessage compresses
	// when compression was negotiated; smaller messages go out as they are.
	// Default: 256 bytes.
	CompressionThreshold int
	// CompressionLevel is the compress/flate level (1-9, or
	// flate.HuffmanOnly). Default: flate.BestSpeed.
	CompressionLevel int

	// TLSConfig configures wss:// connections. ServerName defaults to the
	// URL's host. Default: a zero tls.Config (system roots).
	TLSConfig *tls.Config
	// NetDialContext opens the TCP (or other stream) connection, for
	// proxies, Unix sockets or custom resolvers. Default: a net.Dialer.
	NetDialContext func(ctx context.Context, network, addr string) (net.Conn, error)

	// HandshakeTimeout bounds connect, TLS and the HTTP upgrade together,
	// on top of any deadline of Dial's ctx. Default: 30 s; negative: only
	// ctx bounds it.
	HandshakeTimeout time.Duration
	// CloseTimeout bounds Close's wait for the server's close frame (and the
	// write of this side's). Default: 5 s.
	CloseTimeout time.Duration
	// MaxMessageSize bounds a received message after reassembly of its
	// fragments and after decompression; a larger one fails the connection
	// with close 1009 (RFC 6455 §7.4.1) as soon as its size is known.
	// Default: 16 MiB.
	MaxMessageSize int
	// ReadBufferSize is the size of the connection's read buffer. Payloads
	// larger than it are read straight into the message. Default: 4 KiB.
	ReadBufferSize int

	// PingInterval, when positive, keeps the connection alive: a ping is
	// sent whenever nothing has been received for PingInterval, and if a
	// ReadMessage has been waiting for two intervals with nothing received
	// (not even a pong) the server is presumed gone: the TCP connection is
	// closed and ReadMessage returns a *CloseError wrapping
	// ErrKeepaliveTimeout. It runs on a runtime timer (time.AfterFunc):
	// no goroutine exists between pings, a short-lived one sends each. Only
	// a connection that someone reads is judged, since pongs are seen by
	// ReadMessage. Default: 0, off.
	PingInterval time.Duration

	// OnPing and OnPong, when set, are called for each ping and pong the
	// server sends, on the goroutine running ReadMessage, before it goes on
	// reading (a ping has already been answered). The payload is only valid
	// until the function returns. They must not call ReadMessage.
	OnPing, OnPong func(payload []byte)
}

// withDefaults returns a copy of o with every zero field set to its default.
func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.CloseTimeout <= 0 {
		c.CloseTimeout = DefaultCloseTimeout
	}
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.ReadBufferSize <= 0 {
		c.ReadBufferSize = DefaultReadBufferSize
	}
	if c.ReadBufferSize < 16 {
		c.ReadBufferSize = 16 // room for the largest frame header
	}
	if c.CompressionThreshold <= 0 {
		c.CompressionThreshold = DefaultCompressionThreshold
	}
	if c.CompressionLevel == 0 {
		c.CompressionLevel = DefaultCompressionLevel
	}
	return c
}
