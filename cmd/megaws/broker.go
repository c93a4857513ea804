package main

import (
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	natsbroker "github.com/megaws/megaws/broker/nats"
	redisbroker "github.com/megaws/megaws/broker/redis"
	"github.com/megaws/megaws/server"
)

// brokerHelp documents --broker.
const brokerHelp = `message broker joining this server to a cluster of megaws nodes: nats://HOST:PORT (NATS core pub/sub; tls:// for TLS; user:pass@ for credentials) or redis://HOST:PORT[/DB] (Redis pub/sub; rediss:// for TLS). Every node started with the same broker shares rooms, broadcasts (--mode broadcast, --mode demo) and SendToID; delivery between nodes is at most once, and a node whose broker is down keeps serving its own connections. The node does not start if the broker is unreachable at startup, and reconnects by itself later. Empty (the default): a single node`

// checkBrokerURL validates a --broker value without connecting.
func checkBrokerURL(raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("--broker: %v", err)
	}
	switch u.Scheme {
	case "nats", "tls", "redis", "rediss":
	default:
		return fmt.Errorf("--broker %q: want nats://HOST:PORT or redis://HOST:PORT", raw)
	}
	if u.Host == "" {
		return fmt.Errorf("--broker %q: no host:port", raw)
	}
	return nil
}

// newBroker returns the server.Broker for a --broker URL (checked by
// checkBrokerURL); it connects when the server starts.
func newBroker(raw string, log *slog.Logger) (server.Broker, error) {
	if err := checkBrokerURL(raw); err != nil {
		return nil, err
	}
	if strings.HasPrefix(raw, "redis") {
		return redisbroker.New(redisbroker.Config{URL: raw, Logger: log}), nil
	}
	return natsbroker.New(natsbroker.Config{URL: raw, Logger: log}), nil
}
