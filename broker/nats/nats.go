// Package nats joins megaws nodes into a cluster through a NATS server: a
// Broker implements server.Broker on nats.go's core publish/subscribe (no
// JetStream, nothing persisted).
//
//	b := nats.New(nats.Config{URL: "nats://127.0.0.1:4222", Logger: log})
//	s := server.New(h, server.Config{Broker: b})
//
// Every megaws channel is a NATS subject under a prefix ("megaws.room.lobby").
// Delivery is at most once: what is published while NATS is unreachable is
// dropped and counted, and local members of a room get their copy anyway.
//
// Goroutines: besides nats.go's own (reader, flusher, callbacks), a Broker
// runs one writer, which hands queued publishes and subscription changes to
// nats.go, and one deliverer, which calls the server's deliver function for
// every message of every subscription. Neither grows with the number of rooms.
package nats

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/megaws/megaws/broker/internal/outbox"
	"github.com/megaws/megaws/server"
)

// Defaults of Config fields.
const (
	DefaultPrefix         = "megaws."
	DefaultMaxQueuedBytes = 8 << 20
	DefaultMaxPending     = 64 << 10
	DefaultReconnectWait  = time.Second
	DefaultConnectTimeout = 2 * time.Second
	DefaultWriteTimeout   = 5 * time.Second
)

// Errors returned by Publish (the server counts them in Stats.ClusterDrops),
// Subscribe and Start.
var (
	ErrDown      = errors.New("megaws/nats: not connected to NATS")
	ErrQueueFull = errors.New("megaws/nats: outbound queue full (NATS is slower than the publishers)")
	ErrTooLarge  = errors.New("megaws/nats: message larger than the NATS server's max_payload")
	ErrClosed    = errors.New("megaws/nats: broker closed")
	ErrStarted   = errors.New("megaws/nats: broker already started")
)

// Config configures a Broker. The zero value connects to nats://127.0.0.1:4222
// with the defaults below.
type Config struct {
	// URL is the NATS server, nats://[user:pass@]host:port (tls:// for TLS),
	// or a comma-separated list of a NATS cluster's servers. Default
	// nats://127.0.0.1:4222.
	URL string
	// Prefix is put before every channel name to make its subject, so that
	// several megaws clusters can share a NATS server. Default "megaws.".
	Prefix string
	// MaxQueuedBytes bounds the publishes waiting for the writer goroutine
	// (message bytes plus a small overhead each); past it Publish returns
	// ErrQueueFull. Default 8 MiB.
	MaxQueuedBytes int
	// MaxPending bounds the messages received from NATS and not yet handed
	// to the server; past it NATS's messages are dropped (a slow consumer,
	// counted in Stats.SlowConsumerDrops). The memory it bounds is at most
	// MaxPending times the NATS server's max_payload (1 MiB by default).
	// Default 65536.
	MaxPending int
	// ReconnectWait is the pause between attempts to reach NATS again after
	// losing it; the broker retries forever. Default 1 s.
	ReconnectWait time.Duration
	// ConnectTimeout bounds each attempt to connect. Default 2 s.
	ConnectTimeout time.Duration
	// WriteTimeout is how long a write to NATS may stall before the
	// connection is taken for dead, dropped and made again (nats.go's
	// FlusherTimeout). It also bounds how long Close can wait for a stalled
	// writer. Default 5 s.
	WriteTimeout time.Duration
	// Options are extra nats.go options: credentials, TLS, a client name.
	// They may change the broker's defaults of nats.go settings (client
	// name "megaws", a ping every 20 s, so that a NATS server that went
	// silent is noticed within a minute), but not these, which the broker
	// applies after them: unlimited reconnects, ReconnectWait, no reconnect
	// buffer (publishes fail while disconnected), ConnectTimeout,
	// WriteTimeout and the connection event handlers it needs.
	Options []natsgo.Option
	// Logger receives connection events and drop reports, never one line per
	// message. Default: discard.
	Logger *slog.Logger
}

