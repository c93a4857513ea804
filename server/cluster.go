package server

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/codec"
)

// Broker connects the megaws nodes of a cluster through an existing message
// broker, so that Room.Publish, Room.PublishExcept, Server.Broadcast and
// Server.SendToID reach connections on every node. Implementations live in
// broker/nats and broker/redis; a Server gets one through Config.Broker.
//
// megaws publishes one broker message per publish (never one per recipient)
// and subscribes to a room's channel only while the node has members in it.
// Delivery is at most once: a message published while the broker is down or
// its buffers are full is dropped and counted (Stats.ClusterDrops); local
// members get it regardless.
type Broker interface {
	// Start connects and from then on delivers every message published on a
	// subscribed channel by the other nodes to deliver, in the order each
	// node published them on that channel; the node's own messages may be
	// delivered too (megaws ignores them), or not (NATS's no-echo). deliver is called
	// from the broker's goroutines; it does not block and does not keep msg.
	// Start must not block longer than connecting takes; an implementation
	// reconnects and resubscribes by itself after losing the broker.
	Start(deliver func(channel string, msg []byte)) error
	// Publish sends msg on channel. It must not block: when the broker is
	// unreachable or its outbound buffer is full it returns an error, and
	// the message is lost. msg is not retained.
	Publish(channel string, msg []byte) error
	// Subscribe and Unsubscribe change the channels delivered to this node.
	// They must not block; calls take effect in the order they were made.
	Subscribe(channel string) error
	Unsubscribe(channel string) error
	// Close disconnects; no delivery follows its return.
	Close() error
}

// Channel names. A broker implementation may prefix them; room names are
// escaped so that any name maps to a distinct channel of plain characters.
const (
	chanAll      = "all"
	chanRoomPfx  = "room."
	chanNodePfx  = "node."
	envelopeVers = 1
)

// Envelope kinds.
const (
	envRoom byte = iota + 1
	envAll
	envConn
)

// ClusterObserver is implemented by handlers that keep state the publishes
// describe (a game world, a shared board) and must apply the other nodes'
// publishes to it too: megaws delivers those to the local members itself,
// so without this the handler never sees them. OnRemotePublish is called
// for every room publish and broadcast that arrives from another node (room
// is "" for a broadcast), on the broker's goroutine, before the local
// members get it; it must not block, and payload is valid only until it
// returns. A panic in it is recovered and logged.
type ClusterObserver interface {
	OnRemotePublish(room string, op ws.OpCode, payload []byte)
}

// ErrClusterDrop is returned by publishes whose cross-node part could not be
// handed to the broker (the local part was delivered).
var ErrClusterDrop = errors.New("megaws: message not sent to the other nodes (broker unavailable)")

// cluster is a server's link to the other nodes.
type cluster struct {
	b     Broker
	node  [8]byte // this node's id, random per server
	nodeS string  // its hex form, as in GlobalID
	drops atomic.Uint64
	in    atomic.Uint64 // messages from other nodes delivered locally
	out   atomic.Uint64 // messages handed to the broker
}

func newCluster(b Broker) *cluster {
	c := &cluster{b: b}
	_, _ = rand.Read(c.node[:])
	c.nodeS = hex.EncodeToString(c.node[:])
	return c
}

// GlobalID returns an id for c that is unique across the nodes of a cluster
// ("<node>-<id>"), for Server.SendToID on any node. Any goroutine.
func (c *Conn) GlobalID() string {
	return c.l.s.nodeID() + "-" + strconv.FormatUint(c.id, 10)
}

// nodeID returns the node part of GlobalID.
func (s *Server) nodeID() string {
	if s.cluster != nil {
		return s.cluster.nodeS
	}
	return "local"
}

// SendToID sends one message to the connection whose GlobalID is id, on any
// node of the cluster (it needs Config.Broker: the per-loop index of
// connections by id exists only then). Any
// goroutine; it never blocks. It returns ErrClosed when id names a
// connection of this node that is gone, ErrClusterDrop when the broker could
// not take a message for another node, and ErrServerStopped after Stop.
// Delivery to another node is at most once.
func (s *Server) SendToID(id string, op ws.OpCode, payload []byte) error {
	if err := s.checkPublish(op, payload); err != nil {
		return err
	}
	node, num, ok := strings.Cut(id, "-")
	n, err := strconv.ParseUint(num, 10, 64)
	if !ok || err != nil {
		return fmt.Errorf("megaws: SendToID: malformed id %q", id)
	}
	cl := s.cluster
	if cl == nil {
		return errors.New("megaws: SendToID needs Config.Broker (without one, keep the *Conn)")
	}
	if node == cl.nodeS {
		if !s.sendToLocalID(n, op, payload) {
			return ErrClosed
		}
		return nil
	}
	return cl.publish(chanNodePfx+node, cl.envelope(envConn, "", n, op, payload))
}

