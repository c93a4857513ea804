package server_test

// Hostile and unlucky peers over the life of a connection: slowloris
// handshakes, frame bombs, ping floods, slow readers, abrupt disconnects,
// connection churn and a graceful Stop. Each test keeps a healthy connection
// echoing through the attack, and checks that what the attack cost (fds,
// heap, goroutines) is given back.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/codec"
	"github.com/megaws/megaws/server"
)

// longTests selects the long variants: go test ./server -run TestChurn -args -long
// (or MEGAWS_LONG=1).
var longTests = flag.Bool("long", false, "run the long variants of the lifecycle tests (100,000-connection churn)")

func isLong() bool { return *longTests || os.Getenv("MEGAWS_LONG") != "" }

// liveHeap returns the bytes of live heap objects after two collections (the
// second empties sync.Pool victim caches).
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func totalAlloc() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

// rss returns this process's resident set size in bytes after returning
// free memory to the OS, or 0 where /proc is missing. The test clients live
// in the same process, so it is logged, not asserted: live heap is.
func rss() uint64 {
	debug.FreeOSMemory()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb uint64
			_, _ = fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb)
			return kb << 10
		}
	}
	return 0
}

// openFDs counts this process's open file descriptors, or -1 where /proc is
// missing.
func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// heapSlack is how far above its baseline the live heap may stay once an
// attack is over: pools, gnet's per-loop buffers that grew, timers. It is far
// below what the attacks hold at their peak.
const heapSlack = 8 << 20

// checkBaseline waits until open fds, the live heap and goroutines are back
// to their baselines (plus a small slack), and fails if they do not come back.
func checkBaseline(t *testing.T, what string, fds int, heap, rssBefore uint64, goroutines int) {
	t.Helper()
	var nowFDs, nowG int
	var nowHeap uint64
	ok := waitFor(30*time.Second, func() bool {
		nowFDs, nowG = openFDs(), runtime.NumGoroutine()
		nowHeap = liveHeap()
		return nowFDs <= fds+4 && nowHeap <= heap+heapSlack && nowG <= goroutines+2
	})
	t.Logf("%s: fds %d -> %d, live heap %.1f -> %.1f MiB, RSS (test clients included) %.1f -> %.1f MiB, goroutines %d -> %d", what,
		fds, nowFDs, float64(heap)/(1<<20), float64(nowHeap)/(1<<20), float64(rssBefore)/(1<<20), float64(rss())/(1<<20), goroutines, nowG)
	if !ok {
		t.Fatalf("%s: resources did not return to baseline", what)
	}
}

// TestSlowloris holds 5,000 connections that send their handshake one byte
// at a time. Every one is closed at the handshake timeout, although it keeps
// sending, without ever being upgraded; a healthy connection keeps echoing,
// and fds and heap return to their baseline.
func TestSlowloris(t *testing.T) {
	const n = 5000
	const timeout = 2 * time.Second
	rec := newRecorder()
	_, addr := startServer(t, rec, server.Config{HandshakeTimeout: timeout})
	healthy := dialRaw(t, addr)
	healthy.handshake("/healthy")
	baseFDs, baseHeap, baseRSS, baseG := openFDs(), liveHeap(), rss(), runtime.NumGoroutine()

	request := []byte(upgradeRequest("/", ""))
	type slow struct {
		conn   net.Conn
		dialed time.Time
		sent   int
		closed atomic.Bool
		at     time.Time // when the server closed it
		got    []byte    // what the server sent before closing
	}
	conns := make([]*slow, 0, n)
	var wg sync.WaitGroup
	defer func() {
		for _, s := range conns {
			s.conn.Close()
		}
		wg.Wait()
	}()
	for range n {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Fatalf("dial %d: %v", len(conns), err)
		}
		s := &slow{conn: c, dialed: time.Now()}
		conns = append(conns, s)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(time.Now().Add(3 * ioTimeout))
			s.got, _ = io.ReadAll(c)
			s.at = time.Now()
			s.closed.Store(true)
		}()
	}
	peak := liveHeap()

	// Dribble one byte per connection per round, never the whole request,
	// until the server has closed every connection.
	deadline := time.Now().Add(2 * time.Minute)
	for round := 0; ; round++ {
		open := 0
		for _, s := range conns {
			if s.closed.Load() || s.sent >= len(request)-1 {
				continue
			}
			_ = s.conn.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := s.conn.Write(request[s.sent : s.sent+1]); err == nil {
				s.sent++
				open++
			}
		}
		if round == 2 {
			checkEcho(t, healthy, "during slowloris")
		}
		if open == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	waited := make(chan struct{})
	go func() { wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(2 * time.Minute):
		t.Fatal("the server did not close every slow connection")
	}
	var early, answered int
	var maxSent int
	for _, s := range conns {
		if len(s.got) > 0 {
			answered++
			if bytes.HasPrefix(s.got, []byte("HTTP/1.1 101")) {
				t.Fatalf("a slowloris connection was upgraded after %d bytes", s.sent)
			}
		}
		if s.at.Sub(s.dialed) < timeout/2 {
			early++
		}
		maxSent = max(maxSent, s.sent)
	}
	if early > 0 {
		t.Fatalf("%d connections were closed well before the handshake timeout", early)
	}
	if maxSent >= len(request)-1 {
		t.Fatalf("a connection sent %d of %d request bytes before being closed", maxSent, len(request))
	}
	if opens, _ := rec.counts(); opens != 1 {
		t.Fatalf("OnOpen called %d times, want 1 (the healthy connection)", opens)
	}
	t.Logf("%d connections closed by the handshake timeout after at most %d bytes each; %d got an HTTP answer; peak live heap %.1f MiB",
		n, maxSent, answered, float64(peak)/(1<<20))
	checkEcho(t, healthy, "after slowloris")
	for _, s := range conns {
		s.conn.Close()
	}
	conns = nil
	checkBaseline(t, "slowloris", baseFDs, baseHeap, baseRSS, baseG)
}

