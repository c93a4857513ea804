package outbox

import (
	"fmt"
	"slices"
	"testing"
)

func TestChangesKeepLastStateInFirstOrder(t *testing.T) {
	var c Changes
	if !c.Set("a", true) || c.Set("a", true) {
		t.Fatal("Set must report only changes of the wanted state")
	}
	c.Set("b", true)
	c.Set("a", false) // a: subscribed, then left before the consumer looked
	c.Set("c", true)
	c.Set("b", false)
	c.Set("b", true)
	got := c.Take(nil)
	want := []Change{{Channel: "a", Sub: false}, {Channel: "b", Sub: true}, {Channel: "c", Sub: true}}
	if !slices.Equal(got, want) {
		t.Fatalf("Take: %v, want %v", got, want)
	}
	if got := c.Take(nil); len(got) != 0 {
		t.Fatalf("second Take: %v", got)
	}
	c.Set("d", true)
	snap := c.Snapshot()
	slices.Sort(snap)
	if !slices.Equal(snap, []string{"b", "c", "d"}) {
		t.Fatalf("Snapshot: %v", snap)
	}
	if got := c.Take(nil); len(got) != 0 {
		t.Fatalf("Take after Snapshot: %v (the snapshot included them)", got)
	}
}

func TestChangesChurnIsBounded(t *testing.T) {
	var c Changes
	for i := range 100_000 {
		c.Set(fmt.Sprintf("room.%d", i%10), i%3 != 0)
	}
	if got := c.Take(nil); len(got) != 10 {
		t.Fatalf("%d pending changes for 10 channels", len(got))
	}
}
