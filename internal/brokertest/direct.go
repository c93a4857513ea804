package brokertest

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/megaws/megaws/server"
)

// Recorder collects what a broker delivers, as "channel|message".
type Recorder struct {
	mu   sync.Mutex
	msgs []string
}

// Deliver is the deliver function to give Broker.Start.
func (r *Recorder) Deliver(channel string, msg []byte) {
	r.mu.Lock()
	r.msgs = append(r.msgs, channel+"|"+string(msg))
	r.mu.Unlock()
}

// Got returns what was delivered so far.
func (r *Recorder) Got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

// WaitFor waits until want was delivered.
func (r *Recorder) WaitFor(t testing.TB, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, m := range r.Got() {
			if m == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q not delivered within %v; got %d messages, last %q", want, timeout, len(r.Got()), tail(r.Got()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// StartBroker starts b with r's Deliver and closes it at cleanup.
func StartBroker(t testing.TB, b server.Broker, r *Recorder) {
	t.Helper()
	if err := b.Start(r.Deliver); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
}

// Prefixes: brokers with different prefixes share one broker server
// without seeing each other's messages; channels arrive without the prefix;
// Publish copies the message (the caller may reuse it at once).
func Prefixes(t *testing.T, e Env) {
	p := start(t, e.Kind)
	log := TestLogger(t)
	a := e.New(p.URL(), Opts{Log: log, Prefix: "one."})
	b := e.New(p.URL(), Opts{Log: log, Prefix: "one."})
	c := e.New(p.URL(), Opts{Log: log, Prefix: "two."})
	var ra, rb, rc Recorder
	StartBroker(t, a, &ra)
	StartBroker(t, b, &rb)
	StartBroker(t, c, &rc)
	_ = b.Subscribe("x")
	_ = c.Subscribe("x")
	for _, ch := range []string{"one.x", "two.x"} {
		if err := p.WaitSubscribers(ch, 1, wait); err != nil {
			t.Fatal(err)
		}
	}
	msg := []byte("hello")
	if err := a.Publish("x", msg); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	copy(msg, "XXXXX")
	rb.WaitFor(t, "x|hello", wait)
	time.Sleep(100 * time.Millisecond)
	if got := rc.Got(); len(got) != 0 {
		t.Fatalf("a broker with another prefix got %q", got)
	}
	if got := ra.Got(); len(got) != 0 {
		t.Fatalf("a broker not subscribed got %q", got)
	}
	if got := rb.Got(); len(got) != 1 {
		t.Fatalf("subscriber got %q, want one message", got)
	}
}

// StartDown: Start fails, naming the address, when no broker listens;
// Publish is refused before Start; Close works either way.
func StartDown(t *testing.T, e Env) {
	port := FreePort(t)
	b := e.New(fmt.Sprintf("%s://127.0.0.1:%d", e.Kind, port), Opts{Log: TestLogger(t)})
	if err := b.Publish("x", []byte("early")); err == nil {
		t.Fatal("Publish before Start succeeded")
	}
	if err := b.Subscribe("x"); err != nil {
		t.Fatalf("Subscribe before Start: %v", err)
	}
	start := time.Now()
	err := b.Start(func(string, []byte) {})
	if err == nil {
		_ = b.Close()
		t.Fatal("Start succeeded with no broker listening")
	}
	if !strings.Contains(err.Error(), strconv.Itoa(port)) {
		t.Errorf("Start error does not name the address: %v", err)
	}
	t.Logf("Start with no broker: %v (after %v)", err, time.Since(start).Round(time.Millisecond))
	if err := b.Close(); err != nil {
		t.Fatalf("Close after a failed Start: %v", err)
	}
}

// Stall: the broker process is paused (SIGSTOP), so its sockets fill and
// the client library's writes block. Publish must not: it keeps returning
// at once, and once MaxQueuedBytes wait it refuses and counts the drops.
// When the broker continues, publishing works again.
func Stall(t *testing.T, e Env) {
	p := start(t, e.Kind)
	log := TestLogger(t)
	sub := e.New(p.URL(), Opts{Log: log})
	var rs Recorder
	StartBroker(t, sub, &rs)
	_ = sub.Subscribe("s")
	if err := p.WaitSubscribers(e.Prefix+"s", 1, wait); err != nil {
		t.Fatal(err)
	}
	pub := e.New(p.URL(), Opts{Log: log, MaxQueuedBytes: 256 << 10})
	StartBroker(t, pub, &Recorder{})

	// Publish until the writer is stuck: the queue stays full (every
	// Publish refused) for half a second while the writer has had all the
	// time it needs to drain it into the client library and the sockets.
	p.Pause()
	msg := bytes.Repeat([]byte("m"), 4<<10)
	var refused, sent int
	var slowest time.Duration
	var fullSince time.Time
	start := time.Now()
	for {
		if time.Since(start) > 2*wait {
			t.Fatalf("with the broker paused, Publish still accepted messages after %v (%d accepted): nothing fills up?", 2*wait, sent)
		}
		t0 := time.Now()
		err := pub.Publish("s", msg)
		slowest = max(slowest, time.Since(t0))
		if err == nil {
			sent++
			fullSince = time.Time{}
			continue
		}
		refused++
		if fullSince.IsZero() {
			fullSince = t0
		} else if time.Since(fullSince) > 500*time.Millisecond {
			break
		}
		time.Sleep(time.Millisecond)
	}
	st := e.Stats(pub)
	t.Logf("paused broker: %d publishes (%d MiB) accepted, %d refused in %v; slowest Publish %v; Stats %+v",
		sent, sent*len(msg)>>20, refused, time.Since(start).Round(time.Millisecond), slowest, st)
	if slowest > 500*time.Millisecond {
		t.Fatalf("a Publish took %v with the broker paused: it blocked", slowest)
	}
	if st.Dropped < uint64(refused) {
		t.Fatalf("Stats.Dropped %d < %d refused publishes", st.Dropped, refused)
	}

	p.Resume()
	deadline := time.Now().Add(wait)
	for i := 0; ; i++ {
		m := "after-" + strconv.Itoa(i)
		_ = pub.Publish("s", []byte(m))
		found := false
		for _, g := range rs.Got() {
			found = found || strings.HasPrefix(g, "s|after-")
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no publish got through within %v of resuming the broker", wait)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// BenchPublish measures Publish through a broker client to a real broker:
// 64-byte messages on one channel, retried while the queue is full, until
// the broker accepted all b.N. It reports the rate the broker took them at
// and the allocations per Publish on the caller's side (none: the queue
// copies into a reused arena).
func BenchPublish(b *testing.B, e Env) {
	p := start(b, e.Kind)
	br := e.New(p.URL(), Opts{Log: TestLogger(b)})
	StartBroker(b, br, &Recorder{})
	msg := bytes.Repeat([]byte("m"), 64)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	start := time.Now()
	full := 0
	for b.Loop() {
		for br.Publish("bench", msg) != nil {
			full++
			time.Sleep(10 * time.Microsecond)
		}
	}
	for e.Stats(br).Published+e.Stats(br).Dropped-uint64(full) < uint64(b.N) {
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	if d := e.Stats(br).Dropped - uint64(full); d > 0 {
		b.Fatalf("%d messages lost after Publish accepted them", d)
	}
}