// bombHeader returns a masked frame header claiming length n (64-bit form).
func bombHeader(op ws.OpCode, fin bool, n uint64) []byte {
	b0 := byte(op)
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0, 0x80 | 127}
	b = binary.BigEndian.AppendUint64(b, n)
	return append(b, testMask[:]...)
}

// TestFrameBombLength sends frame headers with huge lengths and no payload.
// The server answers at once, from the header alone, without allocating for
// the announced payload: 1002 when the length's most significant bit is set
// (RFC 6455 §5.2), 1009 when it is valid but over MaxMessageSize.
func TestFrameBombLength(t *testing.T) {
	rec := newRecorder()
	_, addr := startServer(t, rec, server.Config{})
	healthy := dialRaw(t, addr)
	healthy.handshake("/healthy")
	cases := []struct {
		name   string
		prefix []byte // frames before the bomb
		bomb   []byte
		code   ws.StatusCode
		err    error
	}{
		{name: "length_2^63", bomb: bombHeader(ws.OpBinary, true, 1<<63), code: 1002, err: codec.ErrLengthMSB},
		{name: "length_2^64-1", bomb: bombHeader(ws.OpText, true, 1<<64-1), code: 1002, err: codec.ErrLengthMSB},
		{name: "length_2^63-1", bomb: bombHeader(ws.OpBinary, true, 1<<63-1), code: 1009, err: codec.ErrMessageTooBig},
		{name: "length_4GiB", bomb: bombHeader(ws.OpBinary, true, 4<<30), code: 1009, err: codec.ErrMessageTooBig},
		{name: "length_16MiB+1", bomb: bombHeader(ws.OpText, true, 16<<20+1), code: 1009, err: codec.ErrMessageTooBig},
		{name: "continuation_2^63-1", prefix: clientFrame(ws.OpBinary, false, 0, []byte("start")),
			bomb: bombHeader(ws.OpContinuation, true, 1<<63-1), code: 1009, err: codec.ErrMessageTooBig},
		{name: "continuation_over_by_one", prefix: clientFrame(ws.OpBinary, false, 0, make([]byte, 1<<20)),
			bomb: bombHeader(ws.OpContinuation, true, 15<<20+1), code: 1009, err: codec.ErrMessageTooBig},
		{name: "ping_2^62", bomb: bombHeader(ws.OpPing, true, 1<<62), code: 1002, err: codec.ErrControlTooLong},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			c.handshake("/")
			if tc.prefix != nil {
				// The pong proves the server has handled the prefix.
				c.write(concat(tc.prefix, ping([]byte("prefix"))))
				c.expectPong([]byte("prefix"))
			}
			before := totalAlloc()
			c.write(tc.bomb)
			c.expectCloseNext(tc.code)
			_, errs := rec.waitClosed(t)
			if len(errs) != 1 || server.CloseStatus(errs[0]) != tc.code || !errors.Is(errs[0], tc.err) {
				t.Fatalf("OnClose errors %v, want one with code %d and %v", errs, tc.code, tc.err)
			}
			if grew := totalAlloc() - before; grew > 1<<20 {
				t.Fatalf("%d bytes allocated while refusing the bomb", grew)
			}
			checkEcho(t, healthy, tc.name)
		})
	}
}

