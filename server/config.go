package server

import (
	"io"
	"log/slog"
	"runtime"
	"time"
)

// Config configures a Server. The zero value is ready to use: every field
// documents its default, which applies when the field is zero. New copies the
// Config; the caller's value is never modified.
type Config struct {
	// Loops is the number of gnet event loops. Default: runtime.NumCPU().
	Loops int
	// ReusePort sets SO_REUSEPORT on the listening socket(s) so that several
	// processes (megaws serve --workers) share one port. With ReusePort every
	// event loop has its own listener, so the port must not be 0.
	ReusePort bool

	// MaxConns is the most connections the server holds; a client over the
	// limit gets HTTP 503 before the upgrade. Default: 1,000,000.
	MaxConns int
	// MaxHeaderBytes bounds the handshake request head (HTTP 431 beyond).
	// Default: 8 KiB.
	MaxHeaderBytes int
	// MaxHeaderLines bounds the number of request header lines (HTTP 431
	// beyond). Default: 64.
	MaxHeaderLines int
	// MaxMessageSize bounds a message, after reassembly of its fragments and
	// after decompression; a larger one is refused with close 1009 as soon as
	// its size is known. Default: 16 MiB.
	MaxMessageSize int
	// MaxWriteQueue bounds the bytes waiting to be sent to one connection
	// (a slow reader); past it the connection is closed with 1008 and the
	// handler sees ErrWriteQueueFull. Default: 4 MiB.
	MaxWriteQueue int
	// MaxQueuedBytes is the server-wide budget for the memory that output
	// waiting for slow readers holds: what gnet copied for connections whose
	// sockets are full, plus megaws's queues for them, where a broadcast
	// frame queued for many readers counts once (it is stored once) plus 16
	// bytes per reader. Past it,
	// the connections with the most unsent bytes are dropped first (close
	// 1008, ErrServerQueueFull) until the total is under 90% of the budget,
	// so readers that keep up and publishers never wait for those that do
	// not. Default: an eighth of the machine's memory (Linux; a quarter of
	// the Go memory limit if one is set), at least 64 MiB and at most 1 GiB.
	MaxQueuedBytes int
	// WriteHighWater is the backpressure mark: when more than this many
	// bytes wait to be sent to a connection after its input was handled, the
	// server stops handling that connection's input until they are sent, so
	// a peer that sends faster than it reads cannot make the server produce
	// output without bound. gnet has no way to stop reading a socket, so its
	// input then waits in gnet's buffer, bounded by MaxReadQueue. Default:
	// 64 KiB.
	WriteHighWater int
	// MaxReadQueue bounds the input held for a connection while its input is
	// not handled (see WriteHighWater); past it the connection is closed
	// with 1008 and ErrReadQueueFull. Default: MaxMessageSize + 1 MiB, so a
	// peer may send one message of the largest size while it is paused.
	MaxReadQueue int
	// ReadBufferSize is how much each event loop reads from a socket per
	// readable event, into one buffer per loop (not per connection). A
	// message that arrives within one read is handed to OnMessage straight
	// from that buffer; larger messages are gathered in gnet's
	// per-connection buffer first, at the cost of copies. Rounded up to a
	// power of two. Default: 1 MiB (256 KiB echoes: 64 KiB reads cost
	// 140-185 µs of server CPU per round trip, 1 MiB reads 104-115 µs).
	ReadBufferSize int
	// SendBuffer, when positive, sets each connection's kernel send buffer
	// (SO_SNDBUF; Linux doubles the value for its bookkeeping and turns off
	// the buffer's autotuning, which otherwise grows it to a few MiB). A
	// small buffer keeps what a slow reader is sent fresh: bytes still in
	// megaws's queue can be replaced (Room.PublishSnapshot) or dropped,
	// bytes in the kernel cannot. Games publishing snapshots want 16-64 KiB;
	// bulk transfers want the default. Default: 0 (the system's).
	SendBuffer int

	// HandshakeTimeout closes a connection that has not completed its opening
	// handshake in time (slow or silent clients). Default: 10 s.
	HandshakeTimeout time.Duration
	// PingInterval is how long a connection may be silent before the server
	// sends a keepalive ping. Default: 25 s; negative disables pings.
	PingInterval time.Duration
	// IdleTimeout closes (1001) a connection from which nothing, not even a
	// pong, has arrived for this long. Default: 60 s; negative disables.
	IdleTimeout time.Duration
	// CloseTimeout is how long the server waits for the peer's close frame
	// after sending its own, before closing TCP. It also bounds how long a
	// connection that is done (close handshake over, or failed) waits for its
	// last queued bytes, close frame included, to reach the socket before TCP
	// is closed. Default: 5 s.
	CloseTimeout time.Duration

	// MemoryReleaseInterval, when positive, is how often megaws checks
	// whether a burst left memory behind: when no garbage collection has run
	// since the previous check and at least 32 MiB of heap is garbage or free
	// but not returned to the OS, it collects and returns free memory
	// (runtime.GC and debug.FreeOSMemory). megaws allocates nothing per
	// message, so without this the buffers of a burst of large messages stay
	// in the process until the runtime's forced collection two minutes
	// later. Forcing collections is the host program's business, so this is
	// off by default in an embedding process; `megaws serve` turns it on
	// (--memory-release, 5 s). Default: 0, off.
	MemoryReleaseInterval time.Duration

	// TimerResolution is the granularity of every timer: timeouts, keepalive,
	// Conn.AfterFunc and the tick. Default: 10 ms.
	TimerResolution time.Duration
	// TickInterval, when positive and the Handler implements Ticker, calls
	// OnTick on every event loop at this interval. Default: 0 (off). A loop
	// joins the ticking with its first connection (megaws meets gnet's
	// loops through their connections), so a loop that never served one is
	// not ticked: it owns no players to step.
	TickInterval time.Duration

	// Subprotocols lists the subprotocols the server speaks, in order of
	// preference; the first one the client also offers is selected
	// (RFC 6455 §4.2.2). Handler.OnUpgrade may override the choice.
	Subprotocols []string
	// AllowedOrigins, when non-empty, restricts upgrades to requests whose
	// Origin header equals one of these values (e.g. "https://game.example");
	// others get HTTP 403. Default: empty, any origin (origin checks are off,
	// as non-browser clients send no Origin).
	AllowedOrigins []string

	// Compression enables permessage-deflate (RFC 7692) for clients that
	// offer it. One compressor and one decompressor per event loop serve all
	// its connections; without context takeover (CompressionWindowBits) a
	// connection keeps nothing between messages. Any server_max_window_bits
	// a client asks for is honoured. Default: off.
	Compression bool
	// CompressionThreshold is the smallest payload that is compressed when
	// compression was negotiated; smaller messages go out uncompressed.
	// Default: 256 bytes.
	CompressionThreshold int
	// CompressionLevel is the compression level, 1 (fastest) to 9 (smallest),
	// as zlib's. Default: 1.
	CompressionLevel int
	// CompressionWindowBits, when Compression is on and it is 8 to 15, offers
	// context takeover: a connection whose client allows it compresses each
	// message against the last 2^CompressionWindowBits bytes it sent, and the
	// client is asked for the same window for what it sends (RFC 7692
	// client_max_window_bits; a client that cannot take that request gets no
	// takeover in its direction). Small repetitive messages (game state,
	// chat) then shrink to a fraction of their size, for 2 x 2^bits bytes of
	// memory per compressing connection (10 bits: 2 KiB). Default: 0, no
	// context takeover (nothing kept between messages).
	CompressionWindowBits int

	// RateLimit bounds the messages and bytes per second each connection may
	// send (token buckets with a burst); over it, a message is dropped or
	// the connection closed with 1008. Default: no limit. Enabling it costs
	// each connection that sends a small extra allocation.
	RateLimit RateLimit

	// ReserveFDs is how many descriptors below the process's open-files limit
	// (RLIMIT_NOFILE) megaws leaves to the rest of the process: a connection
	// accepted on a descriptor in that top range is answered 503 and closed
	// at once, so accepting never fails for lack of descriptors (which gnet
	// treats as fatal) and the server goes on serving; it accepts again as
	// soon as connections close. Counted in Stats.FDShed. Default: 1% of the
	// limit, at least 64 and at most 1024; negative disables the check.
	ReserveFDs int

	// NoRecover turns panic recovery off: a panic in a Handler method or in a
	// function megaws runs on a loop (timers, Conn.Do) then crashes the
	// process with its original stack, as in plain Go — for debugging.
	// Default (false): the panic is recovered, logged with its stack, counted
	// in Stats.Panics, and costs only its own connection (close 1011, HTTP 500
	// for OnUpgrade and ServeHTTP); the loop goes on serving the others.
	NoRecover bool

	// Broker, when set, joins this server to a cluster of megaws nodes
	// sharing the broker (broker/nats, broker/redis): room publishes,
	// broadcasts and Server.SendToID reach the other nodes' connections too.
	// Default: nil, a single node.
	Broker Broker

	// Logger receives lifecycle and error logs, never per-message logs.
	// Default: discard.
	Logger *slog.Logger
}

