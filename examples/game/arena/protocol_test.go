package arena

import (
	"bytes"
	"sync/atomic"
	"testing"
	"time"
)

func TestProtocolRoundTrip(t *testing.T) {
	w := Welcome{Player: 7, Match: 3, MatchSize: 8, TickRate: 20}
	if got, ok := ParseWelcome(AppendWelcome(nil, w)); !ok || got != w {
		t.Errorf("welcome %+v, %v", got, ok)
	}
	from, text, ok := ParseChatFrom(AppendChatFrom(nil, 9, []byte("gg")))
	if !ok || from != 9 || string(text) != "gg" {
		t.Errorf("chat %d %q %v", from, text, ok)
	}
	if typ, p, name, ok := ParsePlayerEvent(AppendJoined(nil, 5, "bob")); !ok || typ != MsgJoined || p != 5 || string(name) != "bob" {
		t.Errorf("joined %x %d %q %v", typ, p, name, ok)
	}
	if typ, p, _, ok := ParsePlayerEvent(AppendLeft(nil, 5)); !ok || typ != MsgLeft || p != 5 {
		t.Errorf("left %x %d %v", typ, p, ok)
	}
	if in := AppendInput(nil, -127, 127); !bytes.Equal(in, []byte{MsgInput, 0x81, 0x7f}) {
		t.Errorf("input %x", in)
	}
}

// TestSnapshotEncoding: a match's snapshot lists its players (free slots
// left out) and NPCs, and carries the tick and its time.
func TestSnapshotEncoding(t *testing.T) {
	m := &match{tick: 42, npcs: newNPCs(3)}
	m.slots = make([]atomic.Uint64, 4)
	m.slots[0].Store(pack(1, 10, 20))
	m.slots[2].Store(pack(3, 999, 0))
	stamp := time.Unix(1700000000, 123)
	p := m.appendSnapshot(nil, stamp)
	h, ok := ParseSnapshot(p)
	if !ok || h.Tick != 42 || h.Stamp != stamp.UnixNano() || h.Players != 2 || h.NPCs != 3 {
		t.Fatalf("header %+v, %v", h, ok)
	}
	if id, x, y := Player(p, 1); id != 3 || x != 999 || y != 0 {
		t.Errorf("player 1: %d (%d, %d)", id, x, y)
	}
	if x, y := NPC(p, h, 2); x != int16(m.npcs[2].x) || y != int16(m.npcs[2].y) {
		t.Errorf("npc 2: (%d, %d)", x, y)
	}
	if _, ok := ParseSnapshot(p[:len(p)-1]); ok {
		t.Error("a truncated snapshot parsed")
	}
}
