package server

import (
	"sync"
	"sync/atomic"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/codec"
)

// Room is a named set of connections that receive the same messages: a match,
// a lobby, a topic. Membership is kept per event loop and changed only on the
// member's loop, so joining, leaving and publishing need no lock on the hot
// path; a connection leaves all its rooms automatically when it closes.
//
// A room exists only while it has members: the server keeps nothing for a
// name nobody is in, so short-lived rooms (matches) cost nothing once they
// are empty again. A *Room is a handle on the name; it stays usable after the
// room emptied and is filled again.
//
// All methods are safe from any goroutine, event-loop callbacks included,
// and none of them waits for a loop. Join and Leave take effect on the
// connection's loop in order with its other events, so a message published
// after Join returns reaches the new member.
type Room struct {
	s    *Server
	name string
	st   atomic.Pointer[roomState] // the state last seen; re-resolved once dead
}

// roomState is a room while it has members (or joins in flight).
type roomState struct {
	room *Room // the handle Server.Room returns while the state lives
	// refs counts members plus joins queued on a loop; the state is
	// dropped from the server when it reaches zero.
	refs    atomic.Int64
	members atomic.Int64
	dead    atomic.Bool
	// mu guards the member lists against Members, which reads them from any
	// goroutine; the loops write them under it (joins and leaves, not the hot
	// path) and read their own without it.
	mu    sync.Mutex
	loops []roomLoop // indexed by Loop.Index
}

// roomLoop is a room's share of one loop.
type roomLoop struct {
	// refs counts members and queued joins on this loop: fan-outs are
	// queued only on loops where it is positive.
	refs    atomic.Int32
	members []*Conn // loop only
	log     *fanLog // loop only: frames its congested members wait for
}

// membership is a room a connection is in and its index in the room's
// member list on the connection's loop.
type membership struct {
	st  *roomState
	idx int
}

// Room returns the room called name. Any goroutine. It allocates nothing for
// a room that has members; for one that has none it returns a fresh handle
// and stores nothing.
func (s *Server) Room(name string) *Room {
	s.roomsMu.Lock()
	st := s.rooms[name]
	s.roomsMu.Unlock()
	if st != nil {
		return st.room
	}
	return &Room{s: s, name: name}
}

// Name returns the room's name.
func (r *Room) Name() string { return r.name }

// state returns the room's live state, or nil when it has no members.
func (r *Room) state() *roomState {
	if st := r.st.Load(); st != nil && !st.dead.Load() {
		return st
	}
	r.s.roomsMu.Lock()
	st := r.s.rooms[r.name]
	r.s.roomsMu.Unlock()
	if st != nil {
		r.st.Store(st)
	}
	return st
}

// Join adds c to the room. Any goroutine. It returns ErrClosed when c is
// already closed and ErrServerStopped once Stop was called; joining a room
// c is in already does nothing.
func (r *Room) Join(c *Conn) error {
	s := r.s
	if s.stopping.Load() {
		return ErrServerStopped
	}
	if c.closed() {
		return ErrClosed
	}
	s.roomsMu.Lock()
	st := s.rooms[r.name]
	if st == nil {
		st = &roomState{room: r, loops: make([]roomLoop, s.cfg.Loops)}
		if s.rooms == nil {
			s.rooms = make(map[string]*roomState)
		}
		s.rooms[r.name] = st
		if s.cluster != nil {
			_ = s.cluster.b.Subscribe(roomChannel(r.name))
		}
	}
	st.refs.Add(1)
	st.loops[c.l.idx].refs.Add(1)
	s.roomsMu.Unlock()
	r.st.Store(st)
	if !c.l.postFn(func() { st.join(c) }) {
		st.release(s, c.l)
		return ErrServerStopped
	}
	return nil
}

// Leave removes c from the room. Any goroutine; leaving a room c is not in
// does nothing. It returns ErrClosed when c is already closed (it left every
// room then).
func (r *Room) Leave(c *Conn) error {
	if c.closed() {
		return ErrClosed
	}
	name := r.name
	c.l.postFn(func() {
		if c.ext == nil {
			return
		}
		for _, m := range c.ext.rooms {
			if m.st.room.name == name {
				m.st.leave(c)
				return
			}
		}
	})
	return nil
}

// Len returns the number of members. Any goroutine; it reads one counter, so
// it is cheap enough for hot paths. Joins and leaves still queued on a loop
// are not counted yet.
func (r *Room) Len() int {
	st := r.state()
	if st == nil {
		return 0
	}
	return int(st.members.Load())
}

