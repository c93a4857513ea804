//go:build linux

package loop

import (
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"

	"github.com/megaws/megaws/client/internal/handshake"
)

// Handler is what an application plugs into a Loop. Every method is called
// on the loop's goroutine, must not block, and may call the Conn and Loop
// methods directly. Arguments are only valid until the method returns.
type Handler interface {
	// OnOpen is called once the handshake is complete and verified.
	OnOpen(c *Conn)
	// OnMessage is called for every complete data message (op ws.OpText or
	// ws.OpBinary, fragments reassembled, text checked to be UTF-8) and for
	// every pong (op ws.OpPong). payload is borrowed from the loop's
	// buffers: it is only valid until OnMessage returns.
	OnMessage(c *Conn, op ws.OpCode, payload []byte)
	// OnClose is called once when an open connection ends; err is nil for
	// an orderly close this side asked for (Conn.Close, Loop.CloseAll) and
	// otherwise says why: a *client.CloseError for a close frame from the
	// server or a protocol violation (with the code), client.ErrCloseTimeout,
	// the error given to Conn.Abort, or an I/O error.
	OnClose(c *Conn, err error)
	// OnTick is called on every loop iteration, at least every Config.Tick.
	OnTick(now time.Time)
}

// NopHandler is a Handler that does nothing; embed it to implement only the
// methods needed.
type NopHandler struct{}

func (NopHandler) OnOpen(*Conn)                       {}
func (NopHandler) OnMessage(*Conn, ws.OpCode, []byte) {}
func (NopHandler) OnClose(*Conn, error)               {}
func (NopHandler) OnTick(time.Time)                   {}

// Loop is one event loop: an epoll instance, the goroutine that waits on it
// and the connections it owns.
type Loop struct {
	index   int
	cfg     Config
	dst     unix.SockaddrInet4
	reqHead []byte // the handshake request up to the key
	reqTail []byte // and after it
	h       Handler
	epfd    int
	evfd    int
	conns   map[int]*Conn   // by fd
	open    []*Conn         // open connections
	timed   map[*Conn]int64 // connecting, handshaking or closing: deadline in ns
	dirty   []*Conn         // conns with unflushed writes
	toDial  int
	pending int
	srcNext int

	rng     *rand.ChaCha8
	readBuf []byte
	now     time.Time

	mu     sync.Mutex
	posted []func()
	stop   bool

	cnt  counters
	errs errorLog
	done chan struct{}
}

func newLoop(idx int, cfg Config) (*Loop, error) {
	ap, err := netip.ParseAddrPort(cfg.Addr)
	if err != nil || !ap.Addr().Is4() {
		return nil, fmt.Errorf("megaws/loop: address %q: want IPv4 host:port", cfg.Addr)
	}
	extra, err := handshake.AppendHeader(nil, cfg.Header)
	if err != nil {
		return nil, err
	}
	host := ap.String()
	if h := cfg.Header.Get("Host"); h != "" {
		host = h
	}
	// The request is the same for every connection but the key.
	head, tail := handshake.RequestParts(cfg.Path, host, extra)

	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("megaws/loop: epoll_create1: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("megaws/loop: eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}); err != nil {
		_ = unix.Close(epfd)
		_ = unix.Close(evfd)
		return nil, fmt.Errorf("megaws/loop: epoll_ctl: %w", err)
	}
	var seed [32]byte
	_, _ = crand.Read(seed[:])
	l := &Loop{
		index:   idx,
		cfg:     cfg,
		dst:     unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()},
		reqHead: head,
		reqTail: tail,
		epfd:    epfd,
		evfd:    evfd,
		conns:   make(map[int]*Conn),
		timed:   make(map[*Conn]int64),
		rng:     rand.NewChaCha8(seed),
		readBuf: make([]byte, 256<<10),
		done:    make(chan struct{}),
		srcNext: cfg.SourceOffset,
	}
	return l, nil
}

// Index returns the loop's position in its Pool.
func (l *Loop) Index() int { return l.index }

// Open returns the connections open now. Call it only on the loop goroutine
// (from a Handler method or a Post function); the slice is the loop's own
// and changes as connections open and close.
func (l *Loop) Open() []*Conn { return l.open }

// Now returns the time of the current loop iteration.
func (l *Loop) Now() time.Time { return l.now }

