//go:build linux

package loop

import (
	"net/http"
	"net/netip"
	"time"
)

// DefaultTick is the longest a loop sleeps in epoll_wait unless Config.Tick
// says otherwise.
const DefaultTick = 2 * time.Millisecond

// Config configures a Pool. Every field but Addr has a documented default
// that applies when it is zero; New copies the Config.
type Config struct {
	// Addr is the server, an IPv4 "host:port".
	Addr string
	// Path is the request target of the handshake ("/path?query"). Default "/".
	Path string
	// Header holds extra request header lines (Origin, Authorization,
	// Cookie ...), sent with every handshake. The headers the handshake sets
	// itself (Upgrade, Connection, Sec-WebSocket-*) are refused by New.
	Header http.Header
	// SourceIPs are the local addresses connections are bound to, used
	// round-robin. Default: none (the kernel picks the source).
	SourceIPs []netip.Addr
	// SourceOffset rotates the start of SourceIPs, so several processes
	// spread over the addresses differently. Loop i of a Pool starts at
	// SourceOffset + 7i.
	SourceOffset int
	// Loops is the number of event loops. Default 1.
	Loops int
	// MaxPending caps the dials in progress (connecting or handshaking) per
	// loop, so a ramp does not overflow the server's accept backlog. Default 256.
	MaxPending int
	// HandshakeTimeout bounds connect plus handshake. Default 10 s.
	HandshakeTimeout time.Duration
	// CloseTimeout bounds the wait for the server's close frame after ours.
	// Default 5 s.
	CloseTimeout time.Duration
	// MaxMessageSize bounds a received message after reassembly; a larger
	// one fails the connection with close 1009. Default 16 MiB.
	MaxMessageSize int
	// Tick is the longest a loop sleeps waiting for events, and so the
	// granularity of OnTick. Default 2 ms; processes that only hold idle
	// connections use more, so many of them do not wake the CPUs for nothing.
	Tick time.Duration
}

func (c Config) withDefaults() Config {
	if c.Path == "" {
		c.Path = "/"
	}
	if c.Loops <= 0 {
		c.Loops = 1
	}
	if c.MaxPending <= 0 {
		c.MaxPending = 256
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.CloseTimeout <= 0 {
		c.CloseTimeout = 5 * time.Second
	}
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = 16 << 20
	}
	if c.Tick <= 0 {
		c.Tick = DefaultTick
	}
	return c
}
