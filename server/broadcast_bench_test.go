//go:build linux

package server_test

// In-process fan-out benchmarks: one Room.Publish delivered to 1,000 and 5,000
// WebSocket connections whose client ends live in the same process. Each
// connection costs this process two descriptors (server end and client end),
// and the machines this runs on cap open files at 20,000 per process, so 5,000
// is the largest fan-out measured here; 10,000 recipients and more are measured
// by the bench harness (bench/, scenario broadcast), whose load generator runs
// in processes of its own.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/codec"
	"github.com/megaws/megaws/server"
	"golang.org/x/sys/unix"
)

// fanoutRoom puts every connection in one room.
type fanoutRoom struct {
	server.BaseHandler
	room atomic.Pointer[server.Room]
}

func (h *fanoutRoom) OnOpen(c *server.Conn) { h.room.Load().Join(c) }

// fanout is a server with n members in one room. The client ends are plain
// sockets read by two epoll loops of the test's own that only count the
// bytes: not net.Conns, whose reads would wake the Go runtime's poller and a
// goroutine per socket, so that the figures measure the server and not the
// clients. The clients allocate nothing.
type fanout struct {
	s    *server.Server
	room *server.Room
	n    int
	fds  []int        // client sockets
	got  atomic.Int64 // bytes received by all clients together
	wg   sync.WaitGroup
	done atomic.Bool
	stop func()

	// A waiter sets target and blocks on notify; the poller that brings got
	// to target wakes it. (A waiter that spins keeps the other goroutines
	// from running, and sleeping would allocate timers.)
	target  atomic.Int64
	notify  chan struct{}
	timeout *time.Timer
}

func newFanout(tb testing.TB, n int, cfg server.Config) *fanout {
	tb.Helper()
	h := &fanoutRoom{}
	if cfg.Loops == 0 {
		cfg.Loops = 2
	}
	cfg.PingInterval, cfg.IdleTimeout = -1, -1
	s := server.New(h, cfg)
	f := &fanout{s: s, room: s.Room("fanout"), n: n, notify: make(chan struct{}, 1), timeout: time.NewTimer(time.Hour)}
	f.target.Store(noTarget)
	h.room.Store(f.room)
	errc := make(chan error, 1)
	go func() { errc <- s.ListenAndServe("127.0.0.1:0") }()
	select {
	case <-s.Ready():
	case err := <-errc:
		tb.Fatalf("ListenAndServe: %v", err)
	}
	var mu sync.Mutex
	f.stop = func() {
		f.done.Store(true)
		f.wg.Wait()
		mu.Lock()
		for _, fd := range f.fds {
			_ = unix.Close(fd)
		}
		f.fds = nil
		mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Stop(ctx)
		<-errc
	}

	// Dial from a few goroutines; each connection's 101 is read before the
	// next dial so the listen backlog never overflows.
	port := s.Addr().(*net.TCPAddr).Port
	const dialers = 8
	var dialErr atomic.Pointer[error]
	var dwg sync.WaitGroup
	for range dialers {
		dwg.Add(1)
		go func() {
			defer dwg.Done()
			for range n / dialers {
				fd, err := dialFanout(port)
				if err != nil {
					dialErr.CompareAndSwap(nil, &err)
					return
				}
				mu.Lock()
				f.fds = append(f.fds, fd)
				mu.Unlock()
			}
		}()
	}
	dwg.Wait()
	if p := dialErr.Load(); p != nil {
		f.stop()
		tb.Fatalf("dial %d connections: %v", n, *p)
	}
	for len(f.fds) < n {
		fd, err := dialFanout(port)
		if err != nil {
			f.stop()
			tb.Fatalf("dial: %v", err)
		}
		f.fds = append(f.fds, fd)
	}
	if err := f.startPollers(2); err != nil {
		f.stop()
		tb.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for f.room.Len() < n {
		if time.Now().After(deadline) {
			f.stop()
			tb.Fatalf("room has %d of %d members after 30 s", f.room.Len(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return f
}

// noTarget is the target while nobody waits.
const noTarget = 1 << 62

// dialFanout connects a blocking socket, upgrades it, and returns it in
// non-blocking mode. The server sends nothing after the 101 until a publish,
// so reading up to the end of the response head takes no frame bytes.
func dialFanout(port int) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	fail := func(err error) (int, error) {
		_ = unix.Close(fd)
		return -1, err
	}
	tv := unix.Timeval{Sec: 5}
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	if err := unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return fail(err)
	}
	if _, err := unix.Write(fd, []byte(upgradeRequest("/", ""))); err != nil {
		return fail(err)
	}
	var head []byte
	b := make([]byte, 1)
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		if n, err := unix.Read(fd, b); n != 1 || err != nil {
			return fail(fmt.Errorf("reading the 101: %v after %q", err, head))
		}
		head = append(head, b[0])
	}
	if !bytes.HasPrefix(head, []byte("HTTP/1.1 101 ")) {
		return fail(fmt.Errorf("handshake: %q", head))
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return fail(err)
	}
	return fd, nil
}

// startPollers reads the client sockets with k epoll loops, each over its
// share of the sockets; they stop when stop is called.
func (f *fanout) startPollers(k int) error {
	for i := range k {
		ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			return err
		}
		for j := i; j < len(f.fds); j += k {
			ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(f.fds[j])}
			if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, f.fds[j], &ev); err != nil {
				_ = unix.Close(ep)
				return err
			}
		}
		f.wg.Add(1)
		go f.poll(ep)
	}
	return nil
}

