package server_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/server"
)

// memHub is an in-process stand-in for a pub/sub broker with the semantics
// the Broker interface asks for (per-channel order, fan-out to subscribers,
// no persistence). It tests megaws's side of the contract; broker/nats and
// broker/redis are tested against real brokers.
type memHub struct {
	mu    sync.Mutex
	nodes []*memBroker
}

type memBroker struct {
	hub     *memHub
	mu      sync.Mutex
	subs    map[string]bool
	deliver func(string, []byte)
	down    atomic.Bool
	ops     []string // subscription changes, in order
}

func (h *memHub) broker() *memBroker {
	b := &memBroker{hub: h, subs: map[string]bool{}}
	h.mu.Lock()
	h.nodes = append(h.nodes, b)
	h.mu.Unlock()
	return b
}

func (b *memBroker) Start(deliver func(string, []byte)) error {
	b.mu.Lock()
	b.deliver = deliver
	b.mu.Unlock()
	return nil
}

func (b *memBroker) Publish(channel string, msg []byte) error {
	if b.down.Load() {
		return errors.New("broker down")
	}
	b.hub.mu.Lock()
	defer b.hub.mu.Unlock()
	for _, n := range b.hub.nodes {
		n.mu.Lock()
		if n.subs[channel] && n.deliver != nil {
			n.deliver(channel, append([]byte(nil), msg...))
		}
		n.mu.Unlock()
	}
	return nil
}

func (b *memBroker) Subscribe(channel string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.subs[channel] = true
	b.ops = append(b.ops, "+"+channel)
	return nil
}

func (b *memBroker) Unsubscribe(channel string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.subs, channel)
	b.ops = append(b.ops, "-"+channel)
	return nil
}

func (b *memBroker) Close() error { return nil }

func (b *memBroker) subscribed(channel string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.subs[channel]
}

// clusterNode is a server of a test cluster whose connections join room
// "r" on open.
type clusterNode struct {
	s     *server.Server
	addr  string
	conns chan *server.Conn
}

func startNode(t *testing.T, b server.Broker) *clusterNode {
	n := &clusterNode{conns: make(chan *server.Conn, 16)}
	var sp atomic.Pointer[server.Server]
	h := &funcHandler{onOpen: func(c *server.Conn) {
		if c.Path() == "/room" {
			_ = sp.Load().Room("r").Join(c)
		}
		n.conns <- c
	}}
	n.s, n.addr = startServer(t, h, server.Config{Loops: 2, Broker: b})
	sp.Store(n.s)
	return n
}

// TestClusterDelivery: two nodes on one broker. Room publishes and
// broadcasts reach the members of both nodes exactly once, SendToID reaches a
// connection on the other node, a node subscribes to a room only while it
// has members there, and a broker outage costs the other nodes their copy
// (counted) but not the local members theirs.
func TestClusterDelivery(t *testing.T) {
	hub := &memHub{}
	ba, bb := hub.broker(), hub.broker()
	a, b := startNode(t, ba), startNode(t, bb)
	ca, cb := dialRaw(t, a.addr), dialRaw(t, b.addr)
	ca.handshake("/room")
	cb.handshake("/room")
	srvA, srvB := <-a.conns, <-b.conns
	if !waitFor(5*time.Second, func() bool { return a.s.Room("r").Len() == 1 && b.s.Room("r").Len() == 1 }) {
		t.Fatal("members did not join")
	}
	if !ba.subscribed("room.r") || !bb.subscribed("room.r") {
		t.Fatal("nodes with members are not subscribed to the room")
	}
	for i := range 3 {
		msg := []byte{'p', byte('0' + i)}
		if err := a.s.Room("r").Publish(ws.OpText, msg); err != nil {
			t.Fatal(err)
		}
		for _, c := range []*rawConn{ca, cb} {
			if f := c.mustFrame(); string(f.payload) != string(msg) {
				t.Fatalf("got %q, want %q", f.payload, msg)
			}
		}
	}
	_ = b.s.Room("r").PublishExcept(srvB, ws.OpText, []byte("except"))
	if f := ca.mustFrame(); string(f.payload) != "except" {
		t.Fatalf("member on the other node: %q", f.payload)
	}
	_ = b.s.Broadcast(ws.OpText, []byte("all"))
	for _, c := range []*rawConn{ca, cb} {
		if f := c.mustFrame(); string(f.payload) != "all" {
			t.Fatalf("broadcast: %q", f.payload)
		}
	}
	if err := b.s.SendToID(srvA.GlobalID(), ws.OpText, []byte("direct")); err != nil {
		t.Fatal(err)
	}
	if f := ca.mustFrame(); string(f.payload) != "direct" {
		t.Fatalf("SendToID: %q", f.payload)
	}
	// Nothing more: no duplicate, and cb got no "except" and no "direct".
	ca.expectQuiet(100 * time.Millisecond)
	cb.expectQuiet(100 * time.Millisecond)

	// The broker goes down: local members still get the message, the
	// other node does not, and the drop is counted.
	bb.down.Store(true)
	if err := b.s.Room("r").Publish(ws.OpText, []byte("local")); !errors.Is(err, server.ErrClusterDrop) {
		t.Fatalf("publish with the broker down: %v", err)
	}
	if f := cb.mustFrame(); string(f.payload) != "local" {
		t.Fatalf("local member: %q", f.payload)
	}
	ca.expectQuiet(100 * time.Millisecond)
	if st := b.s.Stats(); st.ClusterDrops != 1 {
		t.Fatalf("ClusterDrops %d", st.ClusterDrops)
	}
	bb.down.Store(false)

	// The last local member leaves: the node unsubscribes.
	cb.closeNormal()
	if !waitFor(5*time.Second, func() bool { return !bb.subscribed("room.r") }) {
		t.Fatal("node without members still subscribed to the room")
	}
	if st := a.s.Stats(); st.ClusterIn == 0 || st.ClusterOut == 0 {
		t.Fatalf("cluster counters %+v", st)
	}
}