// TestFrameBombFragments sends a message of MaxMessageSize+1 bytes in 4,097
// fragments: the fragment that crosses the limit is refused with 1009 and the
// reassembly buffer is released. Many tiny fragments that stay within the
// limit make a normal message.
func TestFrameBombFragments(t *testing.T) {
	rec := newRecorder()
	_, addr := startServer(t, rec, server.Config{})
	healthy := dialRaw(t, addr)
	healthy.handshake("/healthy")
	baseHeap := liveHeap()

	t.Run("16MiB+1_in_4097_fragments", func(t *testing.T) {
		c := dialRaw(t, addr)
		_ = c.SetDeadline(time.Now().Add(3 * ioTimeout))
		c.handshake("/")
		const frag = 4 << 10
		chunk := bytes.Repeat([]byte{0xab}, frag)
		wire := clientFrame(ws.OpBinary, false, 0, chunk)
		for range (16<<20)/frag - 1 {
			wire = append(wire, clientFrame(ws.OpContinuation, false, 0, chunk)...)
		}
		c.write(wire)
		checkEcho(t, healthy, "16 MiB buffered")
		c.write(clientFrame(ws.OpContinuation, true, 0, []byte{0xab}))
		c.expectCloseNext(ws.StatusMessageTooBig)
		_, errs := rec.waitClosed(t)
		if len(errs) != 1 || server.CloseStatus(errs[0]) != 1009 || !errors.Is(errs[0], codec.ErrMessageTooBig) {
			t.Fatalf("OnClose errors %v, want 1009 ErrMessageTooBig", errs)
		}
	})
	t.Run("20000_one_byte_fragments", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.handshake("/")
		const n = 20000
		msg := bytes.Repeat([]byte("x"), n)
		c.write(fragmented(ws.OpText, msg, 1))
		c.expectMessage(ws.OpText, msg)
		c.closeNormal()
	})
	t.Run("100000_empty_fragments", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.handshake("/")
		wire := text(false, []byte("a"))
		for range 100000 {
			wire = append(wire, cont(false, nil)...)
		}
		wire = append(wire, cont(true, []byte("b"))...)
		c.write(wire)
		c.expectMessage(ws.OpText, []byte("ab"))
		c.closeNormal()
	})
	checkEcho(t, healthy, "after fragment bombs")
	if h := liveHeap(); h > baseHeap+heapSlack {
		t.Fatalf("live heap %.1f MiB after the fragment bombs, baseline %.1f MiB", float64(h)/(1<<20), float64(baseHeap)/(1<<20))
	}
}

// TestPingFlood sends pings as fast as TCP takes them and never reads the
// pongs. Once the pongs waiting for the peer pass WriteHighWater the server
// stops handling its input (no more pongs are produced); the pings then wait
// in the connection's input buffer, and when that passes MaxReadQueue the
// connection is closed with 1008. Server memory stays within those bounds
// and other connections are unaffected.
func TestPingFlood(t *testing.T) {
	const readQueue = 1 << 20
	s, addr := startServer(t, echo{}, server.Config{Loops: 1, MaxReadQueue: readQueue})
	healthy := dialRaw(t, addr)
	healthy.handshake("/healthy")
	c := dialRaw(t, addr)
	c.handshake("/")
	baseHeap := liveHeap()

	payload := bytes.Repeat([]byte{'p'}, 125)
	batch := bytes.Repeat(ping(payload), 64)
	const limit = 256 << 20
	sent := 0
	var werr error
	for sent < limit {
		_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		n, err := c.Conn.Write(batch)
		sent += n
		if err != nil {
			werr = err
			break
		}
	}
	if werr == nil || errors.Is(werr, os.ErrDeadlineExceeded) {
		t.Fatalf("wrote %d MiB of pings without reading, and the server neither read them nor closed the connection (%v)", sent>>20, werr)
	}
	if !waitFor(10*time.Second, func() bool { return s.Stats().ReadQueueDrops == 1 }) {
		t.Fatalf("Stats %+v: want one ReadQueueDrop", s.Stats())
	}
	flooded := liveHeap()
	t.Logf("%.1f MiB of pings sent before the server closed the connection; live heap %.1f -> %.1f MiB",
		float64(sent)/(1<<20), float64(baseHeap)/(1<<20), float64(flooded)/(1<<20))
	if flooded > baseHeap+heapSlack {
		t.Fatalf("server memory grew by %d MiB during the ping flood", (flooded-baseHeap)>>20)
	}
	checkEcho(t, healthy, "after the ping flood")
}

// TestPingBurstAnswered: a peer that sends a burst of pings larger than the
// high-water mark and only then reads gets every pong, in order: reading
// from it pauses and resumes without dropping anything.
func TestPingBurstAnswered(t *testing.T) {
	s, addr := startServer(t, echo{}, server.Config{Loops: 1})
	c := dialRaw(t, addr)
	c.handshake("/")
	_ = c.Conn.(*net.TCPConn).SetReadBuffer(32 << 10)
	payload := bytes.Repeat([]byte{'p'}, 125)
	const pings = 100_000 // 12 MiB of pongs: more than the sockets hold, far above the 64 KiB high-water mark
	wrote := make(chan error, 1)
	go func() { _, err := c.Conn.Write(bytes.Repeat(ping(payload), pings)); wrote <- err }()
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(3 * ioTimeout))
	for i := range pings {
		f, err := c.readFrame()
		if err == nil && (f.h.OpCode != ws.OpPong || !bytes.Equal(f.payload, payload)) {
			err = fmt.Errorf("got %v %q", f.h.OpCode, truncate(f.payload))
		}
		if err != nil {
			t.Fatalf("pong %d of %d: %v", i, pings, err)
		}
	}
	checkEcho(t, c, "after the burst")
	if st := s.Stats(); st.ReadPauses == 0 || st.ReadQueueDrops != 0 {
		t.Fatalf("Stats %+v: want read pauses and no drop", st)
	}
	c.closeNormal()
}

