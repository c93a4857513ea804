package server_test

// Hostile and unlucky peers over the life of a connection: slowloris
// handshakes, frame bombs, ping floods, slow readers, abrupt disconnects,
// connection churn and a graceful Stop. Each test keeps a healthy connection
// echoing through the attack, and checks that what the attack cost (fds,
// heap, goroutines) is given back.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/codec"
	"github.com/megaws/megaws/server"
)

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
