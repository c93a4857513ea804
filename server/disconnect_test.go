package server_test

// Hostile and unlucky peers over the life of a connection: slowloris
// handshakes, frame bombs, ping floods, slow readers, abrupt disconnects,
// connection churn and a graceful Stop. Each test keeps a healthy connection
// echoing through the attack, and checks that what the attack cost (fds,
// heap, goroutines) is given back.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/server"
)

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
