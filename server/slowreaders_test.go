package server_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/server"
)

// nonReader is a WebSocket client that completes the handshake and never
// reads again, with a small receive window so its socket fills at once.
func nonReader(t *testing.T, addr string) net.Conn {
	t.Helper()
	c := dialRaw(t, addr)
	_ = c.Conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	c.handshake("/")
	return c.Conn
}

// TestBroadcastReferencesFrames: broadcasting to connections that do not
// read queues the shared frame by reference: 2,000 publishes of 4 KiB to 50
// non-readers (8 MiB each, of which the kernel's socket buffers take at most
// 4 MiB; 200 MB in all if every reader got a copy) add a few MiB to the heap,
// while a reader that keeps up gets every message in order.
func TestBroadcastReferencesFrames(t *testing.T) {
	var s atomic.Pointer[server.Server]
	var mu sync.Mutex
	var conns []*server.Conn
	h := &funcHandler{
		onOpen: func(c *server.Conn) {
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		},
		onMessage: func(c *server.Conn, op ws.OpCode, p []byte) { _ = s.Load().Broadcast(op, p) },
	}
	srv, addr := startServer(t, h, server.Config{Loops: 2, MaxWriteQueue: 64 << 20, MaxQueuedBytes: 4 << 30, PingInterval: -1})
	s.Store(srv)
	fast := dialRaw(t, addr)
	fast.handshake("/")
	for range 50 {
		nonReader(t, addr)
	}
	if !waitFor(10*time.Second, func() bool { return srv.Conns() == 51 }) {
		t.Fatalf("%d connections", srv.Conns())
	}
	base := liveHeap()
	const n = 2000
	got := make(chan error, 1)
	go func() {
		for i := range n {
			f, err := fast.readFrame()
			if err == nil && (len(f.payload) != 4096 || f.payload[0] != byte(i) || f.payload[1] != byte(i>>8)) {
				err = errors.New("wrong message or order")
			}
			if err != nil {
				got <- err
				return
			}
		}
		got <- nil
	}()
	msg := bytes.Repeat([]byte{0}, 4096)
	for i := range n {
		msg[0], msg[1] = byte(i), byte(i>>8)
		fast.writeFrame(ws.OpBinary, true, msg)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	grew := int64(liveHeap()) - int64(base)
	st := srv.Stats()
	var waiting atomic.Int64 // what the non-readers wait for, each frame counted per reader
	mu.Lock()
	for _, c := range conns {
		done := make(chan struct{})
		if c.Do(func(c *server.Conn) { waiting.Add(int64(c.Queued())); close(done) }) == nil {
			<-done
		}
	}
	mu.Unlock()
	t.Logf("%d broadcasts of 4 KiB to 50 non-readers: %.1f MiB waiting for them, queued memory %.1f MiB, live heap %+.1f MiB",
		n, float64(waiting.Load())/(1<<20), float64(st.QueuedBytes)/(1<<20), float64(grew)/(1<<20))
	if waiting.Load() < 50<<20 {
		t.Fatalf("only %d MiB waiting: the kernel took it all and the test proves nothing", waiting.Load()>>20)
	}
	if grew > waiting.Load()/4 || st.QueuedBytes > waiting.Load()/4 {
		t.Fatalf("live heap grew by %d MiB: the frames are copied per reader", grew>>20)
	}
	if st.QueueDrops+st.BudgetDrops != 0 {
		t.Fatalf("drops with limits far away: %+v", st)
	}
}

// TestServerOutputBudget: once the output waiting for non-readers passes
// MaxQueuedBytes, the readers that stopped reading are dropped, those with
// the most unsent bytes first (close 1008, ErrServerQueueFull), until it is
// back under the budget, and a reader that keeps up, publishing and reading,
// never notices.
func TestServerOutputBudget(t *testing.T) {
	const budget = 4 << 20
	rec := newRecorder()
	var s atomic.Pointer[server.Server]
	h := &funcHandler{
		onMessage: func(c *server.Conn, op ws.OpCode, p []byte) { _ = s.Load().Broadcast(op, p) },
		onClose:   rec.OnClose,
	}
	srv, addr := startServer(t, h, server.Config{Loops: 2, MaxQueuedBytes: budget, MaxWriteQueue: 64 << 20, PingInterval: -1})
	s.Store(srv)
	fast := dialRaw(t, addr)
	fast.handshake("/")
	for range 20 {
		nonReader(t, addr)
	}
	if !waitFor(10*time.Second, func() bool { return srv.Conns() == 21 }) {
		t.Fatalf("%d connections", srv.Conns())
	}
	base := liveHeap()
	// 1000 x 8 KiB to 20 readers: past the kernel's socket buffers, the
	// frames waiting for them (8 MiB, each stored once) pass the budget.
	const n = 1000
	got := make(chan error, 1)
	go func() {
		for i := range n {
			f, err := fast.readFrame()
			if err == nil && (len(f.payload) != 8192 || f.payload[0] != byte(i)) {
				err = errors.New("wrong message or order")
			}
			if err != nil {
				got <- err
				return
			}
		}
		got <- nil
	}()
	msg := bytes.Repeat([]byte{0}, 8192)
	for i := range n {
		msg[0] = byte(i)
		fast.writeFrame(ws.OpBinary, true, msg)
		// A publisher's pace: the server sees the non-readers stall
		// between the publishes.
		time.Sleep(time.Millisecond)
	}
	if err := <-got; err != nil {
		t.Fatalf("the fast reader: %v", err)
	}
	st := srv.Stats()
	grew := int64(liveHeap()) - int64(base)
	t.Logf("budget %d MiB: %d readers dropped for the budget, %d for their own limit, %.1f MiB queued at the end, live heap %+.1f MiB", budget>>20, st.BudgetDrops, st.QueueDrops, float64(st.QueuedBytes)/(1<<20), float64(grew)/(1<<20))
	if st.BudgetDrops == 0 {
		t.Fatalf("no reader dropped for the budget: %+v", st)
	}
	if st.QueuedBytes > budget || grew > 2*budget {
		t.Fatalf("queued %d MiB, heap +%d MiB with a budget of %d MiB", st.QueuedBytes>>20, grew>>20, budget>>20)
	}
	for range st.BudgetDrops {
		_, errs := rec.waitClosed(t)
		full := len(errs) == 1 && (errors.Is(errs[0], server.ErrServerQueueFull) || errors.Is(errs[0], server.ErrWriteQueueFull))
		if !full || server.CloseStatus(errs[0]) != 1008 {
			t.Fatalf("OnClose %v, want 1008 for a full queue", errs)
		}
	}
	checkEcho(t, fast, "") // fast is still connected
}

// TestCongestedOrdering: a member that reads late gets its own answers,
// the room's publishes (but not those that except it) and its Sends, each in
// the order they were made, while its output waits in megaws's queue.
func TestCongestedOrdering(t *testing.T) {
	var rp atomic.Pointer[server.Room]
	sends := make(chan *server.Conn, 1<<14)
	stop := make(chan struct{})
	go func() { // Sends from one goroutine, in order
		for i := 0; ; i++ {
			select {
			case c := <-sends:
				_ = c.Send(ws.OpText, []byte("send "+itoa(i)))
			case <-stop:
				return
			}
		}
	}()
	defer close(stop) // sends stays open: the loop may still hold it
	h := &funcHandler{
		onOpen: func(c *server.Conn) { _ = rp.Load().Join(c) },
		onMessage: func(c *server.Conn, op ws.OpCode, p []byte) {
			i := string(p)
			_ = c.WriteMessage(ws.OpText, []byte("echo "+i+" "+string(bytes.Repeat([]byte("e"), 8000))))
			if len(i)%3 == 0 {
				_ = rp.Load().PublishExcept(c, ws.OpText, []byte("not for you "+i))
			}
			_ = rp.Load().Publish(ws.OpText, []byte("room "+i+" "+string(bytes.Repeat([]byte("r"), 8000))))
			sends <- c
		},
	}
	srv, addr := startServer(t, h, server.Config{Loops: 1, PingInterval: -1, MaxWriteQueue: 64 << 20})
	rp.Store(srv.Room("r"))
	c := dialRaw(t, addr)
	c.handshake("/")
	other := nonReader(t, addr) // a second member, congested too
	_ = other
	if !waitFor(5*time.Second, func() bool { return rp.Load().Len() == 2 }) {
		t.Fatal("members did not join")
	}
	const n = 2000 // 32 MB of answers: more than the sockets hold
	// Half the requests first; the rest only once the server has handled
	// those, so that they arrive while their answers (16 MB, more than
	// the two sockets' buffers hold) still wait: the loop then pauses
	// reading, however slow the machine. A single batch would be handled
	// whole before the loop looks at the queue.
	wrote := make(chan error, 1)
	go func() {
		for i := range n {
			if i == n/2 && !waitFor(time.Minute, func() bool { return srv.Stats().MessagesIn >= n/2 }) {
				wrote <- errors.New("the first half was not handled in a minute")
				return
			}
			if _, err := c.Conn.Write(clientFrame(ws.OpText, true, 0, []byte(itoa(i)))); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()
	if !waitFor(time.Minute, func() bool { return srv.Stats().ReadPauses > 0 }) {
		t.Fatalf("the answers never backed up (no read pause): %+v", srv.Stats())
	}
	// Each stream arrives whole and in order: direct answers, room
	// publishes (queued on the loop after the callback) and Sends.
	next := map[string]int{}
	for next["echo"] < n || next["room"] < n || next["send"] < n {
		f := c.mustFrame()
		kind, rest, _ := strings.Cut(string(f.payload), " ")
		num, _, _ := strings.Cut(rest, " ")
		if kind != "echo" && kind != "room" && kind != "send" || num != itoa(next[kind]) {
			t.Fatalf("got %.30q, want %s %d (have %v)", f.payload, kind, next[kind], next)
		}
		next[kind]++
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

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