// Counters returns a snapshot of the loop's counters; safe from any goroutine.
func (l *Loop) Counters() Counters { return l.cnt.snapshot() }

// Errors adds the loop's error messages and their counts to into; safe from
// any goroutine.
func (l *Loop) Errors(into map[string]int64) { l.errs.snapshot(into) }

// Post runs fn on the loop goroutine, soon. It does not wait; safe from any
// goroutine.
func (l *Loop) Post(fn func()) {
	l.mu.Lock()
	l.posted = append(l.posted, fn)
	l.mu.Unlock()
	var one = [8]byte{1}
	_, _ = unix.Write(l.evfd, one[:])
}

// Do runs fn on the loop goroutine and waits for it to return, or for the
// loop to stop. It must not be called from the loop goroutine itself.
func (l *Loop) Do(fn func()) {
	ran := make(chan struct{})
	l.Post(func() { fn(); close(ran) })
	select {
	case <-ran:
	case <-l.done:
	}
}

// Dial asks the loop to open n more connections, at most
// Config.MaxPending at a time; safe from any goroutine.
func (l *Loop) Dial(n int) {
	l.Post(func() { l.toDial += n; l.startDials() })
}

// CloseAll starts an orderly close (status 1000) of every open connection
// and drops pending dials. Call it on the loop goroutine.
func (l *Loop) CloseAll() {
	l.toDial = 0
	for _, c := range append([]*Conn(nil), l.open...) {
		c.Close(ws.StatusNormalClosure, "")
	}
	for c := range l.timed {
		if c.state == stateConnecting || c.state == stateHandshaking {
			c.fail(errAborted)
		}
	}
}

func (l *Loop) run() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer close(l.done)
	events := make([]unix.EpollEvent, 512)
	lastScan := time.Now()
	for {
		n, err := unix.EpollWait(l.epfd, events, int(l.cfg.Tick/time.Millisecond))
		if err != nil && !errors.Is(err, unix.EINTR) {
			l.errs.add("epoll_wait: " + err.Error())
			n = 0
		}
		l.now = time.Now()
		for i := 0; i < n; i++ {
			ev := events[i]
			fd := int(ev.Fd)
			if fd == l.evfd {
				var b [8]byte
				_, _ = unix.Read(l.evfd, b[:])
				continue
			}
			if c := l.conns[fd]; c != nil {
				c.onEvent(ev.Events)
			}
		}
		l.runPosted()
		if l.stop {
			l.closeAllFDs()
			return
		}
		l.startDials()
		if l.now.Sub(lastScan) >= 50*time.Millisecond {
			lastScan = l.now
			l.expire()
		}
		l.h.OnTick(l.now)
		l.flush()
	}
}

func (l *Loop) runPosted() {
	l.mu.Lock()
	fns := l.posted
	l.posted = nil
	l.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
	l.flush()
}

// flush writes out every connection's queued bytes.
func (l *Loop) flush() {
	for i, c := range l.dirty {
		c.dirty = false
		if c.fd >= 0 {
			c.flush()
		}
		l.dirty[i] = nil
	}
	l.dirty = l.dirty[:0]
}

func (l *Loop) expire() {
	now := l.now.UnixNano()
	for c, dl := range l.timed {
		if now < dl {
			continue
		}
		switch c.state {
		case stateClosing:
			c.fail(errCloseTimeout)
		default:
			c.fail(errHandshakeTimeout)
		}
	}
}

func (l *Loop) startDials() {
	for l.toDial > 0 && l.pending < l.cfg.MaxPending {
		l.toDial--
		l.dial()
	}
}

func (l *Loop) closeAllFDs() {
	for _, c := range l.conns {
		c.fail(errAborted)
	}
	_ = unix.Close(l.epfd)
	_ = unix.Close(l.evfd)
}

func (l *Loop) nextSource() (netip.Addr, bool) {
	ips := l.cfg.SourceIPs
	if len(ips) == 0 {
		return netip.Addr{}, false
	}
	a := ips[l.srcNext%len(ips)]
	l.srcNext++
	return a, true
}

func (l *Loop) mask() [4]byte {
	var m [4]byte
	v := l.rng.Uint64()
	m[0], m[1], m[2], m[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	return m
}