// sendToLocalID queues a message for this node's connection id. It reports
// false when no loop can have it.
func (s *Server) sendToLocalID(id uint64, op ws.OpCode, payload []byte) bool {
	loops := s.loopList()
	idx := int(id & 0xff)
	if idx >= len(loops) {
		return false
	}
	l := loops[idx]
	n := codec.HeaderSize(len(payload), false) + len(payload)
	fb := getFrameBuf(n)
	*fb = codec.AppendFrame((*fb)[:0], op, true, payload)
	ok := l.postFn(func() {
		c := l.byID[id]
		if c == nil || c.state != stateOpen || l.queueFull(c) {
			putFrameBuf(fb)
			return
		}
		l.stats.msgsOut++
		l.stats.bytesOut += uint64(len(payload))
		l.writeOwned(c, fb)
	})
	if !ok {
		putFrameBuf(fb)
	}
	return ok && l.byID != nil
}

// roomChannel returns the channel of room name: letters, digits, '-' and '_'
// stay, every other byte becomes %XX.
func roomChannel(name string) string {
	var b strings.Builder
	b.Grow(len(chanRoomPfx) + len(name))
	b.WriteString(chanRoomPfx)
	const hexd = "0123456789ABCDEF"
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexd[c>>4])
		b.WriteByte(hexd[c&15])
	}
	return b.String()
}

// envelope: version, kind, origin node (8), opcode, then per kind:
// room: name length (2) + name; conn: connection id (8); then the payload.
func (cl *cluster) envelope(kind byte, room string, conn uint64, op ws.OpCode, payload []byte) []byte {
	n := 11 + len(payload)
	switch kind {
	case envRoom:
		n += 2 + len(room)
	case envConn:
		n += 8
	}
	b := make([]byte, 0, n)
	b = append(b, envelopeVers, kind)
	b = append(b, cl.node[:]...)
	b = append(b, byte(op))
	switch kind {
	case envRoom:
		b = binary.BigEndian.AppendUint16(b, uint16(len(room)))
		b = append(b, room...)
	case envConn:
		b = binary.BigEndian.AppendUint64(b, conn)
	}
	return append(b, payload...)
}

// observeRemote calls the handler's ClusterObserver, if any.
func (s *Server) observeRemote(room string, op ws.OpCode, payload []byte) {
	if s.clusterObs == nil {
		return
	}
	defer func() {
		if v := recover(); v != nil {
			if s.cfg.NoRecover {
				panic(v)
			}
			s.log.Error("megaws: recovered panic in OnRemotePublish", "panic", fmt.Sprint(v), "room", room)
		}
	}()
	s.clusterObs.OnRemotePublish(room, op, payload)
}

// publish hands one envelope to the broker; a failure is counted.
func (cl *cluster) publish(channel string, env []byte) error {
	if err := cl.b.Publish(channel, env); err != nil {
		cl.drops.Add(1)
		return ErrClusterDrop
	}
	cl.out.Add(1)
	return nil
}

// deliver takes a message from the broker: messages this node published are
// ignored (their local delivery already happened); the others are fanned
// out to the local recipients, encoded once for this node.
func (s *Server) deliver(channel string, msg []byte) {
	cl := s.cluster
	if len(msg) < 11 || msg[0] != envelopeVers || [8]byte(msg[2:10]) == cl.node {
		return
	}
	kind, op, rest := msg[1], ws.OpCode(msg[10]), msg[11:]
	if s.stopping.Load() {
		return
	}
	switch kind {
	case envAll:
		cl.in.Add(1)
		s.observeRemote("", op, rest)
		_ = s.fanoutTo(op, rest, fanTarget{})
	case envRoom:
		if len(rest) < 2 || len(rest) < 2+int(binary.BigEndian.Uint16(rest)) {
			return
		}
		n := int(binary.BigEndian.Uint16(rest))
		payload := rest[2+n:]
		if s.clusterObs != nil {
			s.observeRemote(string(rest[2:2+n]), op, payload)
		}
		s.roomsMu.Lock()
		st := s.rooms[string(rest[2:2+n])]
		s.roomsMu.Unlock()
		if st == nil {
			return // no local members (any more)
		}
		cl.in.Add(1)
		_ = s.fanoutTo(op, payload, fanTarget{room: st})
	case envConn:
		if len(rest) < 8 {
			return
		}
		id := binary.BigEndian.Uint64(rest)
		cl.in.Add(1)
		s.sendToLocalID(id, op, rest[8:])
	}
}
