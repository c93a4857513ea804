package redis_test

import (
	"testing"
	"time"

	redisbroker "github.com/megaws/megaws/broker/redis"
	"github.com/megaws/megaws/internal/brokertest"
	"github.com/megaws/megaws/server"
)

// env runs the shared scenarios on a real redis-server with this package's
// Broker; the brokers retry every 100 ms.
var env = brokertest.Env{
	Kind:   brokertest.Redis,
	Prefix: redisbroker.DefaultPrefix,
	New: func(url string, o brokertest.Opts) server.Broker {
		return redisbroker.New(redisbroker.Config{URL: url, Logger: o.Log, Prefix: o.Prefix,
			MaxQueuedBytes: o.MaxQueuedBytes, ReconnectWait: 100 * time.Millisecond})
	},
	Stats: func(b server.Broker) brokertest.Counters {
		st := b.(*redisbroker.Broker).Stats()
		return brokertest.Counters{Connected: st.Connected, Published: st.Published, Dropped: st.Dropped, Received: st.Received}
	},
}

// Three or two megaws servers in process, each with its own Broker, and
// gobwas/ws clients: see brokertest's scenarios for what each checks.
func TestClusterDelivery(t *testing.T)      { brokertest.Delivery(t, env) }
func TestClusterUnsubscribe(t *testing.T)   { brokertest.Unsubscribe(t, env) }
func TestClusterBrokerRestart(t *testing.T) { brokertest.BrokerRestart(t, env) }
func TestClusterNodeStopped(t *testing.T)   { brokertest.NodeStopped(t, env) }

// The Broker on its own.
func TestPrefixes(t *testing.T)           { brokertest.Prefixes(t, env) }
func TestStartWithoutBroker(t *testing.T) { brokertest.StartDown(t, env) }
func TestPublishNeverBlocks(t *testing.T) { brokertest.Stall(t, env) }

// BenchmarkPublish: Publish to a real redis-server through the queue and
// the writer goroutine's pipelined batches.
func BenchmarkPublish(b *testing.B) { brokertest.BenchPublish(b, env) }
