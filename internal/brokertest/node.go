package brokertest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/megaws/megaws/server"
)

// Node is a megaws server of a test cluster. Its handler greets every
// connection with "id:" and the connection's GlobalID, and a connection on
// path /room/NAME joins room NAME.
type Node struct {
	S    *server.Server
	Addr string

	t       testing.TB
	errc    chan error
	stopped atomic.Bool
}

type nodeHandler struct {
	server.BaseHandler
	s atomic.Pointer[server.Server]
}

func (h *nodeHandler) OnOpen(c *server.Conn) {
	_ = c.WriteText([]byte("id:" + c.GlobalID()))
	if name, ok := strings.CutPrefix(c.Path(), "/room/"); ok {
		_ = h.s.Load().Room(name).Join(c)
	}
}

// StartNode runs a server with broker b on 127.0.0.1:0; cleanup stops it.
func StartNode(t testing.TB, b server.Broker, log *slog.Logger) *Node {
	t.Helper()
	h := &nodeHandler{}
	s := server.New(h, server.Config{Loops: 2, Broker: b, Logger: log})
	h.s.Store(s)
	n := &Node{S: s, t: t, errc: make(chan error, 1)}
	go func() { n.errc <- s.ListenAndServe("127.0.0.1:0") }()
	select {
	case <-s.Ready():
	case err := <-n.errc:
		t.Fatalf("ListenAndServe: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server did not start")
	}
	n.Addr = s.Addr().String()
	t.Cleanup(func() { n.Stop(3 * time.Second) })
	return n
}

// Stop stops the node, waiting at most grace for its connections' close
// handshakes (0: close them at once), and waits until ListenAndServe has
// returned, which closes the node's broker.
func (n *Node) Stop(grace time.Duration) {
	if !n.stopped.CompareAndSwap(false, true) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	_ = n.S.Stop(ctx)
	select {
	case err := <-n.errc:
		if err != nil {
			n.t.Errorf("ListenAndServe: %v", err)
		}
	case <-time.After(10 * time.Second):
		n.t.Error("server did not stop")
	}
}

// Client is a WebSocket client of a node (gobwas/ws).
type Client struct {
	ID string // from Dial: the GlobalID of its connection on the Node

	t    testing.TB
	conn net.Conn
	rw   io.ReadWriter
}

// Dial connects to a Node at addr on path and reads its id greeting.
func Dial(t testing.TB, addr, path string) *Client {
	t.Helper()
	c := DialPlain(t, addr, path)
	msg, err := c.Next(5 * time.Second)
	if err != nil || !strings.HasPrefix(msg, "id:") {
		t.Fatalf("dial %s%s: greeting %q, %v", addr, path, msg, err)
	}
	c.ID = msg[3:]
	return c
}

// DialPlain connects to any megaws server at addr on path.
func DialPlain(t testing.TB, addr, path string) *Client {
	t.Helper()
	d := ws.Dialer{Timeout: 5 * time.Second}
	conn, br, _, err := d.Dial(context.Background(), "ws://"+addr+path)
	if err != nil {
		t.Fatalf("dial %s%s: %v", addr, path, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	var r io.Reader = conn
	if br != nil {
		r = br
	}
	return &Client{ID: addr + path, t: t, conn: conn, rw: struct {
		io.Reader
		io.Writer
	}{r, conn}}
}

// Send sends one text message.
func (c *Client) Send(msg string) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := wsutil.WriteClientText(c.conn, []byte(msg)); err != nil {
		c.t.Fatalf("client %s: send: %v", c.ID, err)
	}
}

// Next returns the next data message, waiting at most timeout. Pings are
// answered on the way.
func (c *Client) Next(timeout time.Duration) (string, error) {
	_ = c.conn.SetDeadline(time.Now().Add(timeout)) // writes: pongs
	p, _, err := wsutil.ReadServerData(c.rw)
	return string(p), err
}

// Expect reads n messages (failing the test after timeout) and returns them.
func (c *Client) Expect(n int, timeout time.Duration) []string {
	c.t.Helper()
	var got []string
	deadline := time.Now().Add(timeout)
	for len(got) < n {
		m, err := c.Next(time.Until(deadline))
		if err != nil {
			c.t.Fatalf("client %s: %d of %d messages, then %v; got %q", c.ID, len(got), n, err, tail(got))
		}
		got = append(got, m)
	}
	return got
}

// Quiet fails the test if a message arrives within d.
func (c *Client) Quiet(d time.Duration) {
	c.t.Helper()
	m, err := c.Next(d)
	if err == nil {
		c.t.Fatalf("client %s: unexpected message %q", c.ID, m)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		c.t.Fatalf("client %s: %v while expecting silence", c.ID, err)
	}
}

// Closed waits until the server ends the connection (a close frame or EOF).
func (c *Client) Closed(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m, err := c.Next(time.Until(deadline))
		if err == nil {
			continue // messages queued before the close
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.t.Fatalf("client %s: still open after %v (last message %q)", c.ID, timeout, m)
		}
		return
	}
}

// Close sends a close frame and closes the TCP connection.
func (c *Client) Close() {
	_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_ = ws.WriteFrame(c.conn, ws.MaskFrameInPlace(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))))
	_ = c.conn.Close()
}

func tail(s []string) []string {
	if len(s) > 5 {
		return s[len(s)-5:]
	}
	return s
}
