package server_test

// Server heap and RSS per compressed connection. The clients run in a child
// process (this test binary again, as TestDeflateMemoryClient), so that the
// heap and RSS this process measures are the server's alone and each
// process holds one side's descriptors: 10,000 connections cost 10,000 here
// and 10,000 there, under the 20,000 open files a process may have on the
// test machines.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/codec"
	"github.com/megaws/megaws/server"
)

// deflateMemCases are the configurations measured: the offer is the one
// Chromium and Node's ws send; msgs is the number of game ticks (~450 B)
// each connection sends and gets back before the measurement.
var deflateMemCases = []struct {
	name string
	bits int  // CompressionWindowBits; -1: compression off
	msgs int  // messages each way per connection
	big  bool // also measured with 10,000 connections
	race bool // also run under the race detector (2,000 connections)
	// heap is the most heap bytes per connection over plain connections;
	// rss, when set, the most bytes of server RSS per connection in all
	// (RSS is not asserted under the race detector, whose shadow memory
	// grows with the heap).
	heap, rss int
}{
	{name: "plain", bits: -1, msgs: 5, big: true, race: true},
	// Without takeover nothing is kept between messages: the agreed
	// parameters and two empty histories.
	{name: "window_0", bits: 0, msgs: 5, big: true, race: true, heap: 256, rss: 8 << 10},
	// A game server's window: at most 8 KiB of heap over plain (the goal),
	// 32 KiB of RSS in all (the bound).
	{name: "window_10", bits: 10, msgs: 5, big: true, race: true, heap: 8 << 10, rss: 32 << 10},
	{name: "window_12", bits: 12, msgs: 5, heap: 32 << 10, rss: 32 << 10},
	{name: "window_15", bits: 15, msgs: 5, big: true, heap: 32 << 10, rss: 32 << 10},
	// Enough traffic to fill both windows: the bound is the window, 2^bits
	// bytes per direction, plus the parameters. A full 15-bit window holds
	// 64 KiB per connection: more than 32 KiB of RSS by construction.
	{name: "window_10_full", bits: 10, msgs: 80, heap: 2<<10 + 512, rss: 32 << 10},
	{name: "window_15_full", bits: 15, msgs: 80, heap: 64<<10 + 512},
}

// deflateMemBudget bounds TestDeflateMemory: each case gets at most this
// long for its clients to connect and echo (they normally take seconds),
// and the test stops measuring when its deadline is nearer than that.
const deflateMemBudget = 2 * time.Minute

// TestDeflateMemory measures the server's heap and RSS per connection after
// each connection exchanged a few messages both ways, with compression off,
// without context takeover and with takeover at several windows, for 2,000
// connections and (unless -short) 10,000. The figures are logged and
// bounded by deflateMemCases. Under the race detector, which makes
// compression many times slower, it runs the race cases for 2,000
// connections only: the figures that count come from a build without it.
func TestDeflateMemory(t *testing.T) {
	counts := []int{2000, 10000}
	if testing.Short() || raceBuild() {
		counts = counts[:1]
	}
	if raceBuild() {
		t.Log("race detector: 2,000 connections, cases plain, window_0 and window_10, heap bounds only (window_10_full alone takes about 2 minutes under it)")
	}
	started := time.Now()
	for _, n := range counts {
		t.Run(fmt.Sprintf("conns_%d", n), func(t *testing.T) {
			var plain deflateMem
			for _, tc := range deflateMemCases {
				if (n > 2000 && !tc.big) || (raceBuild() && !tc.race) {
					continue
				}
				if d, ok := t.Deadline(); ok && time.Until(d) < deflateMemBudget+30*time.Second {
					t.Fatalf("%v left before the test deadline: not enough for %s (raise -timeout)", time.Until(d).Round(time.Second), tc.name)
				}
				t.Run(tc.name, func(t *testing.T) {
					caseStart := time.Now()
					m := measureDeflateMemory(t, n, tc.bits, tc.msgs)
					if tc.bits < 0 {
						plain = m
						t.Logf("%d plain connections: %.0f B of server heap and %.0f B of RSS each (%.1fs)", n, m.heap, m.rss, time.Since(caseStart).Seconds())
						return
					}
					over := m.heap - plain.heap
					t.Logf("%d connections, window %d, %d messages each way: %.0f B of server heap each, %.0f B over plain; %.0f B of RSS each, %.0f B over plain (client saw %s; %.1fs)",
						n, tc.bits, tc.msgs, m.heap, over, m.rss, m.rss-plain.rss, m.ext, time.Since(caseStart).Seconds())
					if plain.heap > 0 && over > float64(tc.heap) {
						t.Errorf("%.0f B of heap per connection over plain, want at most %d", over, tc.heap)
					}
					if tc.rss > 0 && !raceBuild() && m.rss > float64(tc.rss) {
						t.Errorf("%.0f B of RSS per connection, want at most %d", m.rss, tc.rss)
					}
				})
			}
		})
	}
	t.Logf("%v in all", time.Since(started).Round(time.Second))
}

