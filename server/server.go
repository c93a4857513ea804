package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// Server is a WebSocket server on gnet event loops. Create it with New, run it
// with ListenAndServe, stop it with Stop.
type Server struct {
	cfg    Config
	h      Handler
	http   HTTPResponder
	ticker Ticker
	// roomHook is the handler as a RoomObserver, if it is one.
	roomHook RoomObserver
	// clusterObs is the handler as a ClusterObserver, if it is one.
	clusterObs ClusterObserver
	log        *slog.Logger
	res        time.Duration
	// keepaliveGrain is the granularity, in ticks, of keepalive and idle
	// deadlines.
	keepaliveGrain uint32

	eng gnet.Engine
	// client runs the loops without a listener (Start); clientDone is
	// closed once it has stopped.
	client     *gnet.Client
	clientDone chan struct{}
	// running is closed once gnet has registered its event loops (its
	// ticker's first call, which gnet makes after that): Register, for
	// ServeHTTP, is safe from then on.
	running     chan struct{}
	runningOnce sync.Once
	start       time.Time
	ready       chan struct{}
	done        chan struct{}
	addr        net.Addr
	stopping    atomic.Bool
	nextID      atomic.Uint64
	releases    atomic.Uint64 // memory releases by runReleaser

	open   atomic.Int64 // open WebSocket connections
	queued atomic.Int64 // bytes waiting for congested connections, all loops
	budget int64        // Config.MaxQueuedBytes

	mu    sync.Mutex
	loops []*Loop

	cluster   *cluster   // nil without Config.Broker
	logLimit  logLimiter // rate of error log lines about connections (panics)
	shedLog   logLimiter // rate of warnings about shed connections
	connLog   logLimiter // rate of log lines about single connections (drops, refusals, violations)
	fdCeiling int        // connections on descriptors from here on are shed; 0: no check

	roomsMu sync.Mutex
	rooms   map[string]*roomState
	paths   pathTable // the connections' request paths (paths.go)
	tick    context.CancelFunc
}

// New returns a Server that sends events to h, configured by a copy of cfg
// with defaults filled in.
func New(h Handler, cfg Config) *Server {
	c := cfg.withDefaults()
	s := &Server{cfg: c, h: h, log: c.Logger, ready: make(chan struct{}), done: make(chan struct{}), clientDone: make(chan struct{}), running: make(chan struct{})}
	s.http, _ = h.(HTTPResponder)
	s.roomHook, _ = h.(RoomObserver)
	s.clusterObs, _ = h.(ClusterObserver)
	if c.TickInterval > 0 {
		s.ticker, _ = h.(Ticker)
	}
	s.res = c.TimerResolution
	s.budget = int64(c.MaxQueuedBytes)
	if c.Broker != nil {
		s.cluster = newCluster(c.Broker)
	}
	// Keepalive and idle deadlines share wake-ups (see keepaliveSlots).
	grain := time.Second
	for _, d := range []time.Duration{c.PingInterval, c.IdleTimeout} {
		if d > 0 {
			grain = min(grain, d/keepaliveSlots)
		}
	}
	s.keepaliveGrain = uint32(max(grain/s.res, 1))
	return s
}

// ListenAndServe listens on the TCP address addr ("127.0.0.1:8080"; port 0
// picks a free port, see Addr) and serves until Stop. It returns after the
// event loops have exited: nil after Stop, ErrUnexpectedStop when they
// stopped by themselves (an error the log describes), or the error that
// kept it from listening. An address another process listens on is refused
// unless Config.ReusePort asks to share it.
func (s *Server) ListenAndServe(addr string) error {
	defer close(s.done)
	// On Linux each loop accepts on its own listener (see listen.go).
	perLoop := runtime.GOOS == "linux"
	if !perLoop && s.cfg.ReusePort && strings.HasSuffix(addr, ":0") && s.cfg.Loops > 1 {
		return errors.New("megaws: ReusePort with several loops needs an explicit port")
	}
	bindAddr, release, err := s.prepareListen(addr, perLoop)
	if err != nil {
		return fmt.Errorf("megaws: listen %s: %w", addr, err)
	}
	defer release()
	s.fdCeiling = reserveFDs(s.cfg.ReserveFDs)
	if cl := s.cluster; cl != nil {
		if err := cl.b.Start(s.deliver); err != nil {
			return fmt.Errorf("megaws: broker: %w", err)
		}
		defer func() { _ = cl.b.Close() }()
		_ = cl.b.Subscribe(chanAll)
		_ = cl.b.Subscribe(chanNodePfx + cl.nodeS)
	}
	err = gnet.Run(&engine{s: s}, "tcp://"+bindAddr,
		gnet.WithMulticore(true),
		gnet.WithNumEventLoop(s.cfg.Loops),
		gnet.WithReusePort(perLoop || s.cfg.ReusePort),
		// Register (ServeHTTP) picks loops from other goroutines: the
		// round-robin balancer is not safe for that.
		gnet.WithLoadBalancing(gnet.LeastConnections),
		gnet.WithTicker(true),
		gnet.WithReuseAddr(true),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithLogger(gnetLogger{s.log}),
		gnet.WithReadBufferCap(s.cfg.ReadBufferSize),
	)
	if err != nil {
		select {
		case <-s.ready:
		default:
			return fmt.Errorf("megaws: listen %s: %w", addr, err)
		}
		return err
	}
	if !s.stopping.Load() {
		s.log.Error("megaws: the event loops stopped without Stop")
		return ErrUnexpectedStop
	}
	return nil
}

