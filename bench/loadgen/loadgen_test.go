package loadgen

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/gorilla/websocket"

	"github.com/megaws/megaws/client/loop"
)

// pingPong sends one verifiable message per connection at open and another
// after each echo, until each connection has had rounds round trips.
type pingPong struct {
	loop.NopHandler
	text   bool
	size   int
	rounds uint64
	buf    []byte
	done   *atomic.Int64
}

func (h *pingPong) send(c *loop.Conn) {
	st := StateOf(c)
	st.Stamps = []int64{time.Now().UnixNano()}
	if h.text {
		FillTextPayload(h.buf, st.Seq, st.Stamps[0])
		c.Send(ws.OpText, h.buf)
	} else {
		FillPayload(h.buf, st.Seq, st.Stamps[0])
		c.Send(ws.OpBinary, h.buf)
	}
	st.Seq++
}

func (h *pingPong) OnOpen(c *loop.Conn) { h.send(c) }

func (h *pingPong) OnMessage(c *loop.Conn, op ws.OpCode, p []byte) {
	if op == ws.OpPong {
		return
	}
	st := StateOf(c)
	check := CheckPayload
	if h.text {
		check = CheckTextPayload
	}
	if err := check(p, h.size, st.Next, st.Stamps[0]); err != nil {
		VerifyFailed(c, err)
		return
	}
	st.Next++
	if st.Next < h.rounds {
		h.send(c)
		return
	}
	h.done.Add(1)
	c.Close(ws.StatusNormalClosure, "")
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

// gorillaEcho is a gorilla/websocket echo server, optionally corrupting the
// last byte of every echo.
func gorillaEcho(t *testing.T, corrupt bool) string {
	up := websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			op, p, err := c.ReadMessage()
			if err != nil {
				return
			}
			if corrupt && len(p) > PayloadHeader {
				p[len(p)-1] ^= 0x01
			}
			if err := c.WriteMessage(op, p); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestVerifiedEchoGorilla runs the harness's verification on the loop
// client against a gorilla/websocket server: every byte is checked.
func TestVerifiedEchoGorilla(t *testing.T) {
	addr := gorillaEcho(t, false)
	for _, tc := range []struct {
		size int
		text bool
	}{{size: PayloadHeader}, {size: 1024}, {size: 70_000}, {size: TextPayloadHeader, text: true}, {size: 5000, text: true}} {
		t.Run(fmt.Sprintf("%d text=%v", tc.size, tc.text), func(t *testing.T) {
			var done atomic.Int64
			p, err := loop.New(loop.Config{
				Addr:      addr,
				Loops:     2,
				SourceIPs: []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")},
			}, func(*loop.Loop) loop.Handler {
				return &pingPong{text: tc.text, size: tc.size, rounds: 5, buf: make([]byte, tc.size), done: &done}
			})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			const n = 40
			p.Dial(n)
			waitFor(t, "echoes", 20*time.Second, func() bool { c := p.Counters(); return c.Closed+c.Aborted+c.Dropped == n })
			if c := p.Counters(); c.Errors() != 0 || c.Recv != n*5 || done.Load() != n {
				t.Fatalf("counters %+v, errors %v", c, p.Errors())
			}
		})
	}
}

func TestWrongByteAborts(t *testing.T) {
	h := &pingPong{size: 64, rounds: 3, buf: make([]byte, 64), done: new(atomic.Int64)}
	p, err := loop.New(loop.Config{Addr: gorillaEcho(t, true)}, func(*loop.Loop) loop.Handler { return h })
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Dial(3)
	waitFor(t, "verify errors", 5*time.Second, func() bool { return p.Counters().Aborted == 3 })
	if c := p.Counters(); c.Recv != 3 || c.Open != 0 {
		t.Fatalf("counters %+v", c)
	}
	for msg := range p.Errors() {
		if !strings.HasPrefix(msg, "verify: byte ") {
			t.Errorf("error %q", msg)
		}
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