// Defaults, also documented on each Config field.
const (
	DefaultMaxConns         = 1_000_000
	DefaultMaxMessageSize   = 16 << 20
	DefaultMaxWriteQueue    = 4 << 20
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultPingInterval     = 25 * time.Second
	DefaultIdleTimeout      = 60 * time.Second
	DefaultCloseTimeout     = 5 * time.Second
	DefaultReadBufferSize   = 1 << 20
)

// withDefaults returns a copy of c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Loops <= 0 {
		c.Loops = runtime.NumCPU()
	}
	setInt(&c.MaxConns, DefaultMaxConns)
	setInt(&c.MaxMessageSize, DefaultMaxMessageSize)
	setInt(&c.MaxWriteQueue, DefaultMaxWriteQueue)
	setInt(&c.WriteHighWater, 64<<10)
	setInt(&c.MaxQueuedBytes, defaultQueuedBytes())
	setInt(&c.MaxReadQueue, c.MaxMessageSize+1<<20)
	setInt(&c.ReadBufferSize, DefaultReadBufferSize)
	setDur(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	setDur(&c.PingInterval, DefaultPingInterval)
	setDur(&c.IdleTimeout, DefaultIdleTimeout)
	setDur(&c.CloseTimeout, DefaultCloseTimeout)
	setDur(&c.TimerResolution, 10*time.Millisecond)
	setInt(&c.CompressionThreshold, 256)
	if c.CompressionLevel == 0 {
		c.CompressionLevel = 1
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c.RateLimit = c.RateLimit.withDefaults()
	c.Subprotocols = append([]string(nil), c.Subprotocols...)
	c.AllowedOrigins = append([]string(nil), c.AllowedOrigins...)
	return c
}

func setInt(p *int, def int) {
	if *p <= 0 {
		*p = def
	}
}

func setDur(p *time.Duration, def time.Duration) {
	if *p == 0 {
		*p = def
	}
}
