package server

import (
	"math"
	"net"
	"sync/atomic"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/codec"
	"github.com/panjf2000/gnet/v2"
)

// Connection states; only the owning event loop reads or writes them.
const (
	stateHandshake uint8 = iota // waiting for the HTTP upgrade request
	stateOpen                   // frames flow both ways
	stateClosing                // we sent a close frame and wait for the peer's
	stateClosed                 // the TCP connection is being closed; input is ignored
	stateGone                   // gnet closed the connection
)

// Connection flags: loop only.
const (
	flagOpened     uint8 = 1 << iota // OnOpen was called, so OnClose must be
	flagPinged                       // a keepalive ping is outstanding
	flagCompressed                   // the fragmented message in progress is compressed
	flagLinger                       // closed, waiting for its outbound bytes to drain
	flagPaused                       // input is not handled until the output drains (backpressure)
)

// Connection options: set during the handshake, before OnOpen makes the
// connection visible to other goroutines, and never changed afterwards, so
// any goroutine may read them.
const (
	optDeflate  uint8 = 1 << iota // permessage-deflate was negotiated
	optProtocol                   // a subprotocol was selected (ext.protocol, set before OnOpen)
	optPath                       // the request path is ext.path, not interned (set before OnOpen)
)

// sendqClosed marks sendq of a closed connection: any Add of a queue-sized
// value keeps it negative.
const sendqClosed = math.MinInt64 / 2

// Conn is one WebSocket connection. Its methods say which goroutines may call
// them: "loop only" methods may be called only from Handler callbacks for this
// connection (or other code running on its event loop, such as its timers);
// the others are safe from any goroutine.
//
// An idle Conn holds no buffers: it is this struct (96 bytes) plus gnet's own
// connection state.
type Conn struct {
	gc  gnet.Conn
	l   *Loop
	id  uint64
	ctx any

	// next and prev link the connection into one of its loop's lists (a timer
	// wheel slot or the parked list); the lists are also the loop's registry
	// of its connections for broadcasts and Stop.
	next, prev *Conn
	due        uint32 // wheel tick at which the connection's timer fires
	lastRead   uint32 // wheel tick of the last frame received
	slot       uint16 // list of the loop the connection is in (Loop.heads), or noSlot
	state      uint8
	flags      uint8
	fragOp     ws.OpCode  // opcode of the fragmented message in progress, or 0
	utf8       codec.UTF8 // validation state of a fragmented or partly arrived text message
	opts       uint8      // options negotiated in the handshake; read-only after OnOpen
	pathID     uint8      // the request path in Server.paths, or 0 (see setPath); read-only after OnOpen

	ext *connExt // rarely used state; nil for most connections
	// sendq counts bytes handed to gnet by Send and not yet written to the
	// socket or gnet's buffer; sendqClosed once the connection is closed.
	sendq atomic.Int64
}

// connExt holds state that most connections never need, so that an idle
// connection stays small.
type connExt struct {
	protocol string
	path     *string // the request path when it is not interned (optPath)
	z        *zstate // permessage-deflate, set during the handshake
	closeErr *CloseError
	rooms    []membership
	asm      *[]byte    // reassembly buffer of a fragmented message; nil otherwise
	partial  uint32     // payload bytes of the incomplete current frame already UTF-8 validated
	out      *outState  // output queue while the connection is congested
	rate     *rateState // Config.RateLimit buckets
}

// validated returns how many payload bytes of the current, incomplete frame
// validatePartial has checked.
func (c *Conn) validated() int {
	if c.ext == nil {
		return 0
	}
	return int(c.ext.partial)
}

func (c *Conn) extState() *connExt {
	if c.ext == nil {
		c.ext = &connExt{}
	}
	return c.ext
}

// closed reports whether the connection is gone. Any goroutine.
func (c *Conn) closed() bool { return c.sendq.Load() < 0 }

// ID returns a number unique among the server's connections. Any goroutine.
func (c *Conn) ID() uint64 { return c.id }

// Path returns the request path of the handshake, without the query. Any goroutine.
func (c *Conn) Path() string {
	switch {
	case c.pathID != 0:
		return c.l.s.paths.get(c.pathID)
	case c.opts&optPath != 0:
		// ext was allocated during the handshake and is never replaced.
		return *c.ext.path
	}
	return ""
}

// Protocol returns the negotiated subprotocol, or "". Any goroutine after OnOpen.
func (c *Conn) Protocol() string {
	if c.opts&optProtocol == 0 {
		return ""
	}
	// ext was allocated during the handshake and is never replaced.
	return c.ext.protocol
}

// RemoteAddr returns the peer's address. Loop only: gnet owns the value.
func (c *Conn) RemoteAddr() net.Addr { return c.gc.RemoteAddr() }

// Context returns the value stored with SetContext. Loop only; it is not
// synchronized.
func (c *Conn) Context() any { return c.ctx }

// SetContext stores per-connection application state (a player, a session).
// Loop only; OnUpgrade may call it before the connection opens.
func (c *Conn) SetContext(v any) { c.ctx = v }