// Ready is closed when the server accepts connections; Addr is valid then.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr returns the listening address, once Ready is closed.
func (s *Server) Addr() net.Addr { return s.addr }

// Conns returns the number of open WebSocket connections. Any goroutine.
func (s *Server) Conns() int { return int(s.open.Load()) }

// onBoot handles gnet's OnBoot.
func (s *Server) onBoot(eng gnet.Engine) gnet.Action {
	s.eng = eng
	s.start = time.Now()
	if fd, err := eng.Dup(); err == nil {
		if sa, err := unix.Getsockname(fd); err == nil {
			s.addr = sockaddrToTCP(sa)
		}
		_ = unix.Close(fd)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.tick = cancel
	go s.runReleaser(ctx, readHeap().live)
	s.log.Info("megaws listening", "addr", s.addr, "loops", s.cfg.Loops)
	close(s.ready)
	return gnet.None
}

// onShutdown handles gnet's OnShutdown.
func (s *Server) onShutdown(gnet.Engine) {
	if s.tick != nil {
		s.tick()
	}
	for _, l := range s.loopList() {
		l.wakeTimer.Stop()
	}
}

// loopList returns the loops created so far. The slice is copied on write,
// so callers may iterate it without the lock.
func (s *Server) loopList() []*Loop {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loops
}

// loopOf returns megaws's state for gnet's event loop el, creating it on first use.
func (s *Server) loopOf(el gnet.EventLoop) *Loop {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.loops {
		if l.el == el {
			return l
		}
	}
	l := newLoop(s, el, len(s.loops))
	l.gid = goid() // loopOf runs on el's goroutine
	// Copy on write: the ticker and Stats iterate the slice without the lock.
	s.loops = append(s.loops[:len(s.loops):len(s.loops)], l)
	return l
}

// onOpen handles gnet's OnOpen: a TCP connection was accepted.
func (s *Server) onOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	if s.stopping.Load() {
		return nil, gnet.Close
	}
	if fd := gc.Fd(); s.fdCeiling > 0 && fd >= s.fdCeiling {
		return s.shed(gc, fd)
	}
	l := s.loopOf(gc.EventLoop())
	l.refresh()
	e, _ := gc.Context().(*enrolled)
	// The id carries the loop index, so SendToID finds the loop at once.
	c := &Conn{gc: gc, l: l, id: s.nextID.Add(1)<<8 | uint64(l.idx&0xff), slot: noSlot}
	gc.SetContext(c)
	if l.byID != nil {
		l.byID[c.id] = c
	}
	l.conns++
	l.arm(c)
	if n := s.cfg.SendBuffer; n > 0 {
		_ = gc.SetWriteBuffer(n)
	}
	if e != nil {
		return nil, s.openEnrolled(c, e)
	}
	return nil, gnet.None
}

// onClose handles gnet's OnClose: the TCP connection is gone.
func (s *Server) onClose(gc gnet.Conn, err error) gnet.Action {
	c, _ := gc.Context().(*Conn)
	if c == nil || c.state == stateGone {
		return gnet.None
	}
	l := c.l
	unlink(c)
	l.conns--
	if l.byID != nil {
		delete(l.byID, c.id)
	}
	c.state = stateGone
	c.sendq.Store(sendqClosed)
	if c.ext != nil && c.ext.asm != nil {
		putAsm(c.ext.asm)
		c.ext.asm = nil
	}
	if l.corked == c {
		l.out = l.out[:0]
	}
	if c.outq() != nil {
		l.uncongest(c)
		l.flushQueued()
	}
	c.leaveAll()
	if c.flags&flagOpened == 0 {
		return gnet.None
	}
	s.open.Add(-1)
	var ce *CloseError
	if c.ext != nil && c.ext.closeErr != nil {
		ce = c.ext.closeErr
	} else {
		ce = &CloseError{Code: 1006, Err: err}
		if err == nil {
			ce.Err = ErrClosed
		}
	}
	l.stats.closed(ce.Code)
	l.callClose(c, ce)
	return gnet.None
}