// flooder echoes, except that the message "flood" makes it send 64 KiB
// messages to the connection from another goroutine until Send fails, "block"
// does the same while it holds the event loop, and "bulk" makes it write 1 MiB
// messages from the event loop until WriteMessage fails. The error that ended
// the sending goes to sendErr.
type flooder struct {
	*recorder
	sendErr chan error
}

func (f flooder) OnMessage(c *server.Conn, op ws.OpCode, p []byte) {
	switch string(p) {
	case "flood":
		go func() {
			chunk := make([]byte, 64<<10)
			for range 100_000 { // 6.4 GiB: a bound that is never reached
				if err := c.Send(ws.OpBinary, chunk); err != nil {
					f.sendErr <- err
					return
				}
			}
			f.sendErr <- nil
		}()
	case "block":
		// Queue messages from another goroutine while this loop is busy, so
		// that Send itself sees the queue pass MaxWriteQueue.
		done := make(chan struct{})
		go func() {
			defer close(done)
			chunk := make([]byte, 64<<10)
			for range 1000 {
				if err := c.Send(ws.OpBinary, chunk); err != nil {
					f.sendErr <- err
					return
				}
			}
			f.sendErr <- nil
		}()
		select {
		case <-done:
		case <-time.After(ioTimeout):
		}
	case "bulk":
		chunk := make([]byte, 1<<20)
		for range 1000 {
			if err := c.WriteBinary(chunk); err != nil {
				f.sendErr <- err
				return
			}
		}
		f.sendErr <- nil
	default:
		_ = c.WriteMessage(op, p)
	}
}

// TestSlowReader makes the server send to a client that never reads. Past
// MaxWriteQueue the connection is closed with 1008 and OnClose sees
// ErrWriteQueueFull, whichever way the messages were queued; server memory
// stays bounded; another connection keeps its round trips going (latencies
// are logged, not asserted).
func TestSlowReader(t *testing.T) {
	for _, mode := range []string{"flood", "bulk", "block"} {
		t.Run(mode, func(t *testing.T) {
			rec := newRecorder()
			h := flooder{recorder: rec, sendErr: make(chan error, 1)}
			cfg := server.Config{Loops: 1}
			if mode == "block" {
				// Small enough that the sockets' buffers absorb the queue,
				// so only Send can see it overflow.
				cfg.MaxWriteQueue = 256 << 10
				cfg.CloseTimeout = 500 * time.Millisecond
			}
			_, addr := startServer(t, h, cfg)
			healthy := dialRaw(t, addr)
			healthy.handshake("/healthy")
			baseHeap := liveHeap()

			slow := dialRaw(t, addr)
			slow.handshake("/slow")
			_ = slow.Conn.(*net.TCPConn).SetReadBuffer(64 << 10)
			slow.writeFrame(ws.OpText, true, []byte(mode))

			// Round trips on the healthy connection while the server fills
			// the slow reader's queue, on the same event loop.
			var rtts []time.Duration
			var errs []error
		loop:
			for i := 0; ; i++ {
				start := time.Now()
				checkEcho(t, healthy, fmt.Sprintf("rtt %d", i))
				rtts = append(rtts, time.Since(start))
				select {
				case id := <-rec.closed:
					errs = rec.errs(id)
					break loop
				default:
				}
				if i > 100_000 {
					t.Fatal("the slow reader was never closed")
				}
			}
			if len(errs) != 1 || server.CloseStatus(errs[0]) != ws.StatusPolicyViolation || !errors.Is(errs[0], server.ErrWriteQueueFull) {
				t.Fatalf("OnClose errors %v, want 1008 with ErrWriteQueueFull", errs)
			}
			select {
			case err := <-h.sendErr:
				if !errors.Is(err, server.ErrWriteQueueFull) && !errors.Is(err, server.ErrClosed) {
					t.Fatalf("sending to the slow reader ended with %v", err)
				}
				t.Logf("sending to the slow reader ended with: %v", err)
			case <-time.After(ioTimeout):
				t.Fatal("sending to the slow reader never failed")
			}
			sort.Slice(rtts, func(i, j int) bool { return rtts[i] < rtts[j] })
			t.Logf("healthy round trips during the flood: %d, median %v, max %v", len(rtts), rtts[len(rtts)/2], rtts[len(rtts)-1])
			checkEcho(t, healthy, "after the slow reader")
			// What the slow reader gets: frames, then the end of the connection.
			_ = slow.SetReadDeadline(time.Now().Add(ioTimeout))
			if n, err := io.Copy(io.Discard, slow.br); err != nil && !isReset(err) {
				t.Fatalf("slow reader: %v after %d bytes", err, n)
			}
			if h := liveHeap(); h > baseHeap+heapSlack {
				t.Fatalf("live heap %.1f MiB after the slow reader, baseline %.1f MiB", float64(h)/(1<<20), float64(baseHeap)/(1<<20))
			}
		})
	}
}

