package arena

import (
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/megaws/megaws/server"
)

// match is one game: a room "match-N" and up to MatchSize player slots.
type match struct {
	id   uint32
	room *server.Room
	// owner is the event loop that steps the NPCs and publishes snapshots:
	// the loop of the player who opened the match. (Not a round-robin pick:
	// megaws sets up a loop, and ticks it, only once it has had a
	// connection, so a loop chosen blindly might never tick.)
	owner int
	// slots hold each player's id and position, packed (see pack); 0 is a
	// free slot. A player's own loop writes its slot at every tick and the
	// owner loop reads them all: one atomic word each, no lock.
	slots []atomic.Uint64

	// The owner loop's alone.
	tick uint32
	npcs []npc

	// Guarded by matchmaker.mu.
	free    []int // free slots, highest first (the lowest is taken first)
	names   []string
	ids     []uint32
	players int
}

// matchmaker assigns players to matches: the oldest match with a free slot,
// or a new one. A match that empties is forgotten, and megaws has freed its
// room by then (a room exists only while it has members).
type matchmaker struct {
	g    *Game
	size int

	mu   sync.Mutex
	next uint32
	open []*match // matches with a free slot, oldest first
	live int
}

func (mm *matchmaker) init(g *Game, size int) { mm.g, mm.size = g, size }

// join takes a slot for player id, whose connection is on event loop
// loop, and returns its match.
func (mm *matchmaker) join(id uint32, name string, loop int) (*match, int) {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	if len(mm.open) == 0 {
		mm.open = append(mm.open, mm.newMatch(loop))
	}
	m := mm.open[0]
	slot := m.free[len(m.free)-1]
	m.free = m.free[:len(m.free)-1]
	m.ids[slot], m.names[slot] = id, name
	m.players++
	if len(m.free) == 0 {
		mm.open = slices.Delete(mm.open, 0, 1)
	}
	return m, slot
}

// leave frees slot of m.
func (mm *matchmaker) leave(m *match, slot int) {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	wasFull := len(m.free) == 0
	m.free = append(m.free, slot)
	slices.SortFunc(m.free, func(a, b int) int { return b - a })
	m.ids[slot], m.names[slot] = 0, ""
	m.players--
	switch {
	case m.players == 0:
		mm.open = slices.DeleteFunc(mm.open, func(o *match) bool { return o == m })
		mm.setOwned(m.owner, func(ms []*match) []*match {
			return slices.DeleteFunc(ms, func(o *match) bool { return o == m })
		})
		mm.live--
	case wasFull:
		mm.open = append(mm.open, m)
		slices.SortFunc(mm.open, func(a, b *match) int { return int(a.id) - int(b.id) })
	}
}

// newMatch creates the next match and hands it to owner. mm.mu is held.
func (mm *matchmaker) newMatch(owner int) *match {
	mm.next++
	g := mm.g
	m := &match{
		id:    mm.next,
		room:  g.s.Room("match-" + strconv.FormatUint(uint64(mm.next), 10)),
		owner: owner,
		slots: make([]atomic.Uint64, mm.size),
		npcs:  newNPCs(g.cfg.NPCs),
		names: make([]string, mm.size),
		ids:   make([]uint32, mm.size),
	}
	for i := mm.size - 1; i >= 0; i-- {
		m.free = append(m.free, i)
	}
	mm.live++
	mm.setOwned(m.owner, func(ms []*match) []*match { return append(ms, m) })
	return m
}

// setOwned replaces loop i's list of owned matches with edit's result on a
// copy, so the loop reads its list without a lock. mm.mu is held.
func (mm *matchmaker) setOwned(i int, edit func([]*match) []*match) {
	p := &mm.g.loops[i].owned
	p.Store(new(edit(slices.Clone(*p.Load()))))
}

type rosterEntry struct {
	id   uint32
	name string
}

// roster returns the players of m other than id.
func (mm *matchmaker) roster(m *match, id uint32) []rosterEntry {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	var r []rosterEntry
	for i, pid := range m.ids {
		if pid != 0 && pid != id {
			r = append(r, rosterEntry{pid, m.names[i]})
		}
	}
	return r
}

// matches returns the number of matches with players.
func (mm *matchmaker) matches() int {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	return mm.live
}
