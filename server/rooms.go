package server

import (
	"sync"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/codec"
)

// Room is a named set of connections that receive the same messages: a match,
// a lobby, a topic. Membership is kept per event loop and changed only on the
// member's loop, so joining, leaving and publishing need no lock on the hot
// path; a connection leaves all its rooms automatically when it closes.
//
// All methods are safe from any goroutine. Join and Leave take effect on the
// connection's loop in order with its other events, so a message published
// after Join returns reaches the new member.
type Room struct {
	s     *Server
	name  string
	loops []roomLoop // indexed by Loop.Index
}

// roomLoop is a room's members on one loop; only that loop touches it.
type roomLoop struct {
	members []*Conn
	index   map[*Conn]int
}

// Room returns the room called name, creating it on first use. Any goroutine.
func (s *Server) Room(name string) *Room {
	s.roomsMu.Lock()
	defer s.roomsMu.Unlock()
	if r := s.rooms[name]; r != nil {
		return r
	}
	if s.rooms == nil {
		s.rooms = make(map[string]*Room)
	}
	r := &Room{s: s, name: name, loops: make([]roomLoop, s.cfg.Loops)}
	s.rooms[name] = r
	return r
}

// Name returns the room's name.
func (r *Room) Name() string { return r.name }

// Join adds c to the room. Any goroutine.
func (r *Room) Join(c *Conn) { r.onLoop(c, r.join) }

// Leave removes c from the room. Any goroutine.
func (r *Room) Leave(c *Conn) { r.onLoop(c, r.leave) }

func (r *Room) onLoop(c *Conn, fn func(*Conn)) {
	c.l.postFn(func() { fn(c) })
}

func (r *Room) join(c *Conn) {
	if c.state != stateOpen {
		return
	}
	rl := &r.loops[c.l.idx]
	if _, ok := rl.index[c]; ok {
		return
	}
	if rl.index == nil {
		rl.index = make(map[*Conn]int)
	}
	rl.index[c] = len(rl.members)
	rl.members = append(rl.members, c)
	e := c.extState()
	e.rooms = append(e.rooms, r)
}

func (r *Room) leave(c *Conn) {
	r.remove(c)
	if c.ext != nil {
		rs := c.ext.rooms
		for i, x := range rs {
			if x == r {
				rs[i] = rs[len(rs)-1]
				c.ext.rooms = rs[:len(rs)-1]
				break
			}
		}
	}
}

// remove drops c from the member list of its loop (swap with the last).
func (r *Room) remove(c *Conn) {
	rl := &r.loops[c.l.idx]
	i, ok := rl.index[c]
	if !ok {
		return
	}
	last := len(rl.members) - 1
	rl.members[i] = rl.members[last]
	rl.index[rl.members[i]] = i
	rl.members[last] = nil
	rl.members = rl.members[:last]
	delete(rl.index, c)
}

// leaveAll removes a closing connection from all its rooms, on its loop.
func (c *Conn) leaveAll() {
	if c.ext == nil {
		return
	}
	for _, r := range c.ext.rooms {
		r.remove(c)
	}
	c.ext.rooms = nil
}

// Len returns the number of members. It visits every loop, so it is meant
// for dashboards, not hot paths; members joining concurrently may be missed.
func (r *Room) Len() int {
	n := 0
	r.s.mu.Lock()
	loops := r.s.loops
	r.s.mu.Unlock()
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, l := range loops {
		wg.Add(1)
		ok := l.postFn(func() {
			defer wg.Done()
			mu.Lock()
			n += len(r.loops[l.idx].members)
			mu.Unlock()
		})
		if !ok {
			wg.Done()
		}
	}
	wg.Wait()
	return n
}

// Publish sends one message to every member. Any goroutine; it never blocks.
// The frame is encoded once and shared by every recipient: each event loop
// writes the same bytes to its members (see Server.Broadcast). payload is
// copied before Publish returns.
func (r *Room) Publish(op ws.OpCode, payload []byte) error {
	return r.s.fanoutTo(op, payload, fanTarget{room: r})
}

// PublishExcept is Publish to every member but except (typically the sender).
func (r *Room) PublishExcept(except *Conn, op ws.OpCode, payload []byte) error {
	return r.s.fanoutTo(op, payload, fanTarget{room: r, except: except})
}

// each calls fn for every member on loop l. It walks the members from the
// end: a write that fails closes its connection, which removes it by moving
// the last member into its slot — a member already visited.
func (r *Room) each(l *Loop, fn func(*Conn)) {
	m := &r.loops[l.idx].members
	for i := len(*m) - 1; i >= 0; i-- {
		if i < len(*m) {
			fn((*m)[i])
		}
	}
}

// SendTo sends one message to each of conns, encoded once. Any goroutine.
func (s *Server) SendTo(conns []*Conn, op ws.OpCode, payload []byte) error {
	byLoop := make([][]*Conn, s.cfg.Loops)
	for _, c := range conns {
		byLoop[c.l.idx] = append(byLoop[c.l.idx], c)
	}
	return s.fanout(op, payload, func(l *Loop, f *sharedFrame, n int) {
		for _, c := range byLoop[l.idx] {
			l.writeSharedTo(c, f, n)
		}
	})
}

// Broadcast sends one message to every open connection of the server. Any
// goroutine; it never blocks. The message is encoded once and the same bytes
// are written to every connection by its own event loop, with no
// per-recipient copy or allocation (gnet copies only what a slow socket does
// not accept at once, and the write-queue limit bounds that). payload is
// copied before Broadcast returns.
func (s *Server) Broadcast(op ws.OpCode, payload []byte) error {
	return s.fanoutTo(op, payload, fanTarget{})
}

// fanoutTo encodes one frame and queues it on every loop for target. The
// loops coalesce consecutive fan-outs to the same target: each recipient then
// gets all of them with one writev (see Loop.deliverBatch).
func (s *Server) fanoutTo(op ws.OpCode, payload []byte, target fanTarget) error {
	loops, f, err := s.encodeShared(op, payload)
	for _, l := range loops {
		if !l.post(task{frame: f, target: target}) {
			f.release()
		}
	}
	return err
}

// fanout encodes one frame and runs deliver on every loop with it; the frame
// returns to the pool when the last loop is done.
func (s *Server) fanout(op ws.OpCode, payload []byte, deliver func(l *Loop, f *sharedFrame, n int)) error {
	loops, f, err := s.encodeShared(op, payload)
	for _, l := range loops {
		ok := l.postFn(func() {
			deliver(l, f, f.n)
			f.release()
		})
		if !ok {
			f.release()
		}
	}
	return err
}

// encodeShared encodes payload once as a frame holding one reference per
// event loop, and returns the loops to hand it to (none when the server has
// not started or the payload is an over-long control frame).
func (s *Server) encodeShared(op ws.OpCode, payload []byte) ([]*Loop, *sharedFrame, error) {
	if op.IsControl() && len(payload) > codec.MaxControlPayload {
		return nil, nil, ErrControlTooLong
	}
	s.mu.Lock()
	loops := s.loops
	s.mu.Unlock()
	if len(loops) == 0 {
		return nil, nil, nil
	}
	f := &sharedFrame{buf: getFrameBuf(codec.HeaderSize(len(payload), false) + len(payload)), n: len(payload)}
	*f.buf = codec.AppendFrame((*f.buf)[:0], op, true, payload)
	f.refs.Store(int32(len(loops)))
	return loops, f, nil
}