// TestSlowReaderBroadcast broadcasts to a client that reads and one that
// never does: the slow one is dropped (1008, ErrWriteQueueFull) once its
// queue passes MaxWriteQueue, and the reading one receives every broadcast,
// in order, before and after.
func TestSlowReaderBroadcast(t *testing.T) {
	rec := newRecorder()
	s, addr := startServer(t, rec, server.Config{Loops: 1})
	reader := dialRaw(t, addr)
	reader.handshake("/reader")
	slow := dialRaw(t, addr)
	slow.handshake("/slow")
	if !waitFor(ioTimeout, func() bool { return s.Conns() == 2 }) {
		t.Fatalf("Conns() = %d", s.Conns())
	}
	msg := make([]byte, 64<<10)
	var errs []error
	sent := 0
	for ; sent < 10_000 && errs == nil; sent++ { // 640 MiB: a bound never reached
		binary.BigEndian.PutUint64(msg, uint64(sent))
		if err := s.Broadcast(ws.OpBinary, msg); err != nil {
			t.Fatalf("Broadcast: %v", err)
		}
		// One broadcast at a time: the reader's copy arriving means the
		// slow reader's was queued too.
		f := reader.nextFrame()
		if got := binary.BigEndian.Uint64(f.payload); f.h.OpCode != ws.OpBinary || got != uint64(sent) {
			t.Fatalf("reader got broadcast %d (%v), want %d", got, f.h.OpCode, sent)
		}
		select {
		case id := <-rec.closed:
			errs = rec.errs(id)
		default:
		}
	}
	if len(errs) != 1 || server.CloseStatus(errs[0]) != ws.StatusPolicyViolation || !errors.Is(errs[0], server.ErrWriteQueueFull) {
		t.Fatalf("OnClose %v after %d broadcasts, want 1008 with ErrWriteQueueFull", errs, sent)
	}
	t.Logf("slow reader dropped after %d broadcasts of 64 KiB", sent)
	for i := range 10 {
		msg[8] = byte(i)
		if err := s.Broadcast(ws.OpBinary, msg[:100]); err != nil {
			t.Fatal(err)
		}
		if f := reader.nextFrame(); !bytes.Equal(f.payload, msg[:100]) {
			t.Fatalf("broadcast %d after the drop: wrong payload", i)
		}
	}
	if s.Conns() != 1 {
		t.Fatalf("Conns() = %d, want 1", s.Conns())
	}
	reader.closeNormal()
}

// TestAbruptDisconnect drops connections in the middle of a frame, a
// fragmented message and a handshake, with FIN and with RST. OnClose runs
// exactly once for each connection that was open, with an error matching
// io.EOF or carrying 1006, and never for one that was not; nothing leaks.
func TestAbruptDisconnect(t *testing.T) {
	rec := newRecorder()
	s, addr := startServer(t, rec, server.Config{})
	healthy := dialRaw(t, addr)
	healthy.handshake("/healthy")
	baseFDs, baseHeap, baseRSS, baseG := openFDs(), liveHeap(), rss(), runtime.NumGoroutine()

	cases := []struct {
		name      string
		handshake bool
		send      []byte
		reset     bool
	}{
		{name: "mid_handshake", send: []byte("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgr")},
		{name: "mid_handshake_rst", send: []byte("GET / HTTP/1.1\r\n"), reset: true},
		{name: "after_handshake", handshake: true},
		{name: "mid_header", handshake: true, send: []byte{0x82}},
		{name: "mid_frame", handshake: true, send: clientFrame(ws.OpBinary, true, 0, make([]byte, 1000))[:500]},
		{name: "mid_frame_rst", handshake: true, send: clientFrame(ws.OpBinary, true, 0, make([]byte, 100000))[:50000], reset: true},
		{name: "mid_fragmented_message", handshake: true, send: concat(text(false, []byte("frag")), cont(false, []byte("ment")))},
		{name: "mid_fragmented_message_rst", handshake: true, send: concat(text(false, []byte("frag")), cont(false, []byte("ment")),
			clientFrame(ws.OpContinuation, true, 0, make([]byte, 5000))[:3000]), reset: true},
	}
	var wantOpen int
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opens, closes := rec.counts()
			c := dialRaw(t, addr)
			if tc.handshake {
				c.handshake("/")
				wantOpen++
			}
			if tc.send != nil {
				c.write(tc.send)
			}
			checkEcho(t, healthy, "before drop") // the server has read what was sent
			if tc.reset {
				_ = c.Conn.(*net.TCPConn).SetLinger(0)
			}
			c.Close()
			if tc.handshake {
				_, errs := rec.waitClosed(t)
				if len(errs) != 1 {
					t.Fatalf("OnClose called %d times", len(errs))
				}
				err := errs[0]
				if !errors.Is(err, io.EOF) && server.CloseStatus(err) != ws.StatusAbnormalClosure {
					t.Fatalf("OnClose error %v matches neither io.EOF nor 1006", err)
				}
				t.Logf("OnClose: %v (io.EOF: %v, status %d)", err, errors.Is(err, io.EOF), server.CloseStatus(err))
			} else {
				// The server sees the drop; OnOpen and OnClose must not run.
				checkEcho(t, healthy, "after drop")
				time.Sleep(50 * time.Millisecond)
				if o, cl := rec.counts(); o != opens || cl != closes {
					t.Fatalf("a connection dropped mid-handshake reached OnOpen/OnClose (%d/%d -> %d/%d)", opens, closes, o, cl)
				}
			}
			checkEcho(t, healthy, "after "+tc.name)
		})
	}
	if !waitFor(10*time.Second, func() bool { return s.Conns() == 1 }) {
		t.Fatalf("Conns() = %d after every drop, want 1", s.Conns())
	}
	checkBaseline(t, "abrupt disconnects", baseFDs, baseHeap, baseRSS, baseG)
	// Exactly once: close the healthy connection, stop the server and count
	// every OnClose.
	healthy.closeNormal()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.Stop(ctx)
	opens, closes := rec.counts()
	if opens != wantOpen+1 || closes != opens {
		t.Fatalf("%d OnOpen, %d OnClose; want %d of each", opens, closes, wantOpen+1)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for id, errs := range rec.closes {
		if len(errs) != 1 {
			t.Fatalf("connection %d: OnClose called %d times: %v", id, len(errs), errs)
		}
	}
}

