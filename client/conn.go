package client

import (
	"bufio"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// Conn is a client WebSocket connection made by Dial.
//
// Goroutines: Conn starts none. ReadMessage runs on the caller's goroutine
// and answers pings and the close handshake there; one goroutine at a time
// may read. WriteMessage, Ping and Close may be called from any goroutines,
// concurrently with a read: one lock orders the writers. The only extra
// goroutines are the runtime's: a context.AfterFunc that interrupts a read
// when its ctx is cancelled, and, with Options.PingInterval, a time.AfterFunc
// timer that sends each keepalive ping; neither exists while waiting.
type Conn struct {
	nc  net.Conn
	br  *bufio.Reader
	src recvReader

	subprotocol string
	deflate     bool
	maxMsg      int
	closeTO     time.Duration
	zThreshold  int
	zLevel      int
	onPing      func([]byte)
	onPong      func([]byte)

	rmu sync.Mutex // held by the one reader
	rd  readState

	wmu sync.Mutex // held by the one writer
	w   writeState

	dlmu   sync.Mutex // guards the read deadline bookkeeping
	dl     readDeadline
	userWD atomic.Pointer[time.Time] // the write deadline the user set

	// done is closed when the connection is over; end says how.
	done    chan struct{}
	endOnce sync.Once
	end     *CloseError
	ncOnce  sync.Once

	// Keepalive (Options.PingInterval): time of the last bytes received
	// and of the start of the read now waiting (0 when none), in ns.
	ka        atomic.Pointer[time.Timer]
	kaEvery   time.Duration
	lastRecv  atomic.Int64
	readSince atomic.Int64
}

// readDeadline is the bookkeeping that lets a ctx and SetReadDeadline share
// the one deadline net.Conn has.
type readDeadline struct {
	user     time.Time // SetReadDeadline's
	active   bool      // a ReadMessage is running
	ctxDL    time.Time // its ctx's deadline, zero if none
	canceled bool      // its ctx was cancelled
	gen      uint64    // ReadMessage calls, so a late cancel does not touch the next
}

func newConn(nc net.Conn, pre []byte, o *Options, proto string, deflate bool) *Conn {
	c := &Conn{
		nc:          nc,
		subprotocol: proto,
		deflate:     deflate,
		maxMsg:      o.MaxMessageSize,
		closeTO:     o.CloseTimeout,
		zThreshold:  o.CompressionThreshold,
		zLevel:      o.CompressionLevel,
		onPing:      o.OnPing,
		onPong:      o.OnPong,
		done:        make(chan struct{}),
	}
	if len(pre) > 0 {
		c.src.pre = append([]byte(nil), pre...)
	}
	c.src.c = c
	c.br = bufio.NewReaderSize(&c.src, o.ReadBufferSize)
	if o.PingInterval > 0 {
		c.kaEvery = o.PingInterval
		c.lastRecv.Store(time.Now().UnixNano())
		t := time.AfterFunc(time.Hour, c.keepalive)
		c.ka.Store(t)
		t.Reset(o.PingInterval)
	}
	return c
}

// recvReader is what the read buffer reads from: bytes that came with the
// handshake response first, then the connection. It notes when bytes arrive,
// for the keepalive.
type recvReader struct {
	c   *Conn
	pre []byte
}

func (r *recvReader) Read(p []byte) (int, error) {
	if len(r.pre) > 0 {
		n := copy(p, r.pre)
		r.pre = r.pre[n:]
		if len(r.pre) == 0 {
			r.pre = nil
		}
		return n, nil
	}
	n, err := r.c.nc.Read(p)
	if n > 0 && r.c.kaEvery > 0 {
		r.c.lastRecv.Store(time.Now().UnixNano())
	}
	return n, err
}

// Subprotocol returns the subprotocol the server selected, "" for none.
func (c *Conn) Subprotocol() string { return c.subprotocol }

// Compressed reports whether permessage-deflate was negotiated.
func (c *Conn) Compressed() bool { return c.deflate }

// NetConn returns the underlying connection (a *tls.Conn for wss://), for
// socket options and addresses. Reading or writing it directly corrupts
// the WebSocket stream.
func (c *Conn) NetConn() net.Conn { return c.nc }

// LocalAddr returns the local network address.
func (c *Conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// RemoteAddr returns the server's network address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// SetReadDeadline sets the time after which a waiting ReadMessage returns
// an error wrapping os.ErrDeadlineExceeded; the zero time means none. It
// applies to the read in progress and later ones, together with each read's
// ctx (the earlier of the two wins). A deadline that passes leaves the
// connection usable: the next ReadMessage resumes where the last stopped.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.dlmu.Lock()
	defer c.dlmu.Unlock()
	c.dl.user = t
	if c.dl.active && c.dl.canceled {
		return nil
	}
	return c.nc.SetReadDeadline(earliest(t, c.dl.ctxDL))
}

// SetWriteDeadline sets the time after which a blocked write fails; the zero
// time means none. A write that times out leaves a partial frame on the wire,
// so it breaks the connection: every later write returns the same error.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.userWD.Store(&t)
	return c.nc.SetWriteDeadline(t)
}

