package redis_test

import (
	"bytes"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	redisbroker "github.com/megaws/megaws/broker/redis"
	"github.com/megaws/megaws/internal/brokertest"
)

// TestSlowSubscriberReconnects: Redis bounds what it buffers for a
// subscriber that does not read (client-output-buffer-limit pubsub) by
// closing its connection. While the server's deliver function lags that
// happens; the broker counts the disconnect, reconnects, subscribes again
// and delivers what is published afterwards.
func TestSlowSubscriberReconnects(t *testing.T) {
	p := brokertest.StartRedis(t)
	if reply, err := p.RedisCommand("CONFIG", "SET", "client-output-buffer-limit", "pubsub 64kb 32kb 1"); err != nil || !strings.HasPrefix(reply, "+OK") {
		t.Fatalf("CONFIG SET: %q, %v", reply, err)
	}
	log := brokertest.TestLogger(t)
	release := make(chan struct{})
	var released atomic.Bool
	defer func() {
		if released.CompareAndSwap(false, true) {
			close(release)
		}
	}()
	var later atomic.Bool
	sub := redisbroker.New(redisbroker.Config{URL: p.URL(), Logger: log, ReconnectWait: 100 * time.Millisecond})
	var first atomic.Bool
	if err := sub.Start(func(_ string, msg []byte) {
		if first.CompareAndSwap(false, true) {
			<-release // a server that fell behind
		}
		if string(msg) == "later" {
			later.Store(true)
		}
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	_ = sub.Subscribe("slow")
	if err := p.WaitSubscribers("megaws.slow", 1, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	pub := redisbroker.New(redisbroker.Config{URL: p.URL(), Logger: log})
	brokertest.StartBroker(t, pub, &brokertest.Recorder{})
	msg := bytes.Repeat([]byte("x"), 1<<10)
	// Far more than the limit plus the kernel's socket buffers.
	for range 20_000 {
		_ = pub.Publish("slow", msg)
		if pub.Stats().QueuedBytes > 4<<20 {
			time.Sleep(time.Millisecond)
		}
	}
	waitUntil(t, func() bool { n, _ := p.Subscribers("megaws.slow"); return n == 0 }, "Redis kept the slow subscriber")
	released.Store(true)
	close(release)
	waitUntil(t, func() bool { st := sub.Stats(); return st.Disconnects >= 1 && st.Reconnects >= 1 && st.Connected }, "no disconnect and reconnect counted")
	if err := p.WaitSubscribers("megaws.slow", 1, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { _ = pub.Publish("slow", []byte("later")); return later.Load() }, "no delivery after the reconnect")
	st := sub.Stats()
	t.Logf("published %d; subscriber: %+v", pub.Stats().Published, st)
}

func waitUntil(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