// TestCloseFlushesPending closes connections while megaws still has more
// to send than the sockets hold: a large echo, then the client's close or a
// protocol violation. The client, reading late, still gets every byte and the
// close frame before the server closes TCP; a peer that never reads is closed
// after CloseTimeout.
func TestCloseFlushesPending(t *testing.T) {
	rec := newRecorder()
	_, addr := startServer(t, rec, server.Config{CloseTimeout: 2 * time.Second})
	big := bytes.Repeat([]byte("BAsd7&jh23"), 8<<20/10) // more than loopback buffers hold
	cases := []struct {
		name  string
		after []byte // sent right after the big message
		code  ws.StatusCode
	}{
		{name: "client_close", after: closeFrame(closePayload(1000, "")), code: 1000},
		{name: "protocol_error", after: clientFrame(3, true, 0, nil), code: 1002},
		{name: "invalid_utf8", after: text(true, []byte{0xff}), code: 1007},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			c.handshake("/")
			c.write(concat(text(true, big), tc.after))
			time.Sleep(200 * time.Millisecond) // let the server close while its queue is full
			c.expectMessage(ws.OpText, big)
			c.expectCloseNext(tc.code)
			if _, errs := rec.waitClosed(t); len(errs) != 1 || server.CloseStatus(errs[0]) != tc.code {
				t.Fatalf("OnClose %v, want once with %d", errs, tc.code)
			}
		})
	}
	t.Run("peer_never_reads", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.handshake("/")
		c.write(concat(text(true, big), closeFrame(closePayload(1000, ""))))
		// Never read: the server gives up after CloseTimeout.
		if _, errs := rec.waitClosed(t); len(errs) != 1 || server.CloseStatus(errs[0]) != 1000 {
			t.Fatalf("OnClose %v, want once with 1000", errs)
		}
	})
}

