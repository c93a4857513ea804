package arena

import (
	"encoding/binary"
	"math/rand/v2"
	"time"

	"github.com/gobwas/ws"

	"github.com/megaws/megaws/server"
)

// speed is how far a player at full input moves in a second (world units).
const speed = 200

// npc is a wandering entity of a match's world.
type npc struct{ x, y, vx, vy float32 }

// OnTick (server.Ticker) runs on every event loop each Config.TickInterval.
// It steps the players this loop owns (Loop.Each: its connections only, so
// their state needs no lock) and then, for each match this loop owns, steps
// the NPCs and publishes the match's state with Room.PublishSnapshot: encoded
// once, the same bytes written to every member, and a member whose socket is
// full gets only the newest snapshot when it drains. The positions of players
// on other loops are the ones their loop stored at its last tick, at most
// one tick old.
func (g *Game) OnTick(l *server.Loop) {
	start := time.Now()
	ls := &g.loops[l.Index()]
	ls.lagging = 0
	l.Each(ls.step)
	ls.laggingNow.Store(int64(ls.lagging))
	dt := float32(1) / float32(g.cfg.TickRate)
	for _, m := range *ls.owned.Load() {
		m.tick++
		stepNPCs(m.npcs, dt)
		ls.buf = m.appendSnapshot(ls.buf[:0], start)
		if m.room.PublishSnapshot(ws.OpBinary, ls.buf) == nil {
			ls.snapshots.Add(1)
		}
	}
	g.tickSeconds.Observe(time.Since(start).Seconds())
}

// stepPlayer moves c's player by its latest input and stores its position
// in its match slot. It runs on c's loop.
func (g *Game) stepPlayer(ls *loopState, c *server.Conn) {
	p, ok := c.Context().(*player)
	if !ok || p.m == nil {
		return // still in the handshake
	}
	dt := float32(1) / float32(g.cfg.TickRate)
	p.x = clamp(p.x + float32(p.dx)/127*speed*dt)
	p.y = clamp(p.y + float32(p.dy)/127*speed*dt)
	p.m.slots[p.slot].Store(pack(p.id, p.x, p.y))
	// Queued is what waits for this player beyond the socket: it lags.
	if c.Queued() > 0 {
		ls.lagging++
	}
}

// appendSnapshot appends m's Snapshot message, stamped with the tick's
// start, to dst. It runs on m's owner loop.
func (m *match) appendSnapshot(dst []byte, stamp time.Time) []byte {
	dst = append(dst, MsgSnapshot)
	dst = binary.BigEndian.AppendUint32(dst, m.tick)
	dst = binary.BigEndian.AppendUint64(dst, uint64(stamp.UnixNano()))
	at := len(dst)
	dst = append(dst, 0)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.npcs)))
	n := 0
	for i := range m.slots {
		v := m.slots[i].Load()
		if v == 0 {
			continue
		}
		dst = binary.BigEndian.AppendUint64(dst, v) // id:u32 x:i16 y:i16
		n++
	}
	dst[at] = byte(n)
	for _, e := range m.npcs {
		dst = binary.BigEndian.AppendUint16(dst, uint16(int16(e.x)))
		dst = binary.BigEndian.AppendUint16(dst, uint16(int16(e.y)))
	}
	return dst
}

// pack packs a player's id and position into one slot word, laid out as
// the snapshot entry: id:u32 x:i16 y:i16.
func pack(id uint32, x, y float32) uint64 {
	return uint64(id)<<32 | uint64(uint16(int16(x)))<<16 | uint64(uint16(int16(y)))
}

func spawn() (x, y float32) {
	return rand.Float32() * WorldSize, rand.Float32() * WorldSize
}

func newNPCs(n int) []npc {
	npcs := make([]npc, n)
	for i := range npcs {
		x, y := spawn()
		npcs[i] = npc{x: x, y: y, vx: (rand.Float32()*2 - 1) * speed / 2, vy: (rand.Float32()*2 - 1) * speed / 2}
	}
	return npcs
}

// stepNPCs moves the NPCs, bouncing off the world's edges.
func stepNPCs(npcs []npc, dt float32) {
	for i := range npcs {
		e := &npcs[i]
		e.x += e.vx * dt
		e.y += e.vy * dt
		if e.x < 0 || e.x > WorldSize {
			e.vx, e.x = -e.vx, clamp(e.x)
		}
		if e.y < 0 || e.y > WorldSize {
			e.vy, e.y = -e.vy, clamp(e.y)
		}
	}
}

func clamp(v float32) float32 { return min(max(v, 0), WorldSize) }
