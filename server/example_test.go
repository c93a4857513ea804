package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"strconv"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/megaws/megaws/server"
)

// echoServer sends every message back to its sender.
type echoServer struct{ server.BaseHandler }

// OnMessage runs on the connection's event loop. p is borrowed: WriteMessage
// copies it into the outgoing frame before returning, so no Clone is needed.
func (echoServer) OnMessage(c *server.Conn, op ws.OpCode, p []byte) {
	_ = c.WriteMessage(op, p)
}

// Embedding megaws: a Handler, a Config (the zero value is ready to use), and
// an address. The client here is gobwas/ws's dialer.
func ExampleServer() {
	s := server.New(echoServer{}, server.Config{})
	go func() {
		if err := s.ListenAndServe("127.0.0.1:0"); err != nil {
			log.Print(err)
		}
	}()
	<-s.Ready()
	defer stopServer(s)

	conn := dial(s.Addr().String(), "/")
	defer conn.Close()
	if err := wsutil.WriteClientText(conn, []byte("hello, megaws")); err != nil {
		log.Fatal(err)
	}
	msg, err := wsutil.ReadServerText(conn)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", msg)
	// Output: hello, megaws
}

// lobby puts every connection in one room and relays each message to all of
// its members, the sender included.
type lobby struct {
	server.BaseHandler
	room *server.Room
}

func (h *lobby) OnOpen(c *server.Conn) { h.room.Join(c) } // left automatically on close

func (h *lobby) OnMessage(_ *server.Conn, op ws.OpCode, p []byte) {
	// Publish encodes the frame once; every member's loop writes the same bytes.
	_ = h.room.Publish(op, p)
}

// A room: join in OnOpen, publish to every member from any goroutine.
func ExampleRoom() {
	h := &lobby{}
	s := server.New(h, server.Config{})
	h.room = s.Room("lobby")
	go func() { _ = s.ListenAndServe("127.0.0.1:0") }()
	<-s.Ready()
	defer stopServer(s)

	alice := dial(s.Addr().String(), "/")
	defer alice.Close()
	bob := dial(s.Addr().String(), "/")
	defer bob.Close()
	waitMembers(h.room, 2)

	_ = wsutil.WriteClientText(alice, []byte("alice: hi all"))
	for _, c := range []net.Conn{alice, bob} {
		msg, err := wsutil.ReadServerText(c)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s\n", msg)
	}

	// The server itself may publish too, from any goroutine.
	_ = h.room.Publish(ws.OpText, []byte("server: round starts"))
	msg, _ := wsutil.ReadServerText(bob)
	fmt.Printf("%s\n", msg)
	// Output:
	// alice: hi all
	// alice: hi all
	// server: round starts
}

// turnTimer gives each player 200 ms to make a move after connecting; a
// player who moves in time cancels the timer, one who doesn't is closed.
type turnTimer struct{ server.BaseHandler }

func (turnTimer) OnOpen(c *server.Conn) {
	// The timer runs on c's loop, like the callbacks, so it may use c's
	// context without locks; it never fires once c has closed.
	t := c.AfterFunc(200*time.Millisecond, func(c *server.Conn) {
		_ = c.Close(4000, "too slow")
	})
	c.SetContext(t)
}

func (turnTimer) OnMessage(c *server.Conn, _ ws.OpCode, _ []byte) {
	if t, ok := c.Context().(*server.Timer); ok && t.Stop() {
		_ = c.WriteText([]byte("move accepted"))
	}
}

// Per-connection timers: Conn.AfterFunc schedules a callback on the
// connection's event loop, Timer.Stop cancels it.
func ExampleConn_AfterFunc() {
	s := server.New(turnTimer{}, server.Config{})
	go func() { _ = s.ListenAndServe("127.0.0.1:0") }()
	<-s.Ready()
	defer stopServer(s)

	quick := dial(s.Addr().String(), "/")
	defer quick.Close()
	_ = wsutil.WriteClientText(quick, []byte("e2e4"))
	msg, _ := wsutil.ReadServerText(quick)
	fmt.Printf("quick player: %s\n", msg)

	slow := dial(s.Addr().String(), "/")
	defer slow.Close()
	_, err := wsutil.ReadServerText(slow) // says nothing, then reads
	var closed wsutil.ClosedError
	if errors.As(err, &closed) {
		fmt.Printf("slow player: closed %d %q\n", closed.Code, closed.Reason)
	}
	// Output:
	// quick player: move accepted
	// slow player: closed 4000 "too slow"
}

// game updates its players at a fixed rate. Each event loop ticks the players
// it owns, so per-player state (the context) needs no lock.
type game struct{ server.BaseHandler }

type playerState struct{ frame int }

func (game) OnOpen(c *server.Conn) { c.SetContext(&playerState{}) }

// OnTick implements server.Ticker: it runs on every loop each TickInterval.
func (game) OnTick(l *server.Loop) {
	l.Each(func(c *server.Conn) {
		p := c.Context().(*playerState)
		p.frame++
		_ = c.WriteText([]byte("frame " + strconv.Itoa(p.frame)))
	})
}

// A server tick: a Handler that implements Ticker gets OnTick on every event
// loop each Config.TickInterval, the place for a game's fixed-rate update.
func ExampleTicker() {
	s := server.New(game{}, server.Config{TickInterval: 20 * time.Millisecond})
	go func() { _ = s.ListenAndServe("127.0.0.1:0") }()
	<-s.Ready()
	defer stopServer(s)

	conn := dial(s.Addr().String(), "/")
	defer conn.Close()
	for range 3 {
		msg, err := wsutil.ReadServerText(conn)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s\n", msg)
	}
	// Output:
	// frame 1
	// frame 2
	// frame 3
}

// dial opens a WebSocket client connection with gobwas/ws's dialer.
func dial(addr, path string) net.Conn {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, br, _, err := ws.Dial(ctx, "ws://"+addr+path)
	if err != nil {
		log.Fatal(err)
	}
	if br != nil {
		// The server wrote right after its 101 and the dialer read ahead.
		return bufferedConn{conn, br}
	}
	return conn
}

type bufferedConn struct {
	net.Conn
	r io.Reader
}

func (c bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// waitMembers waits until room has n members: Join takes effect on the
// member's loop a moment after OnOpen.
func waitMembers(room *server.Room, n int) {
	for deadline := time.Now().Add(5 * time.Second); room.Len() < n && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
}

// stopServer stops s gracefully: close 1001 to every client still connected.
func stopServer(s *server.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = s.Stop(ctx)
}
