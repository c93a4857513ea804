package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// ErrHandlerPanic matches (errors.Is) the *PanicError of a connection closed
// because a callback panicked (close 1011).
var ErrHandlerPanic = errors.New("megaws: handler panicked")

// PanicError is the cause of a connection closed with 1011 because code that
// megaws ran for it panicked: a Handler method, a Conn.AfterFunc or Conn.Do
// function. OnClose receives it as CloseError.Err.
type PanicError struct {
	Callback string // "OnMessage", "OnOpen", "Conn.Do", ...
	Value    any    // the value passed to panic
	Stack    []byte // the panicking goroutine's stack
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("megaws: panic in %s: %v", e.Callback, e.Value)
}

// Is makes errors.Is(err, ErrHandlerPanic) true.
func (e *PanicError) Is(target error) bool { return target == ErrHandlerPanic }

// Unwrap returns the panic value when it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// Callback names, used in logs, PanicError.Callback and Stats.PanicsByCallback.
const (
	cbOnUpgrade = "OnUpgrade"
	cbOnOpen    = "OnOpen"
	cbOnMessage = "OnMessage"
	cbOnClose   = "OnClose"
	cbOnTick    = "OnTick"
	cbServeHTTP = "ServeHTTP"
	cbConnTimer = "Conn.AfterFunc"
	cbLoopTimer = "Loop.AfterFunc"
	cbConnDo    = "Conn.Do"
	cbLoopFunc  = "loop task"
	cbRoomEach  = "Room.Each"
	cbRoomHook  = "RoomObserver"
)

// recovered handles a panic recovered on loop l from callback cb, run for c
// (nil when it belongs to no connection): it counts and logs it, and closes c
// with 1011 if it is still open. It returns the PanicError. With
// Config.NoRecover it panics again with the original value.
func (l *Loop) recovered(cb string, c *Conn, v any) *PanicError {
	if l.s.cfg.NoRecover {
		panic(v)
	}
	pe := &PanicError{Callback: cb, Value: v, Stack: debug.Stack()}
	l.stats.panicked(cb)
	if l.s.logLimit.allow() {
		attrs := []any{"callback", cb, "panic", fmt.Sprint(v), "stack", string(pe.Stack)}
		if n := l.s.logLimit.takeSuppressed(); n > 0 {
			attrs = append(attrs, "suppressed", n)
		}
		if c != nil {
			attrs = append(attrs, "conn", c.id)
			if c.gc != nil && c.state != stateGone {
				attrs = append(attrs, "remote", c.gc.RemoteAddr())
			}
		}
		l.s.log.Error("megaws: recovered panic; the connection is closed with 1011", attrs...)
	}
	if c != nil {
		l.abort(c, pe)
	}
	return pe
}

// abort fails c with err's close code (1011 for anything but a protocol
// error) from any place on its loop: inside the connection's own input
// handling the close frame joins the corked output and onTraffic closes;
// elsewhere (timers, tasks) it is flushed and the connection closed here.
func (l *Loop) abort(c *Conn, err error) {
	switch c.state {
	case stateOpen, stateClosing:
		l.fail(c, err)
	case stateHandshake:
		c.state = stateClosed
	default:
		return
	}
	if l.corked == c {
		return
	}
	l.flush(c)
	if c.gc.OutboundBuffered() > 0 && l.linger(c) {
		return
	}
	l.closeNow(c)
}

// The user-code call sites. Each recovers a panic into that connection's
// closure (or a log line), so a buggy handler costs its own connection,
// never the process or the loop's other connections.

func (l *Loop) callOpen(c *Conn) {
	defer func() {
		if v := recover(); v != nil {
			_ = l.recovered(cbOnOpen, c, v)
		}
	}()
	l.s.h.OnOpen(c)
}

func (l *Loop) callMessage(c *Conn, op ws.OpCode, p []byte) {
	defer func() {
		if v := recover(); v != nil {
			_ = l.recovered(cbOnMessage, c, v)
		}
	}()
	l.s.h.OnMessage(c, op, p)
}