// withDefaults returns a copy of c with defaults filled in.
func (c Config) withDefaults() Config {
	if c.URL == "" {
		c.URL = natsgo.DefaultURL
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.MaxQueuedBytes <= 0 {
		c.MaxQueuedBytes = DefaultMaxQueuedBytes
	}
	if c.MaxPending <= 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.ReconnectWait <= 0 {
		c.ReconnectWait = DefaultReconnectWait
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c.Options = append([]natsgo.Option(nil), c.Options...)
	return c
}

// Broker is a server.Broker on NATS. Create it with New and give it to one
// server.Config; the server calls Start, Publish, Subscribe, Unsubscribe
// and Close. All methods are safe from any goroutine.
type Broker struct {
	cfg Config
	log *slog.Logger
	q   *outbox.Queue

	nc         *natsgo.Conn
	up         atomic.Bool
	closed     atomic.Bool
	started    atomic.Bool
	maxPayload atomic.Int64

	changes outbox.Changes // subscription changes the writer has not applied yet

	subsMu  sync.Mutex
	subs    map[string]*natsgo.Subscription // writer changes it; Stats reads it
	retired uint64                          // slow-consumer drops of removed subscriptions

	opsBuf []outbox.Change // writer only

	msgs chan *natsgo.Msg // every subscription's messages, in arrival order
	stop chan struct{}
	wg   sync.WaitGroup

	published, dropped, received atomic.Uint64
	reconnects, disconnects      atomic.Uint64
	lastDropLog, lastLogAt       atomic.Uint64 // Dropped when last reported, and when (Unix s)
}

// New returns a Broker configured by a copy of cfg with defaults filled in.
// It does not connect: Start does.
func New(cfg Config) *Broker {
	c := cfg.withDefaults()
	return &Broker{
		cfg:  c,
		log:  c.Logger,
		q:    outbox.New(c.MaxQueuedBytes),
		subs: make(map[string]*natsgo.Subscription),
		msgs: make(chan *natsgo.Msg, c.MaxPending),
		stop: make(chan struct{}),
	}
}

// Start connects to NATS and starts the writer and deliverer goroutines;
// deliver is called from the deliverer, one message at a time in arrival
// order, with the channel name (the prefix removed) and the payload, which
// deliver must not keep or change. Start blocks while it connects (at most
// ConnectTimeout per server of the URL) and returns an error when no server
// answers: a node does not start without its broker. Once connected, the
// broker reconnects by itself, forever, and nats.go subscribes again to
// every channel.
func (b *Broker) Start(deliver func(channel string, msg []byte)) error {
	if b.closed.Load() {
		return ErrClosed
	}
	if !b.started.CompareAndSwap(false, true) {
		return ErrStarted
	}
	defaults := []natsgo.Option{
		natsgo.Name("megaws"),
		// A node ignores its own messages: the server does not send them back.
		natsgo.NoEcho(),
		natsgo.PingInterval(20 * time.Second),
		natsgo.MaxPingsOutstanding(2),
	}
	opts := slices.Concat(defaults, b.cfg.Options, []natsgo.Option{
		natsgo.MaxReconnects(-1),
		natsgo.ReconnectWait(b.cfg.ReconnectWait),
		natsgo.ReconnectBufSize(-1),
		natsgo.Timeout(b.cfg.ConnectTimeout),
		natsgo.FlusherTimeout(b.cfg.WriteTimeout),
		natsgo.DisconnectErrHandler(b.onDisconnect),
		natsgo.ReconnectHandler(b.onReconnect),
		natsgo.ClosedHandler(func(*natsgo.Conn) { b.up.Store(false) }),
		natsgo.ErrorHandler(b.onError),
	})
	nc, err := natsgo.Connect(b.cfg.URL, opts...)
	if err != nil {
		b.started.Store(false)
		return fmt.Errorf("megaws/nats: connect %s: %w", redact(b.cfg.URL), err)
	}
	b.nc = nc
	b.maxPayload.Store(nc.MaxPayload())
	b.up.Store(true)
	b.log.Info("megaws/nats: connected", "server", nc.ConnectedUrlRedacted(), "max_payload", nc.MaxPayload())
	b.wg.Add(2)
	go b.writer()
	go b.deliverer(deliver)
	return nil
}

// Publish queues msg for channel and returns at once: it never waits for
// NATS. It returns ErrDown while the broker is disconnected, ErrQueueFull
// when MaxQueuedBytes are waiting, ErrTooLarge for a message over NATS's
// max_payload, and ErrClosed after Close; the message is dropped then
// (counted in Stats.Dropped). msg is copied; the caller may reuse it.
func (b *Broker) Publish(channel string, msg []byte) error {
	switch {
	case b.closed.Load():
		b.dropped.Add(1)
		return ErrClosed
	case !b.up.Load():
		b.dropped.Add(1)
		return ErrDown
	case int64(len(msg)) > b.maxPayload.Load():
		b.dropped.Add(1)
		return ErrTooLarge
	}
	if !b.q.Push(channel, msg) {
		b.dropped.Add(1)
		return ErrQueueFull
	}
	return nil
}

// Subscribe asks for the messages of channel. It returns at once; the
// writer goroutine subscribes, channels in the order of the Subscribe and
// Unsubscribe calls, each in the state its last call asked for (a channel
// subscribed and unsubscribed again before the writer got to it is left
// alone). Subscribing to a channel already subscribed does nothing. While
// NATS is unreachable the subscription is recorded and sent on reconnect.
func (b *Broker) Subscribe(channel string) error { return b.change(channel, true) }

// Unsubscribe stops the messages of channel, in order with Subscribe calls;
// it returns at once. Messages already received may still be delivered.
func (b *Broker) Unsubscribe(channel string) error { return b.change(channel, false) }

func (b *Broker) change(channel string, sub bool) error {
	if b.closed.Load() {
		return ErrClosed
	}
	if b.changes.Set(channel, sub) {
		b.q.Signal()
	}
	return nil
}

// Close hands what is queued to NATS (waiting at most a second for it to be
// flushed, or WriteTimeout for a writer stuck on a stalled NATS), stops
// delivering and disconnects. No deliver call starts after Close returns.
// Close on a broker that never started just marks it closed.
func (b *Broker) Close() error {
	if !b.closed.CompareAndSwap(false, true) {
		return nil
	}
	b.q.Close()
	if b.nc == nil {
		return nil
	}
	close(b.stop)
	b.wg.Wait()
	b.nc.Close()
	b.up.Store(false)
	return nil
}

// Stats are a Broker's counters.
type Stats struct {
	// Connected reports whether the broker is connected to NATS now.
	Connected bool
	// Published counts messages handed to nats.go for NATS.
	Published uint64
	// Dropped counts messages that did not reach NATS: refused by Publish
	// (disconnected, queue full, too large, closed — the server counts
	// those in its Stats.ClusterDrops too) or queued and then refused by
	// nats.go (the connection was lost meanwhile).
	Dropped uint64
	// Received counts messages handed to the server's deliver function.
	Received uint64
	// SlowConsumerDrops counts messages NATS sent that were dropped because
	// MaxPending messages were already waiting for the deliverer.
	SlowConsumerDrops uint64
	// Disconnects and Reconnects count losses of the connection to NATS and
	// recoveries from them.
	Disconnects, Reconnects uint64
	// QueuedBytes is what waits for the writer now (see MaxQueuedBytes).
	QueuedBytes int
	// Subscriptions is the number of channels subscribed now.
	Subscriptions int
}

// Stats returns the broker's counters. Any goroutine.
func (b *Broker) Stats() Stats {
	st := Stats{
		Connected:   b.up.Load(),
		Published:   b.published.Load(),
		Dropped:     b.dropped.Load(),
		Received:    b.received.Load(),
		Disconnects: b.disconnects.Load(),
		Reconnects:  b.reconnects.Load(),
		QueuedBytes: b.q.Len(),
	}
	b.subsMu.Lock()
	st.SlowConsumerDrops = b.retired
	st.Subscriptions = len(b.subs)
	for _, s := range b.subs {
		if n, err := s.Dropped(); err == nil && n > 0 {
			st.SlowConsumerDrops += uint64(n)
		}
	}
	b.subsMu.Unlock()
	return st
}

// writer applies subscription changes and hands queued publishes to
// nats.go. It is the only goroutine that calls into nats.go for them, so a
// NATS connection that stalls (nats.go then blocks on its socket) stalls
// the writer, never a publisher.
func (b *Broker) writer() {
	defer b.wg.Done()
	var batch []outbox.Item
	b.applyOps() // Subscribe calls made before Start
	for {
		select {
		case <-b.q.Wake():
		case <-b.stop:
			b.applyOps()
			batch = b.q.Take(batch[:0])
			b.publishBatch(batch)
			if err := b.nc.FlushTimeout(time.Second); err != nil && b.up.Load() {
				b.log.Warn("megaws/nats: flush on close", "err", err)
			}
			return
		}
		b.applyOps()
		batch = b.q.Take(batch[:0])
		b.publishBatch(batch)
		b.reportDrops()
	}
}

func (b *Broker) publishBatch(batch []outbox.Item) {
	for _, it := range batch {
		if err := b.nc.Publish(b.cfg.Prefix+it.Channel, it.Msg); err != nil {
			b.dropped.Add(1)
			continue
		}
		b.published.Add(1)
	}
}

// applyOps performs the pending subscription changes in order.
func (b *Broker) applyOps() {
	b.opsBuf = b.changes.Take(b.opsBuf[:0])
	for _, op := range b.opsBuf {
		b.subsMu.Lock()
		s := b.subs[op.Channel]
		if !op.Sub && s != nil {
			delete(b.subs, op.Channel)
			if n, err := s.Dropped(); err == nil && n > 0 {
				b.retired += uint64(n)
			}
		}
		b.subsMu.Unlock()
		switch {
		case op.Sub && s == nil:
			s, err := b.nc.ChanSubscribe(b.cfg.Prefix+op.Channel, b.msgs)
			if err != nil {
				b.log.Error("megaws/nats: subscribe", "subject", b.cfg.Prefix+op.Channel, "err", err)
				continue
			}
			b.subsMu.Lock()
			b.subs[op.Channel] = s
			b.subsMu.Unlock()
		case !op.Sub && s != nil:
			if err := s.Unsubscribe(); err != nil {
				b.log.Warn("megaws/nats: unsubscribe", "subject", s.Subject, "err", err)
			}
		}
	}
}

// deliverer hands every received message to the server.
func (b *Broker) deliverer(deliver func(string, []byte)) {
	defer b.wg.Done()
	for {
		select {
		case m := <-b.msgs:
			ch, ok := strings.CutPrefix(m.Subject, b.cfg.Prefix)
			if !ok {
				continue
			}
			b.received.Add(1)
			deliver(ch, m.Data)
		case <-b.stop:
			return
		}
	}
}

// onDisconnect runs on nats.go's callback goroutine.
func (b *Broker) onDisconnect(_ *natsgo.Conn, err error) {
	if b.closed.Load() {
		return
	}
	b.up.Store(false)
	b.disconnects.Add(1)
	b.log.Warn("megaws/nats: disconnected; publishes are dropped until NATS is back", "err", err)
}

// onReconnect runs on nats.go's callback goroutine, after nats.go has sent
// the subscriptions again.
func (b *Broker) onReconnect(nc *natsgo.Conn) {
	b.maxPayload.Store(nc.MaxPayload())
	b.up.Store(true)
	b.reconnects.Add(1)
	b.log.Info("megaws/nats: reconnected", "server", nc.ConnectedUrlRedacted(), "dropped_total", b.dropped.Load())
}

// onError reports asynchronous errors, slow consumers above all (nats.go
// calls it once when a subscription starts dropping).
func (b *Broker) onError(_ *natsgo.Conn, s *natsgo.Subscription, err error) {
	if errors.Is(err, natsgo.ErrSlowConsumer) && s != nil {
		b.log.Warn("megaws/nats: slow consumer: messages from NATS dropped", "subject", s.Subject, "max_pending", b.cfg.MaxPending)
		return
	}
	b.log.Warn("megaws/nats: error", "err", err)
}

// reportDrops logs the drops since the last report, at most every 10 s.
func (b *Broker) reportDrops() {
	now := uint64(time.Now().Unix())
	d := b.dropped.Load()
	last := b.lastDropLog.Load()
	if d == last || now < b.lastLogAt.Load()+10 {
		return
	}
	b.lastLogAt.Store(now)
	b.lastDropLog.Store(d)
	b.log.Warn("megaws/nats: messages dropped", "dropped", d-last, "dropped_total", d, "queued_bytes", b.q.Len())
}

// redact hides a password in a URL for logs.
func redact(u string) string {
	if at := strings.LastIndexByte(u, '@'); at >= 0 {
		if i := strings.Index(u, "://"); i >= 0 && i < at {
			return u[:i+3] + "***" + u[at:]
		}
	}
	return u
}

var _ server.Broker = (*Broker)(nil)