// onTraffic handles gnet's OnTraffic: bytes arrived on gc.
func (s *Server) onTraffic(gc gnet.Conn) gnet.Action {
	c, _ := gc.Context().(*Conn)
	if c == nil {
		return gnet.Close
	}
	l := c.l
	l.refresh()
	if c.flags&flagPaused != 0 {
		// Too much output waits for this peer: its input stays in gnet's
		// buffer (bounded by MaxReadQueue) until the output drains.
		if c.state == stateOpen {
			c.lastRead = l.now
		}
		if l.inputWhilePaused(c) {
			if c.state == stateClosed {
				_, _ = gc.Discard(-1)
				return gnet.Close
			}
			return gnet.None
		}
	}
	if s.serve(c) {
		return gnet.Close
	}
	return gnet.None
}

// serve handles the input buffered for c — from onTraffic, or when a paused
// connection resumes — and writes the answers. It reports whether the TCP
// connection is to be closed now.
func (s *Server) serve(c *Conn) bool {
	gc, l := c.gc, c.l
	l.corked = c
	if c.state == stateHandshake {
		s.handshake(c)
	}
	if c.state == stateOpen || c.state == stateClosing {
		s.readFrames(c)
	}
	l.flush(c)
	l.corked = nil
	l.stats.publish()
	if c.state == stateOpen && c.flags&flagPaused == 0 && l.unsent(c) > s.cfg.WriteHighWater {
		l.pause(c)
	}
	l.publishQueued()
	if c.state == stateClosed {
		_, _ = gc.Discard(-1)
		// gnet would drop what the socket does not take at once: the last
		// messages and the close frame. Close once they are out.
		if l.unsent(c) > 0 && l.linger(c) {
			return false
		}
		return true
	}
	return false
}

// Stop shuts the server down gracefully: it stops accepting WebSocket
// upgrades, sends close 1001 to every connection, waits for the close
// handshakes until ctx is done, then closes whatever is left and stops the
// event loops. It returns ctx.Err() if the deadline passed first.
//
// Any goroutine. Called from an event-loop callback, Stop cannot wait (the
// loop has to run for its connections to close): it starts the same graceful
// stop in the background and returns nil at once; ListenAndServe returns
// when it is done. A second call waits for the first one to finish (or, from
// a loop, returns at once).
func (s *Server) Stop(ctx context.Context) error {
	select {
	case <-s.ready:
	default:
		return errors.New("megaws: server not started")
	}
	onLoop := s.onLoop()
	if !s.stopping.CompareAndSwap(false, true) {
		if !onLoop {
			<-s.done
		}
		return nil
	}
	if onLoop {
		// The callback returns before the stop ends: keep ctx's deadline,
		// not its cancellation.
		bg := context.WithoutCancel(ctx)
		cancel := context.CancelFunc(func() {})
		if d, ok := ctx.Deadline(); ok {
			bg, cancel = context.WithDeadline(bg, d)
		}
		go func() {
			defer cancel()
			_ = s.stop(bg)
		}()
		return nil
	}
	return s.stop(ctx)
}

// stop runs the graceful stop, waiting for the close handshakes until ctx is done.
func (s *Server) stop(ctx context.Context) error {
	for _, l := range s.loopList() {
		l.postFn(l.stopConns)
	}
	var waitErr error
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
wait:
	for s.open.Load() > 0 {
		select {
		case <-ctx.Done():
			waitErr = ctx.Err()
			break wait
		case <-t.C:
		}
	}
	// Engine.Stop closes the remaining connections (OnClose runs for each)
	// and the listeners; give it a moment of its own if ctx is already over.
	// It only notices the end every 500 ms, so wait for ListenAndServe to
	// return instead: Stop returns as soon as the engine is down.
	// Canceling stopCtx on return also ends that Engine.Stop call.
	stopCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	stopped := make(chan error, 1)
	if s.client != nil {
		go func() {
			stopped <- s.client.Stop()
			close(s.clientDone)
		}()
	} else {
		go func() { stopped <- s.eng.Stop(stopCtx) }()
	}
	select {
	case <-s.done:
	case err := <-stopped:
		if err != nil && waitErr == nil {
			waitErr = err
		}
		select {
		case <-s.done:
		case <-stopCtx.Done():
		}
	}
	return waitErr
}

