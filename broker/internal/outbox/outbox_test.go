package outbox

import (
	"fmt"
	"testing"
)

func TestQueueOrderBoundAndReuse(t *testing.T) {
	msg := func(i int) []byte { return []byte(fmt.Sprintf("m%03d", i)) }
	per := len(msg(0)) + len("ch") + ItemOverhead
	q := New(10 * per)
	for i := range 10 {
		if !q.Push("ch", msg(i)) {
			t.Fatalf("push %d refused below the bound", i)
		}
	}
	if q.Push("ch", msg(10)) {
		t.Fatal("push past the bound accepted")
	}
	if q.Len() != 10*per {
		t.Fatalf("Len %d, want %d", q.Len(), 10*per)
	}
	select {
	case <-q.Wake():
	default:
		t.Fatal("no wake-up after Push")
	}
	var batch []Item
	for round := range 3 {
		batch = q.Take(batch[:0])
		if len(batch) != 10 || q.Len() != 0 {
			t.Fatalf("round %d: took %d, %d bytes left", round, len(batch), q.Len())
		}
		for i, it := range batch {
			if it.Channel != "ch" || string(it.Msg) != string(msg(round*10+i)) {
				t.Fatalf("round %d item %d: %q %q", round, i, it.Channel, it.Msg)
			}
		}
		// Refill while the consumer still holds the batch: the batch's
		// bytes must stay intact until the next Take.
		for i := range 10 {
			q.Push("ch", msg((round+1)*10+i))
		}
		for i, it := range batch {
			if string(it.Msg) != string(msg(round*10+i)) {
				t.Fatalf("round %d: item %d overwritten before the next Take: %q", round, i, it.Msg)
			}
		}
	}
	q.Close()
	if q.Push("ch", msg(0)) {
		t.Fatal("push after Close accepted")
	}
	if got := q.Take(nil); len(got) != 10 {
		t.Fatalf("%d messages queued before Close could be taken, want 10", len(got))
	}
}
