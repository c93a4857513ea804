package nats_test

import (
	"bytes"
	"sync/atomic"
	"testing"
	"time"

	natsbroker "github.com/megaws/megaws/broker/nats"
	"github.com/megaws/megaws/internal/brokertest"
)

// TestSlowConsumerDropsCounted: while the server's deliver function lags,
// at most MaxPending messages wait for it; NATS's further messages are
// dropped and counted, and delivery goes on once it catches up.
func TestSlowConsumerDropsCounted(t *testing.T) {
	p := brokertest.StartNATS(t)
	log := brokertest.TestLogger(t)
	const pending, total = 16, 500
	release := make(chan struct{})
	var released atomic.Bool
	defer func() {
		if released.CompareAndSwap(false, true) {
			close(release)
		}
	}()
	var delivered atomic.Int64
	sub := natsbroker.New(natsbroker.Config{URL: p.URL(), Logger: log, MaxPending: pending})
	if err := sub.Start(func(string, []byte) {
		if delivered.Add(1) == 1 {
			<-release // a server that fell behind
		}
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	_ = sub.Subscribe("slow")
	if err := p.WaitSubscribers("megaws.slow", 1, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	pub := natsbroker.New(natsbroker.Config{URL: p.URL(), Logger: log})
	brokertest.StartBroker(t, pub, &brokertest.Recorder{})
	msg := bytes.Repeat([]byte("x"), 100)
	for range total {
		if err := pub.Publish("slow", msg); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, func() bool { return sub.Stats().SlowConsumerDrops > 0 }, "no slow-consumer drop counted")
	if st := sub.Stats(); st.Received > pending+1 {
		t.Fatalf("%d messages delivered while the deliverer was stuck (MaxPending %d)", st.Received, pending)
	}
	released.Store(true)
	close(release)
	waitUntil(t, func() bool {
		st := sub.Stats()
		return st.Received+st.SlowConsumerDrops == total
	}, "delivered + dropped never added up to what was published")
	st := sub.Stats()
	t.Logf("%d published: %d delivered, %d dropped as a slow consumer", total, st.Received, st.SlowConsumerDrops)

	// The subscription works on after the drops.
	_ = pub.Publish("slow", []byte("later"))
	waitUntil(t, func() bool { return sub.Stats().Received == st.Received+1 }, "no delivery after the slow-consumer episode")
}

func waitUntil(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