// deflateMem is what measureDeflateMemory measured per connection, and the
// extension the clients negotiated.
type deflateMem struct {
	heap, rss float64
	ext       string
}

// measureDeflateMemory runs a server with window bits (-1: no compression),
// has a child process open n connections that each echo msgs game ticks, and
// returns the growth of the live heap and of RSS per connection. A first
// child with 64 connections warms the server up and leaves: what each loop
// allocates once for all its connections (the compressor and decompressor,
// read buffers) is not counted per connection.
func measureDeflateMemory(t *testing.T, n, bits, msgs int) deflateMem {
	cfg := server.Config{Loops: 2, PingInterval: -1, IdleTimeout: -1}
	offer := ""
	if bits >= 0 {
		cfg.Compression, cfg.CompressionWindowBits = true, bits
		offer = "permessage-deflate; client_max_window_bits"
	}
	s, addr := startServer(t, echo{}, cfg)
	start := liveHeap()
	stop, _ := startMemClients(t, s, addr, 64, msgs, offer)
	stop()
	before, rssBefore := liveHeap(), rss()
	if bits >= 0 {
		t.Logf("per-loop state after warm-up: %d KiB for %d loops", (int64(before)-int64(start))>>10, cfg.Loops)
	}
	msgsBefore := s.Stats().MessagesIn
	stop, ext := startMemClients(t, s, addr, n, msgs, offer)
	defer stop()
	// A loop publishes its counters after the event it handles, so the last
	// echoes may be out before the count of their messages.
	want := msgsBefore + uint64(n*msgs)
	if !waitFor(5*time.Second, func() bool { return s.Stats().MessagesIn == want }) {
		t.Fatalf("server received %d messages, want %d", s.Stats().MessagesIn-msgsBefore, n*msgs)
	}
	after, rssAfter := liveHeap(), rss()
	return deflateMem{
		heap: float64(int64(after)-int64(before)) / float64(n),
		rss:  float64(int64(rssAfter)-int64(rssBefore)) / float64(n),
		ext:  ext,
	}
}

// startMemClients starts a child process that opens n connections to s and
// echoes msgs messages on each, and waits until the server holds them all.
// stop ends the child and waits until the server closed every connection.
// The child gives up (and exits) after deflateMemBudget; the wait for it is
// bounded the same way.
func startMemClients(t *testing.T, s *server.Server, addr string, n, msgs int, offer string) (stop func(), ext string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDeflateMemoryClient$", "-test.timeout="+(deflateMemBudget+time.Minute).String())
	cmd.Env = append(os.Environ(), "MEGAWS_DEFLATE_MEM_CLIENT="+strings.Join([]string{addr, strconv.Itoa(n), strconv.Itoa(msgs), offer}, "|"))
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var status string
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			status = sc.Text()
		}
		close(done)
		_, _ = io.Copy(io.Discard, out)
	}()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		_ = in.Close()
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if !waitFor(30*time.Second, func() bool { return s.Conns() == 0 }) {
			t.Errorf("%d connections still open after the clients left", s.Conns())
		}
	}
	select {
	case <-done:
	case <-time.After(deflateMemBudget + 10*time.Second):
		stop()
		t.Fatalf("the client process did not report within %v (%d connections open)", deflateMemBudget+10*time.Second, s.Conns())
	}
	ext, ok := strings.CutPrefix(status, "ready ")
	if !ok {
		stop()
		t.Fatalf("client process: %q", status)
	}
	if !waitFor(10*time.Second, func() bool { return s.Conns() == n }) {
		stop()
		t.Fatalf("%d connections open, want %d", s.Conns(), n)
	}
	return stop, ext
}