// TestChurn opens, upgrades, uses and closes connections one after another:
// 5,000 cycles by default, 100,000 with -long. Open fds, live heap and
// goroutines return to their baseline, and every cycle gets OnOpen and
// OnClose once.
func TestChurn(t *testing.T) {
	cycles := 5000
	if isLong() {
		cycles = 100_000
	}
	// A counting handler: a recorder would keep every connection's error,
	// which is test memory, not server memory.
	rec := &counter{}
	s, addr := startServer(t, rec, server.Config{})
	// Warm up the loops' buffers before taking the baseline.
	for range 10 {
		c := dialRaw(t, addr)
		c.handshake("/")
		c.closeNormal()
		c.Close()
	}
	if !waitFor(10*time.Second, func() bool { _, cl := rec.counts(); return cl == 10 }) {
		t.Fatal("warm-up connections did not close")
	}
	baseFDs, baseHeap, baseRSS, baseG := openFDs(), liveHeap(), rss(), runtime.NumGoroutine()
	port := s.Addr().(*net.TCPAddr).Port
	const workers = 4
	var next atomic.Int64
	var failed atomic.Value
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Dial from several loopback addresses so that 100,000 cycles
			// do not run out of ephemeral ports to TIME_WAIT.
			d := net.Dialer{Timeout: 10 * time.Second}
			for {
				i := next.Add(1)
				if i > int64(cycles) || failed.Load() != nil {
					return
				}
				d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+(int(i)+w)%16))}
				if err := churnCycle(&d, port, int(i)); err != nil {
					failed.Store(fmt.Errorf("cycle %d: %w", i, err))
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	if !waitFor(30*time.Second, func() bool { return s.Conns() == 0 }) {
		t.Fatalf("Conns() = %d after churn", s.Conns())
	}
	if !waitFor(30*time.Second, func() bool { o, cl := rec.counts(); return o == cycles+10 && cl == o }) {
		o, cl := rec.counts()
		t.Fatalf("%d OnOpen and %d OnClose for %d cycles", o, cl, cycles+10)
	}
	if bad := rec.unclean.Load(); bad != 0 {
		t.Fatalf("%d connections did not end with a clean 1000 close: %v", bad, rec.lastUnclean.Load())
	}
	t.Logf("%d cycles in %v (%.0f/s)", cycles, elapsed.Round(time.Millisecond), float64(cycles)/elapsed.Seconds())
	checkBaseline(t, "churn", baseFDs, baseHeap, baseRSS, baseG)
}

// counter is an echo handler that counts OnOpen and OnClose calls, and the
// connections that did not end with a clean close 1000 from the peer.
type counter struct {
	echo
	opens, closes, unclean atomic.Int64
	lastUnclean            atomic.Value
}

func (h *counter) OnOpen(*server.Conn) { h.opens.Add(1) }

func (h *counter) OnClose(_ *server.Conn, err error) {
	var ce *server.CloseError
	if !errors.As(err, &ce) || ce.Code != 1000 || !ce.Remote || ce.Err != nil {
		h.unclean.Add(1)
		h.lastUnclean.Store(fmt.Sprint(err))
	}
	h.closes.Add(1)
}

func (h *counter) counts() (opens, closes int) { return int(h.opens.Load()), int(h.closes.Load()) }