// Members returns the room's members, on every loop. Any goroutine, event
// loop callbacks included: it never waits for a loop (it copies the member
// lists under the room's lock). Joins and leaves still queued are not
// reflected; a member may close right after the call. Use Each to act on
// the members from their own loops.
func (r *Room) Members() []*Conn {
	st := r.state()
	if st == nil {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make([]*Conn, 0, st.members.Load())
	for i := range st.loops {
		out = append(out, st.loops[i].members...)
	}
	return out
}

// Each runs fn(c) for every member c, each on c's own event loop (so fn may
// use the loop-only methods of c), in order with the loop's other work. Any
// goroutine; it never blocks: fn runs later, once per member present when
// its loop gets to it. It returns ErrServerStopped after Stop. fn must not
// block; a panic in it closes that member with 1011.
func (r *Room) Each(fn func(c *Conn)) error {
	s := r.s
	if s.stopping.Load() {
		return ErrServerStopped
	}
	st := r.state()
	if st == nil {
		return nil
	}
	for _, l := range s.loopList() {
		if st.loops[l.idx].refs.Load() == 0 {
			continue
		}
		l.postFn(func() {
			st.each(l, func(c *Conn) {
				if c.state == stateOpen {
					l.callConn(cbRoomEach, c, fn)
				}
			})
		})
	}
	return nil
}

// Rooms returns the rooms c is in. Loop only.
func (c *Conn) Rooms() []*Room {
	if c.ext == nil || len(c.ext.rooms) == 0 {
		return nil
	}
	rs := make([]*Room, len(c.ext.rooms))
	for i, m := range c.ext.rooms {
		rs[i] = m.st.room
	}
	return rs
}

// RoomObserver is implemented by handlers that want to know when a
// connection joins or leaves a room (Room.Join, Room.Leave, and the leaves
// of a closing connection, which come before its OnClose). Both methods run
// on the connection's event loop after the change and must not block.
type RoomObserver interface {
	OnJoin(r *Room, c *Conn)
	OnLeave(r *Room, c *Conn)
}

// join runs on c's loop and turns the queued join into membership.
func (st *roomState) join(c *Conn) {
	s := c.l.s
	if c.state != stateOpen || st.memberIndex(c) >= 0 {
		st.release(s, c.l)
		return
	}
	rl := &st.loops[c.l.idx]
	e := c.extState()
	e.rooms = append(e.rooms, membership{st: st, idx: len(rl.members)})
	st.mu.Lock()
	rl.members = append(rl.members, c)
	st.mu.Unlock()
	st.members.Add(1)
	if h := s.roomHook; h != nil {
		c.l.callRoomHook(h.OnJoin, st.room, c)
	}
}

// memberIndex returns the position of st in c's rooms, or -1.
func (st *roomState) memberIndex(c *Conn) int {
	if c.ext == nil {
		return -1
	}
	for i, m := range c.ext.rooms {
		if m.st == st {
			return i
		}
	}
	return -1
}

// leave removes c from the room and the room from c's list, on c's loop.
func (st *roomState) leave(c *Conn) {
	i := st.memberIndex(c)
	if i < 0 {
		return
	}
	rs := c.ext.rooms
	st.remove(c, rs[i].idx)
	rs[i] = rs[len(rs)-1]
	rs[len(rs)-1] = membership{}
	c.ext.rooms = rs[:len(rs)-1]
}

// remove drops the member at idx of c's loop (swapping in the last member,
// whose recorded index is updated) and releases its reference.
func (st *roomState) remove(c *Conn, idx int) {
	l := c.l
	rl := &st.loops[l.idx]
	st.mu.Lock()
	last := len(rl.members) - 1
	if idx != last {
		moved := rl.members[last]
		rl.members[idx] = moved
		if j := st.memberIndex(moved); j >= 0 {
			moved.ext.rooms[j].idx = idx
		}
	}
	rl.members[last] = nil
	rl.members = rl.members[:last]
	if len(rl.members) == 0 {
		rl.members = nil
	}
	st.mu.Unlock()
	st.members.Add(-1)
	if h := l.s.roomHook; h != nil {
		l.callRoomHook(h.OnLeave, st.room, c)
	}
	st.release(l.s, l)
}

// release drops one reference held on loop l; the last one removes the room
// from the server, unless a Join took a new reference meanwhile.
func (st *roomState) release(s *Server, l *Loop) {
	st.loops[l.idx].refs.Add(-1)
	if st.refs.Add(-1) != 0 {
		return
	}
	s.roomsMu.Lock()
	if st.refs.Load() == 0 && s.rooms[st.room.name] == st {
		delete(s.rooms, st.room.name)
		st.dead.Store(true)
		if s.cluster != nil {
			_ = s.cluster.b.Unsubscribe(roomChannel(st.room.name))
		}
	}
	s.roomsMu.Unlock()
}

// leaveAll removes a closing connection from all its rooms, on its loop.
func (c *Conn) leaveAll() {
	if c.ext == nil {
		return
	}
	rs := c.ext.rooms
	c.ext.rooms = nil
	for _, m := range rs {
		m.st.remove(c, m.idx)
	}
}

// Publish sends one message to every member. Any goroutine; it never blocks.
// The frame is encoded once and shared by every recipient: each event loop
// with members writes the same bytes to them (see Server.Broadcast). payload
// is copied before Publish returns. Publishing to a room without members
// does nothing. It returns ErrServerStopped once Stop was called.
func (r *Room) Publish(op ws.OpCode, payload []byte) error {
	return r.publish(nil, op, payload, false)
}

// PublishExcept is Publish to every member but except (typically the sender).
func (r *Room) PublishExcept(except *Conn, op ws.OpCode, payload []byte) error {
	return r.publish(except, op, payload, false)
}

// PublishSnapshot is Publish for a message that supersedes the previous
// one, such as a game's world state at each tick: a member that lags (its
// socket is full) gets only the newest of the snapshots waiting for it, not
// all of them in turn, and the replaced ones stop counting against its
// MaxWriteQueue and the server's budget (Stats.SnapshotsReplaced counts
// them). Other messages keep their order around it: a snapshot replaces
// only the one before it in the same unbroken run of the room's frames
// waiting for the member, so a message queued to that member in between
// by other means (Conn.Send, another room) keeps the snapshot before it.
// Replacement starts once the kernel's send buffer is full (a few MiB on
// loopback). With Config.Broker, the other nodes receive it as a plain
// publish.
func (r *Room) PublishSnapshot(op ws.OpCode, payload []byte) error {
	return r.publish(nil, op, payload, true)
}

func (r *Room) publish(except *Conn, op ws.OpCode, payload []byte, snap bool) error {
	s := r.s
	if err := s.checkPublish(op, payload); err != nil {
		return err
	}
	if st := r.state(); st != nil {
		_ = s.fanoutTo(op, payload, fanTarget{room: st, except: except, snap: snap})
	}
	if cl := s.cluster; cl != nil {
		return cl.publish(roomChannel(r.name), cl.envelope(envRoom, r.name, 0, op, payload))
	}
	return nil
}

// each calls fn for every member on loop l. It walks the members from the
// end: a write that fails closes its connection, which removes it by moving
// the last member into its slot — a member already visited.
func (st *roomState) each(l *Loop, fn func(*Conn)) {
	m := &st.loops[l.idx].members
	for i := len(*m) - 1; i >= 0; i-- {
		if i < len(*m) {
			fn((*m)[i])
		}
	}
}

// SendTo sends one message to each of conns, encoded once. Any goroutine;
// it never blocks. It returns ErrServerStopped once Stop was called.
func (s *Server) SendTo(conns []*Conn, op ws.OpCode, payload []byte) error {
	if err := s.checkPublish(op, payload); err != nil {
		return err
	}
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
// copied before Broadcast returns. It returns ErrServerStopped once Stop was
// called.
func (s *Server) Broadcast(op ws.OpCode, payload []byte) error {
	if err := s.checkPublish(op, payload); err != nil {
		return err
	}
	_ = s.fanoutTo(op, payload, fanTarget{})
	if cl := s.cluster; cl != nil {
		return cl.publish(chanAll, cl.envelope(envAll, "", 0, op, payload))
	}
	return nil
}

// checkPublish validates a fan-out before anything is encoded.
func (s *Server) checkPublish(op ws.OpCode, payload []byte) error {
	if op.IsControl() && len(payload) > codec.MaxControlPayload {
		return ErrControlTooLong
	}
	if s.stopping.Load() {
		return ErrServerStopped
	}
	return nil
}

// fanoutTo encodes one frame and queues it on every loop that has
// recipients for target. The loops coalesce consecutive fan-outs to the same
// target: each recipient then gets all of them with one writev (see
// Loop.deliverBatch).
func (s *Server) fanoutTo(op ws.OpCode, payload []byte, target fanTarget) error {
	loops := s.loopList()
	if target.room != nil {
		var with [8]*Loop
		sel := with[:0]
		for _, l := range loops {
			if target.room.loops[l.idx].refs.Load() > 0 {
				sel = append(sel, l)
			}
		}
		loops = sel
	}
	if len(loops) == 0 {
		return nil
	}
	f := s.encodeShared(op, payload, len(loops))
	f.snap = target.snap
	for _, l := range loops {
		if !l.post(task{frame: f, target: target}) {
			f.release()
		}
	}
	return nil
}

// fanout encodes one frame and runs deliver on every loop with it; the frame
// returns to the pool when the last loop is done.
func (s *Server) fanout(op ws.OpCode, payload []byte, deliver func(l *Loop, f *sharedFrame, n int)) error {
	loops := s.loopList()
	if len(loops) == 0 {
		return nil
	}
	f := s.encodeShared(op, payload, len(loops))
	for _, l := range loops {
		ok := l.postFn(func() {
			deliver(l, f, f.n)
			f.release()
		})
		if !ok {
			f.release()
		}
	}
	return nil
}

// encodeShared encodes payload once as a frame holding refs references.
func (s *Server) encodeShared(op ws.OpCode, payload []byte, refs int) *sharedFrame {
	f := &sharedFrame{buf: getFrameBuf(codec.HeaderSize(len(payload), false) + len(payload)), n: len(payload)}
	*f.buf = codec.AppendFrame((*f.buf)[:0], op, true, payload)
	f.refs.Store(int32(refs))
	return f
}
