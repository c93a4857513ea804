package server

import (
	"errors"
	"net"
	"strconv"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// ErrUnexpectedStop is returned by ListenAndServe when the event loops
// stopped although Stop was not called (gnet treats some accept and poll
// errors as fatal; the log has the cause). A supervisor should restart the
// process: `megaws serve` exits non-zero.
var ErrUnexpectedStop = errors.New("megaws: the event loops stopped without Stop (see the log)")

// How megaws survives running out of file descriptors.
//
// gnet treats any accept(2) error other than EAGAIN/EINTR/ECONNABORTED as
// fatal: with the open-files limit reached, accept fails with EMFILE and the
// whole engine shuts down. megaws therefore makes sure accept always finds a
// free descriptor. On Linux every event loop accepts on its own listener
// (SO_REUSEPORT) one connection at a time and runs onOpen for it before it
// accepts the next, so megaws sees each descriptor as soon as it exists.
// Descriptors are handed out lowest first, so a connection whose descriptor
// lies in the top ReserveFDs of the limit means the table is nearly full:
// megaws answers it 503 and closes it at once. megaws never keeps a
// descriptor up there, so those numbers stay free for the loops' accepts (at
// most one each at a time) and the rest of the process, and the listener
// keeps serving; new connections are accepted again as soon as old ones
// close. Elsewhere (BSD, macOS: SO_REUSEPORT does not balance there) the
// shared acceptor accepts in bursts before megaws sees them, and only the
// 503 part applies.

// reserveFDs returns the descriptor number from which connections are shed,
// or 0 when there is no limit to protect.
func reserveFDs(reserve int) int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == unix.RLIM_INFINITY || rl.Cur > 1<<31 {
		return 0
	}
	limit := int(rl.Cur)
	if reserve == 0 {
		reserve = min(max(limit/100, 64), 1024)
	}
	if reserve < 0 || reserve >= limit {
		return 0
	}
	return limit - reserve
}

// shedResponse answers a connection shed for lack of descriptors.
const shedResponse = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

// shed refuses a connection accepted on descriptor fd, above the ceiling.
func (s *Server) shed(gc gnet.Conn, fd int) ([]byte, gnet.Action) {
	l := s.loopOf(gc.EventLoop())
	l.stats.fdShed.Add(1)
	if s.shedLog.allow() {
		attrs := []any{"fd", fd, "ceiling", s.fdCeiling, "remote", gc.RemoteAddr()}
		if n := s.shedLog.takeSuppressed(); n > 0 {
			attrs = append(attrs, "suppressed", n)
		}
		s.log.Warn("megaws: open files near the limit; new connections are answered 503 until some close", attrs...)
	}
	return []byte(shedResponse), gnet.Close
}

// prepareListen readies addr for gnet's listeners. With per-loop listeners
// (SO_REUSEPORT) every loop binds the address itself, so a port of 0 is first
// resolved to one free port (held by a bound, non-listening socket until
// release), and, unless Config.ReusePort asks to share the port with other
// processes, an address already in use is refused as a plain listener would.
func (s *Server) prepareListen(addr string, perLoop bool) (string, func(), error) {
	if !perLoop {
		return addr, func() {}, nil
	}
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return addr, nil, err
	}
	if !s.cfg.ReusePort && ta.Port != 0 {
		fd, _, err := bindProbe(ta, false)
		if err != nil {
			return addr, nil, err
		}
		_ = unix.Close(fd)
	}
	if ta.Port != 0 {
		return addr, func() {}, nil
	}
	fd, port, err := bindProbe(ta, true)
	if err != nil {
		return addr, nil, err
	}
	host, _, _ := net.SplitHostPort(addr)
	return net.JoinHostPort(host, strconv.Itoa(port)), func() { _ = unix.Close(fd) }, nil
}