func (l *Loop) callClose(c *Conn, err error) {
	defer func() {
		if v := recover(); v != nil {
			_ = l.recovered(cbOnClose, nil, v)
		}
	}()
	l.s.h.OnClose(c, err)
}

// callUpgrade returns the handler's verdict, or the PanicError (HTTP 500).
func (l *Loop) callUpgrade(c *Conn, r *Request) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = l.recovered(cbOnUpgrade, nil, v)
		}
	}()
	return l.s.h.OnUpgrade(c, r)
}

// callServeHTTP returns the responder's answer, with its header lines when it
// is an HTTPHeaderer; ok is false after a panic in either method.
func (l *Loop) callServeHTTP(r *Request) (status int, ctype, header string, body []byte, ok bool) {
	defer func() {
		if v := recover(); v != nil {
			_ = l.recovered(cbServeHTTP, nil, v)
			ok = false
		}
	}()
	status, ctype, body = l.s.http.ServeHTTP(r)
	if hh, is := l.s.http.(HTTPHeaderer); is && status != 0 {
		if header = hh.HTTPHeader(r, status); !validHeaderLines(header) {
			if l.s.logLimit.allow() {
				l.s.log.Error("megaws: HTTPHeader returned malformed header lines; they are not sent", "header", header)
			}
			header = ""
		}
	}
	return status, ctype, header, body, true
}

func (l *Loop) callTick() {
	defer func() {
		if v := recover(); v != nil {
			_ = l.recovered(cbOnTick, nil, v)
		}
	}()
	l.s.ticker.OnTick(l)
}

// callConn runs fn(c) for a Conn.AfterFunc timer or Conn.Do.
func (l *Loop) callConn(cb string, c *Conn, fn func(*Conn)) {
	defer func() {
		if v := recover(); v != nil {
			_ = l.recovered(cb, c, v)
		}
	}()
	fn(c)
}

// callRoomHook runs a RoomObserver method for c.
func (l *Loop) callRoomHook(hook func(*Room, *Conn), r *Room, c *Conn) {
	defer func() {
		if v := recover(); v != nil {
			_ = l.recovered(cbRoomHook, c, v)
		}
	}()
	hook(r, c)
}

// callFunc runs a function that belongs to no connection (Loop.AfterFunc, a
// task).
func (l *Loop) callFunc(cb string, fn func()) {
	defer func() {
		if v := recover(); v != nil {
			_ = l.recovered(cb, nil, v)
		}
	}()
	fn()
}

// logConn logs an event of one connection at level, with its id and remote
// address, if the level is enabled and the per-server rate allows (at most
// 10 such lines at once, one a second after that; the next line says how
// many were held back). Levels: Debug for what peers do wrong (refused
// upgrades, protocol violations), Warn for what the server does to them
// (drops), Error for panics; Info stays quiet in normal operation.
func (l *Loop) logConn(level slog.Level, msg string, c *Conn, attrs ...any) {
	log := l.s.log
	if !log.Enabled(context.Background(), level) || !l.s.connLog.allow() {
		return
	}
	attrs = append(attrs, "conn", c.id)
	if c.gc != nil && c.state != stateGone {
		attrs = append(attrs, "remote", c.gc.RemoteAddr())
	}
	if n := l.s.connLog.takeSuppressed(); n > 0 {
		attrs = append(attrs, "suppressed", n)
	}
	log.Log(context.Background(), level, msg, attrs...)
}

// logLimiter lets through at most burst log lines, refilled at one per
// second, so a handler that panics on every message cannot flood the log;
// the suppressed count is reported with the next line let through.
type logLimiter struct {
	mu         sync.Mutex
	tokens     float64
	last       time.Time
	suppressed uint64
}

const logBurst = 10

func (g *logLimiter) allow() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	if g.last.IsZero() {
		g.tokens = logBurst
	} else {
		g.tokens = min(logBurst, g.tokens+now.Sub(g.last).Seconds())
	}
	g.last = now
	if g.tokens < 1 {
		g.suppressed++
		return false
	}
	g.tokens--
	return true
}

// takeSuppressed returns and resets the number of lines held back.
func (g *logLimiter) takeSuppressed() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := g.suppressed
	g.suppressed = 0
	return n
}