// onLoop reports whether the caller runs on one of the server's event loops
// (a callback). It reads the goroutine's stack header, so it is only for rare
// calls such as Stop.
func (s *Server) onLoop() bool {
	id := goid()
	for _, l := range s.loopList() {
		if l.gid == id {
			return true
		}
	}
	return false
}

// goid returns the calling goroutine's id, parsed from "goroutine N [...".
func goid() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = b[min(len(b), len("goroutine ")):]
	var id uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + uint64(c-'0')
	}
	return id
}

func sockaddrToTCP(sa unix.Sockaddr) net.Addr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}
	}
	return nil
}

// engine adapts a Server to gnet.EventHandler, keeping gnet's types out of
// Server's exported methods.
type engine struct {
	gnet.BuiltinEventEngine
	s *Server
}

func (e *engine) OnBoot(eng gnet.Engine) gnet.Action       { return e.s.onBoot(eng) }
func (e *engine) OnShutdown(eng gnet.Engine)               { e.s.onShutdown(eng) }
func (e *engine) OnOpen(c gnet.Conn) ([]byte, gnet.Action) { return e.s.onOpen(c) }

// OnTick is only a signal: gnet calls it first right after registering its
// event loops (see Server.running), and megaws asks for no further call.
func (e *engine) OnTick() (time.Duration, gnet.Action) {
	e.s.runningOnce.Do(func() { close(e.s.running) })
	return 1 << 62, gnet.None
}

// OnClose and OnTraffic recover what the callback-level recovery cannot: a
// panic in megaws itself. It costs that connection, not the process.
func (e *engine) OnClose(c gnet.Conn, err error) (a gnet.Action) {
	defer e.s.internalPanic(c, &a)
	return e.s.onClose(c, err)
}

func (e *engine) OnTraffic(c gnet.Conn) (a gnet.Action) {
	defer e.s.internalPanic(c, &a)
	return e.s.onTraffic(c)
}

// internalPanic, deferred in gnet callbacks, turns a panic that escaped
// megaws's own code into the closure of gc (1011) and a log line.
func (s *Server) internalPanic(gc gnet.Conn, a *gnet.Action) {
	if s.cfg.NoRecover {
		return
	}
	v := recover()
	if v == nil {
		return
	}
	c, _ := gc.Context().(*Conn)
	if c == nil {
		s.log.Error("megaws: internal error", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		*a = gnet.Close
		return
	}
	l := c.l
	l.corked = nil
	l.out = l.out[:0]
	pe := l.recovered("megaws", nil, v)
	if c.state == stateOpen || c.state == stateClosing {
		c.extState().closeErr = &CloseError{Code: ws.StatusInternalServerError, Reason: "internal error", Err: pe}
	}
	if c.state != stateGone {
		c.state = stateClosed
	}
	*a = gnet.Close
}

// gnetLogger routes gnet's logs to the server's slog.Logger.
type gnetLogger struct{ l *slog.Logger }

func (g gnetLogger) Debugf(f string, a ...any) { g.l.Debug(fmt.Sprintf(f, a...), "src", "gnet") }
func (g gnetLogger) Infof(f string, a ...any)  { g.l.Debug(fmt.Sprintf(f, a...), "src", "gnet") }
func (g gnetLogger) Warnf(f string, a ...any)  { g.l.Warn(fmt.Sprintf(f, a...), "src", "gnet") }
func (g gnetLogger) Errorf(f string, a ...any) { g.l.Error(fmt.Sprintf(f, a...), "src", "gnet") }
func (g gnetLogger) Fatalf(f string, a ...any) { g.l.Error(fmt.Sprintf(f, a...), "src", "gnet") }

// stopChunk is how many connections a loop sends its close frame (1001) at a
// time during a graceful stop. Between chunks the loop handles its other
// events, the answers of the clients already told included: with tens of
// thousands of connections on a loop that gets a small share of a CPU, one
// burst of writes would keep it from reading any answer until the close
// deadlines had passed.
const stopChunk = 512

// stopConns starts the close handshake of every connection of the loop,
// stopChunk at a time. Loop only.
func (l *Loop) stopConns() {
	var cs []*Conn
	l.each(func(c *Conn) {
		if c.state == stateOpen || c.state == stateHandshake {
			cs = append(cs, c)
		}
	})
	l.stopChunks(cs)
}

func (l *Loop) stopChunks(cs []*Conn) {
	n := min(len(cs), stopChunk)
	for _, c := range cs[:n] {
		l.startClose(c, 1001, "server stopping", ErrServerStopping)
	}
	if rest := cs[n:]; len(rest) > 0 {
		// The next timer tick: the loop reads what arrived meanwhile first.
		l.AfterFunc(0, func() { l.stopChunks(rest) })
	}
}
