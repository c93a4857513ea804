package loadgen

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/megaws/megaws/codec"
)

// pingPong sends one verifiable message per connection at open and another
// after each echo, until each connection has had rounds round trips.
type pingPong struct {
	NopHandler
	size   int
	rounds uint64
	buf    []byte
	done   *atomic.Int64
}

func (h *pingPong) send(c *Conn) {
	c.Stamps = []int64{time.Now().UnixNano()}
	FillPayload(h.buf, c.Seq, c.Stamps[0])
	c.Seq++
	c.Send(h.buf)
}

func (h *pingPong) OnOpen(c *Conn) { h.send(c) }

func (h *pingPong) OnMessage(c *Conn, pong bool, p []byte) {
	if pong {
		return
	}
	if err := CheckPayload(p, h.size, c.Next, c.Stamps[0]); err != nil {
		c.VerifyFailed(err)
		return
	}
	c.Next++
	if c.Next < h.rounds {
		h.send(c)
		return
	}
	h.done.Add(1)
	c.Close()
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestEchoVerified(t *testing.T) {
	// megaws itself is exercised end to end by package scenario, as a
	// separate process; here a plain gobwas/ws server answers.
	addr := rawServer(t, false, false)
	for _, size := range []int{PayloadHeader, 64, 125, 126, 1024, 65535, 65536, 300_000} {
		var done atomic.Int64
		cl, err := New(Config{
			Addr:      addr,
			Loops:     2,
			SourceIPs: []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")},
		}, func(*Loop) Handler { return &pingPong{size: size, rounds: 5, buf: make([]byte, size), done: &done} })
		if err != nil {
			t.Fatal(err)
		}
		const n = 50
		cl.Dial(n)
		waitFor(t, "echoes", 20*time.Second, func() bool { c := cl.Counters(); return c.Closed+c.VerifyErrors == n })
		c := cl.Counters()
		cl.Close()
		if c.Errors() != 0 || c.Recv != n*5 || done.Load() != n {
			t.Fatalf("size %d: counters %+v, errors %v", size, c, cl.Errors())
		}
	}
}

// corruptServer answers the handshake correctly and echoes every message
// with one payload byte flipped.
func corruptServer(t *testing.T, badAccept bool) string { return rawServer(t, badAccept, true) }

func rawServer(t *testing.T, badAccept, corrupt bool) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				br := bufio.NewReader(nc)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				key := []byte(req.Header.Get("Sec-WebSocket-Key"))
				if badAccept {
					key = append(key, 'x')
				}
				if _, err := nc.Write(codec.AppendUpgradeResponse(nil, key, "", "")); err != nil {
					return
				}
				for {
					var f ws.Frame
					if f.Header, err = ws.ReadHeader(br); err != nil {
						return
					}
					f.Payload = make([]byte, f.Header.Length)
					if _, err := io.ReadFull(br, f.Payload); err != nil {
						return
					}
					if f.Header.Masked {
						ws.Cipher(f.Payload, f.Header.Mask, 0)
					}
					if corrupt && len(f.Payload) > PayloadHeader {
						f.Payload[len(f.Payload)-1] ^= 0x20
					}
					if _, err := nc.Write(codec.AppendFrame(nil, f.Header.OpCode, true, f.Payload)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestWrongByteCounted(t *testing.T) {
	h := &pingPong{size: 64, rounds: 3, buf: make([]byte, 64), done: new(atomic.Int64)}
	cl, err := New(Config{Addr: corruptServer(t, false)}, func(*Loop) Handler { return h })
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cl.Dial(3)
	waitFor(t, "verify errors", 5*time.Second, func() bool { return cl.Counters().VerifyErrors == 3 })
	if c := cl.Counters(); c.Recv != 3 || c.Open != 0 {
		t.Fatalf("counters %+v", c)
	}
}

func TestBadAcceptFails(t *testing.T) {
	cl, err := New(Config{Addr: corruptServer(t, true)}, func(*Loop) Handler { return NopHandler{} })
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cl.Dial(4)
	waitFor(t, "failures", 5*time.Second, func() bool { return cl.Counters().Failed == 4 })
	if c := cl.Counters(); c.Established != 0 {
		t.Fatalf("counters %+v", c)
	}
}

func TestRefusedFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cl, err := New(Config{Addr: addr}, func(*Loop) Handler { return NopHandler{} })
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cl.Dial(2)
	waitFor(t, "failures", 5*time.Second, func() bool { return cl.Counters().Failed == 2 })
}

func TestIdleHoldsAndCloses(t *testing.T) {
	addr := rawServer(t, false, false)
	cl, err := New(Config{Addr: addr, SourceIPs: []netip.Addr{netip.MustParseAddr("127.0.0.5")}}, func(*Loop) Handler { return NopHandler{} })
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const n = 2000
	cl.Dial(n)
	waitFor(t, "open", 20*time.Second, func() bool { return cl.Counters().Open == n })
	cl.CloseAll()
	waitFor(t, "closed", 20*time.Second, func() bool { return cl.Counters().Closed == n })
	if c := cl.Counters(); c.Errors() != 0 {
		t.Fatalf("counters %+v %v", c, cl.Errors())
	}
}

// The fillers are specified byte by byte; the fast fill and check must
// agree with that definition for every start offset and across chunk
// boundaries, and text payloads must be ASCII.
func TestPayloadFillerMatchesDefinition(t *testing.T) {
	for _, text := range []bool{false, true} {
		hs := HeaderSize(text)
		for _, size := range []int{hs, hs + 1, 64, 1024, 16<<10 + hs + 300, 3*(16<<10) + 7} {
			for seq := uint64(0); seq < 300; seq += 7 {
				p := make([]byte, size)
				if text {
					FillTextPayload(p, seq, 42)
				} else {
					FillPayload(p, seq, 42)
				}
				for i := hs; i < size; i++ {
					want := byte(seq*13+1) + byte(7*(i-hs))
					if text {
						want = byte(0x20 + (int((seq*13+1)%95)+7*(i-hs))%95)
					}
					if p[i] != want {
						t.Fatalf("text %v size %d seq %d: byte %d is %#02x, want %#02x", text, size, seq, i, p[i], want)
					}
				}
				if text && !utf8.Valid(p) {
					t.Fatalf("size %d seq %d: text payload is not UTF-8", size, seq)
				}
				check := CheckPayload
				if text {
					check = CheckTextPayload
				}
				if err := check(p, size, seq, 42); err != nil {
					t.Fatalf("text %v size %d seq %d: %v", text, size, seq, err)
				}
				if err := check(p, size, seq+1, 42); err == nil {
					t.Fatalf("text %v size %d seq %d: wrong sequence accepted", text, size, seq)
				}
				if size > hs {
					i := hs + (size-hs)*2/3
					p[i] ^= 0x01
					err := check(p, size, seq, 42)
					if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("byte %d ", i)) {
						t.Fatalf("text %v size %d seq %d: corrupted byte %d: got %v", text, size, seq, i, err)
					}
				}
			}
		}
	}
}
