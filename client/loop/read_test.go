//go:build linux

package loop_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/megaws/megaws/client"
	"github.com/megaws/megaws/client/loop"
	"github.com/megaws/megaws/codec"
)

// TestReadsResumeAfterShortReads: a loop stops reading a socket once a read
// comes back short (no read(2) spent on EAGAIN), so everything that arrives
// later must raise an event of its own. The server here sends a ping one
// byte at a time, a large message in one write, then a message and its FIN in
// one go; every part must be handled, and the FIN after the message.
func TestReadsResumeAfterShortReads(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	big := bytes.Repeat([]byte("0123456789abcdef"), 40<<10) // 640 KiB: more than one read buffer
	serverErr := make(chan error, 1)
	go func() {
		serverErr <- func() error {
			nc, err := ln.Accept()
			if err != nil {
				return err
			}
			defer nc.Close()
			_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
			br := bufio.NewReader(nc)
			req, err := http.ReadRequest(br)
			if err != nil {
				return err
			}
			if _, err := nc.Write(codec.AppendUpgradeResponse(nil, []byte(req.Header.Get("Sec-WebSocket-Key")), "", "")); err != nil {
				return err
			}
			// A ping, byte by byte, each byte a segment of its own.
			for _, b := range codec.AppendFrame(nil, ws.OpPing, true, []byte("slow ping")) {
				if _, err := nc.Write([]byte{b}); err != nil {
					return err
				}
				time.Sleep(2 * time.Millisecond)
			}
			h, err := ws.ReadHeader(br)
			if err != nil {
				return err
			}
			p := make([]byte, h.Length)
			if _, err := io.ReadFull(br, p); err != nil {
				return err
			}
			ws.Cipher(p, h.Mask, 0)
			if h.OpCode != ws.OpPong || string(p) != "slow ping" {
				return errors.New("no pong for the byte-by-byte ping")
			}
			// A large message in one write: the loop's reads fill its
			// buffer, and it must go on reading until one comes back
			// short, since nothing more arrives until it answers.
			if _, err := nc.Write(codec.AppendFrame(nil, ws.OpBinary, true, big)); err != nil {
				return err
			}
			if h, err = ws.ReadHeader(br); err != nil {
				return err
			}
			if _, err := io.CopyN(io.Discard, br, h.Length); err != nil || h.OpCode != ws.OpText {
				return errors.New("no answer to the large message")
			}
			// A last message and the FIN right behind it.
			if _, err := nc.Write(codec.AppendFrame(nil, ws.OpText, true, []byte("last"))); err != nil {
				return err
			}
			return nc.(*net.TCPConn).CloseWrite()
		}()
	}()
	rec := &acker{}
	p, err := loop.New(loop.Config{Addr: ln.Addr().String()}, func(*loop.Loop) loop.Handler { return rec })
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Dial(1)
	waitFor(t, "the server's FIN", 20*time.Second, func() bool { return rec.numCloses() == 1 })
	if err := <-serverErr; err != nil {
		t.Fatalf("server: %v", err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	// OnMessage also sees pongs, none here: the big message, then "last".
	if len(rec.msgs) != 2 || rec.msgs[0] != string(big) || rec.msgs[1] != "last" {
		t.Fatalf("got %d messages, want the 640 KiB one and %q", len(rec.msgs), "last")
	}
	var ce *client.CloseError
	if err := rec.closes[0]; !errors.As(err, &ce) || ce.Code != ws.StatusAbnormalClosure || !errors.Is(err, io.EOF) {
		t.Fatalf("OnClose got %v, want 1006 with EOF", err)
	}
	if c := p.Counters(); c.Pings != 1 || c.Recv != 2 || c.Sent != 1 {
		t.Fatalf("counters %+v", c)
	}
}

// acker is a recorder that answers every binary message.
type acker struct{ recorder }

func (a *acker) OnMessage(c *loop.Conn, op ws.OpCode, p []byte) {
	a.recorder.OnMessage(c, op, p)
	if op == ws.OpBinary {
		c.Send(ws.OpText, []byte("got it"))
	}
}
