package loadgen

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"golang.org/x/sys/unix"
)

// Handler is what a scenario plugs into a Loop. Every method is called on the
// loop's goroutine, must not block, and may call the Conn and Loop methods
// directly. Arguments are only valid until the method returns.
type Handler interface {
	// OnOpen is called once the handshake is complete and verified.
	OnOpen(c *Conn)
	// OnMessage is called for every complete data message, and for pongs.
	// payload is only valid until OnMessage returns.
	OnMessage(c *Conn, pong bool, payload []byte)
	// OnClose is called when an open connection ends; err is nil for an
	// orderly close this side asked for.
	OnClose(c *Conn, err error)
	// OnTick is called on every loop iteration, at least every Config.Tick.
	OnTick(now time.Time)
}

// NopHandler is a Handler that does nothing; embed it to implement only the
// methods a scenario needs.
type NopHandler struct{}

func (NopHandler) OnOpen(*Conn)                  {}
func (NopHandler) OnMessage(*Conn, bool, []byte) {}
func (NopHandler) OnClose(*Conn, error)          {}
func (NopHandler) OnTick(time.Time)              {}

// DefaultTick is the longest a loop sleeps in epoll_wait unless
// Config.Tick says otherwise.
const DefaultTick = 2 * time.Millisecond

// Config configures a Client. The zero value of every field but Addr has a
// documented default.
type Config struct {
	// Addr is the server, an IPv4 "host:port".
	Addr string
	// Path is the request target of the handshake. Default "/".
	Path string
	// SourceIPs are the local addresses connections are bound to, used
	// round-robin. Default: none (the kernel picks the source, 127.0.0.1).
	SourceIPs []netip.Addr
	// SourceOffset rotates the start of SourceIPs, so several processes
	// spread over the addresses differently.
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
	// Tick is the longest the loop sleeps waiting for events, and so the
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
	if c.Tick <= 0 {
		c.Tick = DefaultTick
	}
	return c
}

// Loop is one event loop: an epoll instance and the connections it owns.
type Loop struct {
	Index int

	cfg     Config
	dst     unix.SockaddrInet4
	host    string
	h       Handler
	epfd    int
	evfd    int
	conns   map[int]*Conn   // by fd
	open    []*Conn         // open connections, for scenarios to iterate
	timed   map[*Conn]int64 // connecting, handshaking or closing: deadline in ns
	dirty   []*Conn         // conns with unflushed writes
	toDial  int
	pending int
	srcNext int

	rng     *rand.ChaCha8
	readBuf []byte
	now     time.Time

	HS *hdrhistogram.Histogram // handshake latency (connect start to verified 101), µs

	mu     sync.Mutex
	posted []func()
	stop   bool

	cnt  counters
	errs errorLog
	done chan struct{}
}

func newLoop(idx int, cfg Config, h Handler) (*Loop, error) {
	ap, err := netip.ParseAddrPort(cfg.Addr)
	if err != nil || !ap.Addr().Is4() {
		return nil, fmt.Errorf("loadgen: address %q: want IPv4 host:port", cfg.Addr)
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("loadgen: epoll_create1: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		_ = unix.Close(epfd)
		return nil, fmt.Errorf("loadgen: eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}); err != nil {
		_ = unix.Close(epfd)
		_ = unix.Close(evfd)
		return nil, fmt.Errorf("loadgen: epoll_ctl: %w", err)
	}
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(rand.Uint32())
	}
	l := &Loop{
		Index:   idx,
		cfg:     cfg,
		dst:     unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()},
		host:    ap.String(),
		h:       h,
		epfd:    epfd,
		evfd:    evfd,
		conns:   make(map[int]*Conn),
		timed:   make(map[*Conn]int64),
		rng:     rand.NewChaCha8(seed),
		readBuf: make([]byte, 256<<10),
		HS:      NewHistogram(),
		done:    make(chan struct{}),
		srcNext: cfg.SourceOffset,
	}
	return l, nil
}

// Open returns the connections open now. Call it only on the loop goroutine
// (from a Handler method or a Post function); the slice is the loop's own.
func (l *Loop) Open() []*Conn { return l.open }

// Now returns the time of the current loop iteration.
func (l *Loop) Now() time.Time { return l.now }

