package scenario

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/megaws/megaws/codec"
)

// slowPool holds connections that complete the WebSocket handshake and then
// never read: first their receive buffers fill, then the server's socket send
// buffers, then whatever the server queues for them in user space.
//
// Nothing is read while a connection is open. An epoll instance watches for
// the two things the kernel reports without a read: EPOLLRDHUP (the server's
// FIN arrived, so everything it sent before fits in the receive buffer) and
// EPOLLERR/EPOLLHUP (a reset). Only then is the connection read, to the end,
// to find the server's close frame if it sent one. A server that closes a
// connection whose buffers are full leaves its FIN queued behind the unread
// bytes; the client never sees it, and only the server side of the socket
// (tcpScan) tells.
type slowPool struct {
	dst    unix.SockaddrInet4
	host   string
	rcvbuf int
	src    []netip.Addr

	epfd  int
	conns []*slowConn // in dial order
	byFD  map[int32]*slowConn
	zero  atomic.Int64 // UnixNano of the measurement start; events are timed from it
	gone  atomic.Int64 // connections seen ended from either side

	mu       sync.Mutex // guards the fields of slowConn written by watch
	stop     chan struct{}
	done     chan struct{}
	watching bool
	closed   bool
}

// slowConn is one slow reader.
type slowConn struct {
	fd    int
	local netip.AddrPort // our end, to find the server's end in /proc/net/tcp
	rest  []byte         // bytes read past the handshake response

	// Set by watch when the kernel reports the end of the connection.
	ended   bool
	endedAt time.Duration // since the measurement start
	how     string        // "close 1008", "eof" (FIN, no close frame), "reset", ...
	read    int64         // bytes read after the end was seen

	// Set by the TCP scans: when the server's end left ESTABLISHED.
	serverLeft   bool
	serverLeftAt time.Duration
	serverState  string // at the last scan: "ESTABLISHED", "FIN_WAIT1", "gone", ...
}

// slowDialers is how many handshakes run at once.
const slowDialers = 32

// newSlowPool opens n slow readers to addr from the source addresses src
// (rotated by offset), each with SO_RCVBUF rcvbuf when rcvbuf > 0. Every
// dial and handshake is bounded by timeout.
func newSlowPool(addr string, n, rcvbuf int, src []netip.Addr, offset int, timeout time.Duration) (*slowPool, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Is4() {
		return nil, fmt.Errorf("slow readers: address %q: want IPv4 host:port", addr)
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("slow readers: epoll_create1: %w", err)
	}
	p := &slowPool{
		dst: unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}, host: ap.String(),
		rcvbuf: rcvbuf, src: src, epfd: epfd, byFD: make(map[int32]*slowConn, n),
		conns: make([]*slowConn, n), stop: make(chan struct{}), done: make(chan struct{}),
	}
	var (
		next    atomic.Int64
		errMu   sync.Mutex
		errs    = map[string]int{}
		wg      sync.WaitGroup
		workers = min(slowDialers, max(n, 1))
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				var s netip.Addr
				if len(src) > 0 {
					s = src[(offset+i)%len(src)]
				}
				c, err := p.dial(s, timeout)
				if err != nil {
					errMu.Lock()
					errs[err.Error()]++
					errMu.Unlock()
					continue
				}
				p.conns[i] = c
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		p.Close()
		var b []string
		for k, v := range errs {
			b = append(b, fmt.Sprintf("%d× %s", v, k))
		}
		return nil, fmt.Errorf("slow readers: %d of %d failed: %v", sum(errs), n, b)
	}
	for _, c := range p.conns {
		p.byFD[int32(c.fd)] = c
		// EPOLLIN is left out on purpose: the data is never read.
		ev := unix.EpollEvent{Events: unix.EPOLLRDHUP, Fd: int32(c.fd)}
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
			p.Close()
			return nil, fmt.Errorf("slow readers: epoll_ctl: %w", err)
		}
	}
	p.zero.Store(time.Now().UnixNano())
	p.watching = true
	go p.watch()
	return p, nil
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// dial opens one slow reader with blocking calls bounded by timeout
// (SO_SNDTIMEO bounds connect and write, SO_RCVTIMEO the read), then
// switches the socket to non-blocking for the rest of its life.
func (p *slowPool) dial(src netip.Addr, timeout time.Duration) (*slowConn, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = unix.Close(fd)
		}
	}()
	if p.rcvbuf > 0 {
		// Before connect: the window scale is fixed by the SYN.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, p.rcvbuf); err != nil {
			return nil, fmt.Errorf("SO_RCVBUF: %w", err)
		}
	}
	tv := unix.NsecToTimeval(timeout.Nanoseconds())
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	if src.IsValid() {
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: src.As4()}); err != nil {
			return nil, fmt.Errorf("bind %s: %w", src, err)
		}
	}
	dst := p.dst // Connect writes into the sockaddr: one per dial
	if err := connectRetry(fd, &dst); err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	var key [24]byte
	base64.StdEncoding.Encode(key[:], raw[:])
	req := fmt.Sprintf("GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", p.host, key[:])
	if err := writeAll(fd, []byte(req)); err != nil {
		return nil, fmt.Errorf("write handshake: %w", err)
	}
	resp, rest, err := readHead(fd)
	if err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	if err := checkUpgrade(resp, key[:]); err != nil {
		return nil, err
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, fmt.Errorf("getsockname: %w", err)
	}
	in4, _ := sa.(*unix.SockaddrInet4)
	if in4 == nil {
		return nil, errors.New("getsockname: not IPv4")
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, err
	}
	ok = true
	return &slowConn{fd: fd, local: netip.AddrPortFrom(netip.AddrFrom4(in4.Addr), uint16(in4.Port)), rest: rest}, nil
}