// TestDeflateMemoryClient is the child process of TestDeflateMemory; it does
// nothing in a normal run. With MEGAWS_DEFLATE_MEM_CLIENT=ADDR|N|MSGS|OFFER
// it opens N connections to ADDR offering OFFER (none if empty), echoes MSGS
// game ticks on each (compressed as negotiated, with takeover when agreed),
// prints "ready EXTENSIONS" (or "error ...") and holds the connections until
// its standard input closes.
func TestDeflateMemoryClient(t *testing.T) {
	spec := os.Getenv("MEGAWS_DEFLATE_MEM_CLIENT")
	if spec == "" {
		return
	}
	f := strings.SplitN(spec, "|", 4)
	n, _ := strconv.Atoi(f[1])
	msgs, _ := strconv.Atoi(f[2])
	giveUp := time.AfterFunc(deflateMemBudget, func() {
		fmt.Printf("error: %d connections not open and echoed within %v\n", n, deflateMemBudget)
		os.Exit(1)
	})
	conns, ext, err := memClients(f[0], n, msgs, f[3])
	if !giveUp.Stop() {
		select {} // the timer is exiting the process
	}
	if err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("ready %s\n", ext)
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		_ = c.Close()
	}
	os.Exit(0)
}

// memClients opens n connections from 16 goroutines, spread over the source
// addresses 127.0.0.2-9, and echoes msgs game ticks on each.
func memClients(addr string, n, msgs int, offer string) ([]net.Conn, string, error) {
	conns := make([]net.Conn, n)
	var next atomic.Int64
	var ext atomic.Value
	var failed atomic.Bool // the first error stops every worker
	errc := make(chan error, 16)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			d := codec.NewWindowDeflater(1)
			var f codec.WindowInflater
			for {
				i := int(next.Add(1)) - 1
				if i >= n || failed.Load() {
					return
				}
				dialer := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+(i+w)%8))}}
				c, e, err := memClient(dialer, addr, msgs, offer, d, &f)
				if err != nil {
					failed.Store(true)
					errc <- fmt.Errorf("connection %d: %w", i, err)
					return
				}
				conns[i] = c
				ext.Store(e)
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errc:
		for _, c := range conns {
			if c != nil {
				_ = c.Close()
			}
		}
		return nil, "", err
	default:
	}
	e, _ := ext.Load().(string)
	return conns, strconv.Quote(e), nil
}

// memClient opens one connection and echoes msgs game ticks on it, with
// context takeover in each direction the response agrees to.
func memClient(dialer net.Dialer, addr string, msgs int, offer string, d *codec.WindowDeflater, f *codec.WindowInflater) (net.Conn, string, error) {
	c, err := dialer.Dial("tcp", addr)
	if err != nil {
		return nil, "", err
	}
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	extra := ""
	if offer != "" {
		extra = "Sec-WebSocket-Extensions: " + offer + "\r\n"
	}
	if _, err := c.Write([]byte(upgradeRequest("/", extra))); err != nil {
		c.Close()
		return nil, "", err
	}
	br := bufio.NewReaderSize(c, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		c.Close()
		return nil, "", fmt.Errorf("handshake: %v %v", resp, err)
	}
	ext := resp.Header.Get("Sec-WebSocket-Extensions")
	deflate := ext != ""
	var p pmdParams
	if deflate {
		if els := splitExtensions(ext); len(els) == 1 {
			p, err = parsePMD(els[0][1:], false)
		}
		if err != nil {
			c.Close()
			return nil, "", fmt.Errorf("extensions %q: %w", ext, err)
		}
	}
	out, in := codec.NewHistory(orBits(p.clientBits)), codec.NewHistory(orBits(p.serverBits))
	for i := range msgs {
		msg := gameState(i)
		var frame []byte
		if deflate {
			frame = clientFrame(ws.OpText, true, 0x4, d.AppendCompress(nil, &out, msg, !p.clientNoCtx))
		} else {
			frame = clientFrame(ws.OpText, true, 0, msg)
		}
		if _, err := c.Write(frame); err != nil {
			c.Close()
			return nil, "", err
		}
		h, err := ws.ReadHeader(br)
		if err != nil {
			c.Close()
			return nil, "", err
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(br, payload); err != nil {
			c.Close()
			return nil, "", err
		}
		if h.Rsv == 0x4 {
			if payload, err = f.Inflate(&in, payload, 1<<20, !p.serverNoCtx); err != nil {
				c.Close()
				return nil, "", err
			}
		}
		if !bytes.Equal(payload, msg) {
			c.Close()
			return nil, "", errors.New("echo differs")
		}
	}
	if br.Buffered() > 0 {
		c.Close()
		return nil, "", fmt.Errorf("%d unexpected bytes", br.Buffered())
	}
	_ = c.SetDeadline(time.Time{})
	return c, ext, nil
}