func (f *fanout) poll(ep int) {
	defer f.wg.Done()
	defer unix.Close(ep)
	events := make([]unix.EpollEvent, 256)
	buf := make([]byte, 64<<10)
	for !f.done.Load() {
		n, err := unix.EpollWait(ep, events, 50)
		if err != nil && err != unix.EINTR {
			return
		}
		var total int64
		for _, ev := range events[:max(n, 0)] {
			for {
				r, err := unix.Read(int(ev.Fd), buf)
				if r <= 0 || err != nil {
					break
				}
				total += int64(r)
				if r < len(buf) {
					break
				}
			}
		}
		if total > 0 && f.got.Add(total) >= f.target.Load() {
			select {
			case f.notify <- struct{}{}:
			default:
			}
		}
	}
}

// publish sends count messages of payload to the room, keeping at most
// window messages in flight to every member, and waits until every member has
// received all of them.
func (f *fanout) publish(tb testing.TB, payload []byte, count, window int) {
	frame := int64(codec.HeaderSize(len(payload), false) + len(payload))
	base := f.got.Load()
	want := func(msgs int) int64 { return base + int64(msgs)*int64(f.n)*frame }
	for i := 1; i <= count; i++ {
		if err := f.room.Publish(ws.OpBinary, payload); err != nil {
			tb.Fatalf("publish: %v", err)
		}
		if i%window == 0 {
			f.waitFor(tb, want(i-window))
		}
	}
	f.waitFor(tb, want(count))
	if got := f.got.Load(); got != want(count) {
		tb.Fatalf("clients received %d bytes, want exactly %d", got-base, want(count)-base)
	}
}

// waitFor waits until the clients have received at least target bytes in
// total. It allocates nothing.
func (f *fanout) waitFor(tb testing.TB, target int64) {
	f.target.Store(target)
	defer f.target.Store(noTarget)
	f.timeout.Reset(30 * time.Second)
	defer f.timeout.Stop()
	for f.got.Load() < target {
		select {
		case <-f.notify:
		case <-f.timeout.C:
			tb.Fatalf("clients received %d of %d bytes after 30 s", f.got.Load(), target)
		}
	}
}

// BenchmarkRoomPublish measures fan-out: one op is one Room.Publish delivered
// to every member. deliveries/s counts messages received by clients; allocs/op
// is the allocations per publish (the frame is encoded once and shared, so it
// does not grow with the number of members). The timer resolution is coarse
// (pings and idle timeouts are off anyway) so that the timer driver's work per
// tick does not count against the larger rooms, whose publishes take longer.
//
//	go test -run '^$' -bench RoomPublish -benchtime 200x ./server/
func BenchmarkRoomPublish(b *testing.B) {
	fixtures := map[int]*fanout{}
	b.Cleanup(func() {
		for _, f := range fixtures {
			f.stop()
		}
	})
	for _, members := range []int{1_000, 5_000} {
		for _, size := range []int{64, 1024} {
			b.Run(fmt.Sprintf("members=%d/size=%dB", members, size), func(b *testing.B) {
				f := fixtures[members]
				if f == nil {
					f = newFanout(b, members, server.Config{TimerResolution: time.Second})
					fixtures[members] = f
				}
				payload := make([]byte, size)
				f.publish(b, payload, 16, 16) // warm the pools and the sockets
				b.SetBytes(int64(size * members))
				b.ReportAllocs()
				b.ResetTimer()
				start := time.Now()
				f.publish(b, payload, b.N, 64)
				elapsed := time.Since(start)
				b.ReportMetric(float64(b.N)*float64(members)/elapsed.Seconds(), "deliveries/s")
			})
		}
	}
}