// churnCycle is one connection's life: dial, upgrade, one echo, close
// handshake, server closes TCP.
func churnCycle(d *net.Dialer, port, i int) error {
	c, err := d.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := c.Write([]byte(upgradeRequest("/churn", ""))); err != nil {
		return err
	}
	buf := make([]byte, 0, 512)
	tmp := make([]byte, 512)
	for !bytes.Contains(buf, []byte("\r\n\r\n")) {
		n, err := c.Read(tmp)
		if err != nil {
			return fmt.Errorf("handshake: %w", err)
		}
		buf = append(buf, tmp[:n]...)
	}
	if !bytes.HasPrefix(buf, []byte("HTTP/1.1 101 ")) {
		return fmt.Errorf("handshake answered %q", buf)
	}
	msg := []byte(fmt.Sprintf("cycle %d", i))
	wire := concat(clientFrame(ws.OpText, true, 0, msg), clientFrame(ws.OpClose, true, 0, closePayload(1000, "")))
	if _, err := c.Write(wire); err != nil {
		return err
	}
	want := concat(codec.AppendFrame(nil, ws.OpText, true, msg), codec.AppendClose(nil, 1000, ""))
	got, err := io.ReadAll(io.MultiReader(bytes.NewReader(buf[bytes.Index(buf, []byte("\r\n\r\n"))+4:]), c))
	if err != nil {
		return fmt.Errorf("echo and close: %w", err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("got %x, want %x", got, want)
	}
	return nil
}

// TestStop checks graceful shutdown: every client receives close 1001, new
// connections are refused, and Stop returns by its deadline whether or not
// the clients answer.
func TestStop(t *testing.T) {
	const n = 50
	t.Run("clients_answer", func(t *testing.T) {
		rec := newRecorder()
		s, addr := startServer(t, rec, server.Config{CloseTimeout: time.Minute})
		codes := make(chan ws.StatusCode, n)
		for range n {
			c := dialRaw(t, addr)
			c.handshake("/")
			go func() {
				// Answer the server's close like a well-behaved client.
				for {
					f, err := c.readFrame()
					if err != nil {
						codes <- 0
						return
					}
					if f.h.OpCode == ws.OpClose {
						code, _, _ := codec.ParseClose(f.payload)
						_, _ = c.Conn.Write(clientFrame(ws.OpClose, true, 0, f.payload))
						_, _ = io.Copy(io.Discard, c.br)
						codes <- code
						return
					}
				}
			}()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		for range n {
			if code := <-codes; code != ws.StatusGoingAway {
				t.Fatalf("client got close %d, want 1001", code)
			}
		}
		rec.mu.Lock()
		for id, errs := range rec.closes {
			if len(errs) != 1 || server.CloseStatus(errs[0]) != ws.StatusGoingAway || !errors.Is(errs[0], server.ErrServerStopping) {
				t.Errorf("connection %d: OnClose %v, want once with 1001 ErrServerStopping", id, errs)
			}
		}
		rec.mu.Unlock()
		if o, cl := rec.counts(); o != n || cl != n {
			t.Fatalf("%d OnOpen, %d OnClose, want %d", o, cl, n)
		}
		if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
			c.Close()
			t.Fatal("a new connection was accepted after Stop")
		}
	})

	t.Run("clients_never_answer", func(t *testing.T) {
		rec := newRecorder()
		s, addr := startServer(t, rec, server.Config{CloseTimeout: time.Minute})
		var clients []*rawConn
		for range n {
			c := dialRaw(t, addr)
			c.handshake("/")
			clients = append(clients, c)
		}
		const deadline = 2 * time.Second
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		start := time.Now()
		stopped := make(chan error, 1)
		go func() { stopped <- s.Stop(ctx) }()

		// Reading (without answering) the close frame: 1001.
		first := clients[0]
		f := first.mustFrame()
		if f.h.OpCode != ws.OpClose {
			t.Fatalf("got %v, want close", f.h.OpCode)
		}
		if code, _, _ := codec.ParseClose(f.payload); code != ws.StatusGoingAway {
			t.Fatalf("close %d, want 1001", code)
		}
		// The server is stopping: a new client is not upgraded.
		if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
			_ = c.SetDeadline(time.Now().Add(ioTimeout))
			_, _ = c.Write([]byte(upgradeRequest("/", "")))
			got, _ := io.ReadAll(c)
			c.Close()
			if bytes.HasPrefix(got, []byte("HTTP/1.1 101")) {
				t.Fatal("a client was upgraded while the server was stopping")
			}
			t.Logf("new client while stopping: %q", firstLine(got))
		} else {
			t.Logf("new client while stopping: %v", err)
		}

		var err error
		select {
		case err = <-stopped:
		case <-time.After(deadline + time.Minute):
			t.Fatal("Stop did not return")
		}
		elapsed := time.Since(start)
		t.Logf("Stop returned %v after %v (deadline %v)", err, elapsed.Round(time.Millisecond), deadline)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Stop: %v, want context.DeadlineExceeded", err)
		}
		// Stop forces the remaining connections closed when ctx ends, which
		// takes milliseconds; the slack is for a loaded machine.
		if elapsed > deadline+time.Second {
			t.Fatalf("Stop took %v with a %v deadline", elapsed, deadline)
		}
		for i, c := range clients {
			if i > 0 {
				c.expectCloseNext(ws.StatusGoingAway)
			} else {
				c.expectEOF()
			}
		}
		if o, cl := rec.counts(); o != n || cl != n {
			t.Fatalf("%d OnOpen, %d OnClose, want %d", o, cl, n)
		}
		rec.mu.Lock()
		for id, errs := range rec.closes {
			if len(errs) != 1 || server.CloseStatus(errs[0]) != ws.StatusGoingAway || !errors.Is(errs[0], server.ErrServerStopping) {
				t.Errorf("connection %d: OnClose %v, want once with 1001 ErrServerStopping", id, errs)
			}
		}
		rec.mu.Unlock()
		if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
			c.Close()
			t.Fatal("a new connection was accepted after Stop")
		}
	})
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\r\n")
	return s
}

// TestMain runs the package's tests and then checks for leaked goroutines:
// once every server is stopped (gnet's event loops end when Stop returns),
// every goroutine started during the tests must have ended, within a grace
// period for connections still being torn down. Goroutines that existed
// before (gnet's shared ants pool) are not counted.
func TestMain(m *testing.M) {
	flag.Parse()
	before := goroutines()
	code := m.Run()
	if code == 0 && !fuzzing() {
		var leaked map[string]string
		waitFor(10*time.Second, func() bool {
			leaked = goroutines()
			for id := range before {
				delete(leaked, id)
			}
			return len(leaked) == 0
		})
		if len(leaked) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: %d goroutines leaked by the tests:\n", len(leaked))
			for _, stack := range leaked {
				fmt.Fprintf(os.Stderr, "%s\n\n", stack)
			}
			code = 1
		}
	}
	os.Exit(code)
}

// fuzzing reports whether this process runs a fuzzing engine (coordinator
// or worker), whose goroutines outlive the fuzz target.
func fuzzing() bool {
	for _, name := range []string{"test.fuzz", "test.fuzzworker"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" && f.Value.String() != "false" {
			return true
		}
	}
	return false
}

// goroutines returns the stack of every goroutine but the caller's, by ID.
func goroutines() map[string]string {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	m := map[string]string{}
	for i, g := range strings.Split(string(buf), "\n\n") {
		id, _, ok := strings.Cut(strings.TrimPrefix(g, "goroutine "), " ")
		if i == 0 || !ok {
			continue // the first one is the caller's
		}
		m[id] = g
	}
	return m
}