func (c *Conn) userWriteDeadline() time.Time {
	if t := c.userWD.Load(); t != nil {
		return *t
	}
	return time.Time{}
}

// earliest returns the earlier of two deadlines, where zero means none.
func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}

// finish records how the connection ended (the first caller wins), closes
// the TCP connection and returns the recorded end.
func (c *Conn) finish(ce *CloseError) *CloseError {
	c.endOnce.Do(func() {
		c.end = ce
		close(c.done)
	})
	c.closeNetConn()
	return c.end
}

func (c *Conn) closeNetConn() {
	c.ncOnce.Do(func() {
		if t := c.ka.Load(); t != nil {
			t.Stop()
		}
		_ = c.nc.Close()
	})
}

// ended reports whether the connection is over.
func (c *Conn) ended() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Close performs the closing handshake (RFC 6455 §7.1.2): it sends a close
// frame with code and reason, waits up to Options.CloseTimeout for the
// server's close frame, and closes the TCP connection. It returns nil when
// the server answered, ErrCloseTimeout when it did not, or the I/O error
// that ended the connection. code 0 sends a close frame without a status;
// otherwise it must be one RFC 6455 §7.4 lets an endpoint send (1000-1003,
// 1007-1014, 3000-4999), and reason, UTF-8, at most 123 bytes.
//
// If no goroutine is reading, Close reads (and discards) what arrives until
// the server's close frame; if one is, Close waits for it to see that frame
// and its ReadMessage returns the *CloseError. Close on a connection that is
// already over only releases it and returns nil; it is safe to call from
// any goroutine, more than once.
func (c *Conn) Close(code ws.StatusCode, reason string) error {
	if err := checkClose(code, reason); err != nil {
		return err
	}
	if c.ended() {
		c.closeNetConn()
		return nil
	}
	deadline := time.Now().Add(c.closeTO)
	if err := c.sendClose(code, reason, deadline); err != nil {
		return c.finish(&CloseError{Code: ws.StatusAbnormalClosure, Err: err}).Err
	}
	c.awaitClose(deadline)
	end := c.finish(&CloseError{Code: code, Reason: reason, Err: ErrCloseTimeout})
	if end.Remote || end.Err == nil {
		return nil
	}
	return end.Err
}

// awaitClose waits until the connection is over or deadline, reading
// itself whenever no other goroutine is.
func (c *Conn) awaitClose(deadline time.Time) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for {
		if c.rmu.TryLock() {
			c.drain(deadline)
			c.rmu.Unlock()
			return
		}
		select {
		case <-c.done:
			return
		case <-t.C:
			return
		case <-poll.C:
		}
	}
}
