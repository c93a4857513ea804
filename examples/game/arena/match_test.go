package arena

import (
	"testing"

	"github.com/megaws/megaws/server"
)

// TestMatchmaker: players fill the oldest match with room before a new one
// opens; a freed slot is refilled; an empty match is forgotten, by its
// owner loop too.
func TestMatchmaker(t *testing.T) {
	g := New(Config{MatchSize: 2, Server: server.Config{Loops: 2}})
	mm := &g.mm
	type seat struct {
		m    *match
		slot int
	}
	var seats []seat
	for i := range 5 {
		m, s := mm.join(uint32(i+1), "p", i%2)
		seats = append(seats, seat{m, s})
	}
	for i, want := range []uint32{1, 1, 2, 2, 3} {
		if seats[i].m.id != want || seats[i].slot != i%2 {
			t.Errorf("player %d: match %d slot %d, want match %d slot %d", i+1, seats[i].m.id, seats[i].slot, want, i%2)
		}
	}
	if seats[0].m.owner != 0 || seats[2].m.owner != 0 || seats[4].m.owner != 0 {
		t.Error("a match is not owned by the loop of the player who opened it")
	}
	// Match 1 has a free slot again: it is filled before match 3.
	mm.leave(seats[1].m, seats[1].slot)
	if m, s := mm.join(6, "p", 1); m.id != 1 || s != 1 {
		t.Errorf("refill: match %d slot %d, want match 1 slot 1", m.id, s)
	}
	if r := mm.roster(seats[0].m, 1); len(r) != 1 || r[0].id != 6 {
		t.Errorf("roster of match 1 without player 1: %+v", r)
	}
	// Match 2 empties: gone from the open list and its owner's list.
	mm.leave(seats[2].m, seats[2].slot)
	mm.leave(seats[3].m, seats[3].slot)
	if n := mm.matches(); n != 2 {
		t.Errorf("%d matches, want 2", n)
	}
	for _, m := range *g.loops[0].owned.Load() {
		if m.id == 2 {
			t.Error("loop 0 still publishes the empty match 2")
		}
	}
	if m, _ := mm.join(7, "p", 0); m.id != 3 {
		t.Errorf("player 7 in match %d, want 3 (the only one with room)", m.id)
	}
}