func connectRetry(fd int, sa unix.Sockaddr) error {
	for {
		err := unix.Connect(fd, sa)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// readHead reads up to the end of the HTTP response head; rest is whatever
// came after it.
func readHead(fd int) (head, rest []byte, err error) {
	buf := make([]byte, 0, 1024)
	var tmp [1024]byte
	for {
		n, err := unix.Read(fd, tmp[:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			if errors.Is(err, unix.EAGAIN) {
				err = errors.New("timeout")
			}
			return nil, nil, err
		}
		if n == 0 {
			return nil, nil, errors.New("connection closed by server (EOF)")
		}
		buf = append(buf, tmp[:n]...)
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			return buf[:i+2], append([]byte(nil), buf[i+4:]...), nil
		}
		if len(buf) > 8<<10 {
			return nil, nil, errors.New("response head too large")
		}
	}
}

// checkUpgrade verifies a 101 response to a request with key.
func checkUpgrade(head, key []byte) error {
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 101")) {
		return fmt.Errorf("handshake: status %q", truncateStr(line, 60))
	}
	var want [28]byte
	codec.AppendAccept(want[:0], key)
	for len(rest) > 0 {
		var l []byte
		l, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, ok := bytes.Cut(l, []byte(":"))
		if ok && bytes.EqualFold(bytes.TrimSpace(name), []byte("Sec-WebSocket-Accept")) {
			if !bytes.Equal(bytes.TrimSpace(value), want[:]) {
				return fmt.Errorf("handshake: Sec-WebSocket-Accept %q, want %q", truncateStr(value, 40), want[:])
			}
			return nil
		}
	}
	return errors.New("handshake: no Sec-WebSocket-Accept")
}

func truncateStr(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return string(b)
}

// watch waits for the kernel to report the end of a connection until Close.
func (p *slowPool) watch() {
	defer close(p.done)
	events := make([]unix.EpollEvent, 256)
	buf := make([]byte, 256<<10)
	for {
		select {
		case <-p.stop:
			return
		default:
		}
		n, err := unix.EpollWait(p.epfd, events, 50)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
		for _, ev := range events[:max(n, 0)] {
			c := p.byFD[ev.Fd]
			if c == nil {
				continue
			}
			_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
			at := time.Duration(time.Now().UnixNano() - p.zero.Load())
			how, read := drainEnd(c, buf, ev.Events)
			p.mu.Lock()
			if !c.serverLeft {
				p.gone.Add(1)
			}
			c.ended, c.endedAt, c.how, c.read = true, at, how, read
			p.mu.Unlock()
		}
	}
}

// maxDrain bounds what is read from one ended connection: the kernel holds
// no more than the receive buffer once the FIN is in, but a server could
// keep a half-closed connection sending.
const maxDrain = 64 << 20

// drainEnd reads an ended connection to its end and says how it ended: the
// server's close frame ("close 1008") if one came, else a reset or a FIN
// without a close frame ("eof").
func drainEnd(c *slowConn, buf []byte, events uint32) (how string, read int64) {
	var sc frameScan
	sc.feed(c.rest)
	transport := "eof"
	if events&unix.EPOLLERR != 0 {
		transport = "reset"
		if e, _ := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR); e != 0 && unix.Errno(e) != unix.ECONNRESET {
			transport = "error: " + unix.Errno(e).Error()
		}
	}
	for read < maxDrain {
		n, err := unix.Read(c.fd, buf)
		if n > 0 {
			read += int64(n)
			sc.feed(buf[:n])
			continue
		}
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ECONNRESET):
			transport = "reset"
		case err != nil && !errors.Is(err, unix.EAGAIN):
			// EAGAIN: a FIN came but not yet all the data before it.
			transport = "error: " + err.Error()
		}
		break
	}
	return sc.outcome(transport), read
}

// Start restarts the clock events are timed from.
func (p *slowPool) Start(t time.Time) { p.zero.Store(t.UnixNano()) }

// Snapshot copies the connections' state.
func (p *slowPool) Snapshot() []slowConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]slowConn, 0, len(p.conns))
	for _, c := range p.conns {
		if c != nil {
			out = append(out, *c)
		}
	}
	return out
}

// markServer records the state of the server's end of each connection
// found by a TCP scan at time at (since the measurement start), and returns
// the bytes the kernel holds for the slow readers: the server's send queues
// plus the readers' receive queues.
func (p *slowPool) markServer(v tcpView, at time.Duration) (queued int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		if c == nil {
			continue
		}
		st := "gone"
		if s, ok := v.Server[c.local]; ok {
			st = s.State
			queued += s.TxQueue
		}
		if s, ok := v.Client[c.local]; ok {
			queued += s.RxQueue
		}
		c.serverState = st
		if st != "ESTABLISHED" && !c.serverLeft {
			c.serverLeft, c.serverLeftAt = true, at
			if !c.ended {
				p.gone.Add(1)
			}
		}
	}
	return queued
}

// Close stops the watcher and closes every socket; sockets holding unread
// bytes end with a reset, which frees the server's side at once.
func (p *slowPool) Close() {
	if p.closed {
		return
	}
	p.closed = true
	close(p.stop)
	if p.watching {
		<-p.done
	}
	for _, c := range p.conns {
		if c != nil && c.fd >= 0 {
			_ = unix.Close(c.fd)
			c.fd = -1
		}
	}
	_ = unix.Close(p.epfd)
}