// WriteMessage sends one unfragmented message. Loop only: call it from this
// connection's callbacks (OnOpen, OnMessage, its timers); from any other
// goroutine, or for a connection of another loop, use Send. It returns
// ErrClosed once the connection is closing or closed, and ErrControlTooLong
// for a control frame over 125 bytes. payload is not
// retained: it is copied or written before WriteMessage returns. Frames written
// during OnMessage are coalesced and sent with one write when the loop has
// handled all the bytes that arrived. op may be a data or control opcode.
func (c *Conn) WriteMessage(op ws.OpCode, payload []byte) error {
	if c.state != stateOpen {
		return ErrClosed
	}
	if op.IsControl() && len(payload) > codec.MaxControlPayload {
		return ErrControlTooLong
	}
	c.l.writeFrame(c, op, payload)
	return nil
}

// WriteSnapshot is WriteMessage for a message that supersedes the previous
// one (see SendSnapshot). Loop only.
func (c *Conn) WriteSnapshot(op ws.OpCode, payload []byte) error {
	if c.state != stateOpen {
		return ErrClosed
	}
	if op.IsControl() {
		return ErrSnapshotControl
	}
	l := c.l
	if l.queueFull(c) {
		return ErrWriteQueueFull
	}
	l.stats.msgsOut++
	l.stats.bytesOut += uint64(len(payload))
	l.writeSnapshot(c, l.snapshotFrame(c, op, payload))
	return nil
}

// WriteText is WriteMessage(ws.OpText, payload).
func (c *Conn) WriteText(payload []byte) error { return c.WriteMessage(ws.OpText, payload) }

// WriteBinary is WriteMessage(ws.OpBinary, payload).
func (c *Conn) WriteBinary(payload []byte) error { return c.WriteMessage(ws.OpBinary, payload) }

// Send sends one unfragmented message from any goroutine. It copies payload
// into a frame and queues it on the connection's event loop; it never blocks.
// It returns ErrClosed once the connection is closed and ErrWriteQueueFull
// (and closes the connection with 1008) when the bytes queued for this peer
// exceed Config.MaxWriteQueue.
func (c *Conn) Send(op ws.OpCode, payload []byte) error {
	return c.send(op, payload, false)
}

// SendSnapshot is Send for a message that supersedes the previous one (a
// game's state for this player at each tick): while the peer lags, a newer
// snapshot replaces the one still waiting for it instead of queuing behind
// it. Other messages keep their order around it. Any goroutine.
func (c *Conn) SendSnapshot(op ws.OpCode, payload []byte) error {
	if op.IsControl() {
		return ErrSnapshotControl
	}
	return c.send(op, payload, true)
}

func (c *Conn) send(op ws.OpCode, payload []byte, snap bool) error {
	if op.IsControl() && len(payload) > codec.MaxControlPayload {
		return ErrControlTooLong
	}
	n := int64(codec.HeaderSize(len(payload), false) + len(payload))
	q := c.sendq.Add(n)
	if q < 0 {
		c.sendq.Add(-n)
		return ErrClosed
	}
	if q-n > int64(c.l.s.cfg.MaxWriteQueue) {
		c.sendq.Add(-n)
		c.l.postFn(func() {
			if c.state == stateOpen || c.state == stateClosing {
				c.l.dropSlow(c, ErrWriteQueueFull)
			}
		})
		return ErrWriteQueueFull
	}
	fb := getFrameBuf(int(n))
	raw := c.compress(op, len(payload))
	if raw {
		// Compressed on the loop, in wire order (context takeover).
		*fb = append((*fb)[:0], payload...)
	} else {
		*fb = codec.AppendFrame((*fb)[:0], op, true, payload)
	}
	if !c.l.post(task{send: c, buf: fb, n: n, snap: snap, op: op, raw: raw}) {
		c.sendq.Add(-n)
		putFrameBuf(fb)
		return ErrClosed
	}
	return nil
}

// compress reports whether a message of n bytes goes out compressed.
func (c *Conn) compress(op ws.OpCode, n int) bool {
	return c.opts&optDeflate != 0 && op.IsData() && n >= c.l.s.cfg.CompressionThreshold
}

// Compressed reports whether permessage-deflate was negotiated. Any goroutine after OnOpen.
func (c *Conn) Compressed() bool { return c.opts&optDeflate != 0 }

// Ping sends a ping with payload (at most 125 bytes) from any goroutine. It
// returns ErrClosed once the connection is closed (see Send).
func (c *Conn) Ping(payload []byte) error { return c.Send(ws.OpPing, payload) }

// Close starts the closing handshake with code and reason (RFC 6455 §7.1.2)
// from any goroutine: the close frame is sent, and the TCP connection is closed
// when the peer answers or after Config.CloseTimeout. OnClose follows with a
// *CloseError carrying code. Calling Close on a closed connection does nothing.
func (c *Conn) Close(code ws.StatusCode, reason string) error {
	c.closeAsync(code, reason, nil)
	return nil
}

func (c *Conn) closeAsync(code ws.StatusCode, reason string, cause error) {
	c.l.postFn(func() { c.l.startClose(c, code, reason, cause) })
}

// Queued returns the bytes waiting to be sent to c: what gnet holds for its
// socket plus megaws's queue for it (a broadcast frame counts in full for
// each connection it waits for). Loop only (from another goroutine, read it
// inside Conn.Do); 0 once c is closed. A game can use it to skip or merge
// updates for a player whose connection lags.
func (c *Conn) Queued() int {
	if c.state == stateGone {
		return 0
	}
	return c.l.unsent(c)
}

// Clone returns a copy of b: the way to keep a payload beyond OnMessage.
func Clone(b []byte) []byte { return append([]byte(nil), b...) }
