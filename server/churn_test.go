package server_test

// Hostile and unlucky peers over the life of a connection: slowloris
// handshakes, frame bombs, ping floods, slow readers, abrupt disconnects,
// connection churn and a graceful Stop. Each test keeps a healthy connection
// echoing through the attack, and checks that what the attack cost (fds,
// heap, goroutines) is given back.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/codec"
	"github.com/megaws/megaws/server"
)

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