// Counters returns a snapshot of the loop's counters; safe from any goroutine.
func (l *Loop) Counters() Counters { return l.cnt.snapshot() }

// Post runs fn on the loop goroutine, soon. It does not wait.
func (l *Loop) Post(fn func()) {
	l.mu.Lock()
	l.posted = append(l.posted, fn)
	l.mu.Unlock()
	var one = [8]byte{1}
	_, _ = unix.Write(l.evfd, one[:])
}

// Do runs fn on the loop goroutine and waits for it to return, or for the
// loop to stop.
func (l *Loop) Do(fn func()) {
	ran := make(chan struct{})
	l.Post(func() { fn(); close(ran) })
	select {
	case <-ran:
	case <-l.done:
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

// Dial asks the loop to open n more connections, paced by MaxPending.
func (l *Loop) Dial(n int) {
	l.Post(func() { l.toDial += n; l.startDials() })
}

func (l *Loop) startDials() {
	for l.toDial > 0 && l.pending < l.cfg.MaxPending {
		l.toDial--
		l.dial()
	}
}

// CloseAll starts an orderly close (status 1000) of every open connection
// and drops pending dials. Call it on the loop goroutine.
func (l *Loop) CloseAll() {
	l.toDial = 0
	for _, c := range append([]*Conn(nil), l.open...) {
		c.Close()
	}
	for c := range l.timed {
		if c.state == stateConnecting || c.state == stateHandshaking {
			c.fail(errAborted)
		}
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

// Errors adds the loop's error messages and their counts to into.
func (l *Loop) Errors(into map[string]int64) { l.errs.snapshot(into) }

// Client is a set of loops dialing one server.
type Client struct {
	Loops []*Loop
}

// New starts cfg.Loops event loops; handler(i) makes the Handler of loop i.
// Stop them with Close.
func New(cfg Config, handler func(loop *Loop) Handler) (*Client, error) {
	cfg = cfg.withDefaults()
	cl := &Client{}
	for i := 0; i < cfg.Loops; i++ {
		c := cfg
		c.SourceOffset = cfg.SourceOffset + i*7
		l, err := newLoop(i, c, nil)
		if err != nil {
			for _, l := range cl.Loops {
				_ = unix.Close(l.epfd)
				_ = unix.Close(l.evfd)
			}
			return nil, err
		}
		l.h = handler(l)
		cl.Loops = append(cl.Loops, l)
	}
	for _, l := range cl.Loops {
		go l.run()
	}
	return cl, nil
}

// Dial opens n connections spread over the loops.
func (cl *Client) Dial(n int) {
	k := len(cl.Loops)
	for i, l := range cl.Loops {
		share := n / k
		if i < n%k {
			share++
		}
		if share > 0 {
			l.Dial(share)
		}
	}
}

// Each runs fn on every loop's goroutine and waits for all of them.
func (cl *Client) Each(fn func(l *Loop)) {
	var wg sync.WaitGroup
	for _, l := range cl.Loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.Do(func() { fn(l) })
		}()
	}
	wg.Wait()
}

// Counters sums the counters of every loop.
func (cl *Client) Counters() Counters {
	var c Counters
	for _, l := range cl.Loops {
		c.Add(l.Counters())
	}
	return c
}

// Errors returns the distinct error messages seen, with counts.
func (cl *Client) Errors() map[string]int64 {
	m := map[string]int64{}
	for _, l := range cl.Loops {
		l.Errors(m)
	}
	return m
}

// HandshakeHistogram merges the loops' handshake latency histograms (µs).
func (cl *Client) HandshakeHistogram() *hdrhistogram.Histogram {
	h := NewHistogram()
	cl.Each(func(l *Loop) { h.Merge(l.HS) })
	return h
}

// CloseAll starts an orderly close of every connection on every loop.
func (cl *Client) CloseAll() { cl.Each(func(l *Loop) { l.CloseAll() }) }

// Close stops every loop and closes every socket without a close handshake.
func (cl *Client) Close() {
	for _, l := range cl.Loops {
		l.Post(func() { l.stop = true })
	}
	for _, l := range cl.Loops {
		<-l.done
	}
}
