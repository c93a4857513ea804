// Package redis joins megaws nodes into a cluster through Redis pub/sub: a
// Broker implements server.Broker on the rueidis client.
//
//	b := redis.New(redis.Config{URL: "redis://127.0.0.1:6379", Logger: log})
//	s := server.New(h, server.Config{Broker: b})
//
// Every megaws channel is a Redis channel under a prefix ("megaws.room.lobby").
// Redis pub/sub keeps nothing: delivery is at most once, what is published
// while Redis is unreachable is dropped and counted, and local members of a
// room get their copy anyway.
//
// Goroutines: besides rueidis's own (a reader and a writer per connection),
// a Broker runs one writer, which sends queued publishes as pipelined
// batches of PUBLISH, and one subscriber, which owns the dedicated
// connection that subscriptions need in Redis, applies Subscribe and
// Unsubscribe on it, and reconnects and subscribes again when it is lost.
// Messages are delivered from rueidis's reader of that connection. Neither
// grows with the number of rooms.
package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/redis/rueidis"

	"github.com/megaws/megaws/broker/internal/outbox"
	"github.com/megaws/megaws/server"
)

// Defaults of Config fields.
const (
	DefaultURL            = "redis://127.0.0.1:6379"
	DefaultPrefix         = "megaws."
	DefaultMaxQueuedBytes = 8 << 20
	DefaultReconnectWait  = time.Second
	DefaultConnectTimeout = 2 * time.Second
	DefaultWriteTimeout   = 5 * time.Second
)

// batchSize is how many PUBLISH commands go out in one pipelined round
// trip: enough to amortise it (see the package's benchmark figures in the
// cluster report), small enough to start the next batch soon.
const batchSize = 256

// subscribeChunk is how many channels one SUBSCRIBE names when a
// connection subscribes to everything again.
const subscribeChunk = 512

// Errors returned by Publish (the server counts them in Stats.ClusterDrops),
// Subscribe and Start.
var (
	ErrDown      = errors.New("megaws/redis: not connected to Redis")
	ErrQueueFull = errors.New("megaws/redis: outbound queue full (Redis is slower than the publishers)")
	ErrClosed    = errors.New("megaws/redis: broker closed")
	ErrStarted   = errors.New("megaws/redis: broker already started")
)

// Config configures a Broker. The zero value connects to
// redis://127.0.0.1:6379 with the defaults below.
type Config struct {
	// URL is the Redis server: redis://[user:pass@]host:port[/db], rediss://
	// for TLS, or unix:///path/to/socket. Default redis://127.0.0.1:6379.
	URL string
	// Prefix is put before every channel name, so that several megaws
	// clusters can share a Redis server. Default "megaws.".
	Prefix string
	// MaxQueuedBytes bounds the publishes waiting for the writer goroutine
	// (message bytes plus a small overhead each); past it Publish returns
	// ErrQueueFull. Default 8 MiB.
	MaxQueuedBytes int
	// ReconnectWait is the pause between attempts to reach Redis again after
	// the subscription connection was lost; the broker retries forever.
	// Default 1 s.
	ReconnectWait time.Duration
	// ConnectTimeout bounds each attempt to connect, and each SUBSCRIBE or
	// UNSUBSCRIBE. Default 2 s.
	ConnectTimeout time.Duration
	// WriteTimeout is how long Redis may leave a write or a command
	// unanswered before the connection is taken for dead, dropped and made
	// again; rueidis also pings an idle connection at this interval. It
	// bounds how long Close can wait for a stalled writer. Default 5 s.
	WriteTimeout time.Duration
	// Logger receives connection events and drop reports, never one line per
	// message. Default: discard.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.URL == "" {
		c.URL = DefaultURL
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.MaxQueuedBytes <= 0 {
		c.MaxQueuedBytes = DefaultMaxQueuedBytes
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
	return c
}

// Broker is a server.Broker on Redis pub/sub. Create it with New and give it
// to one server.Config; the server calls Start, Publish, Subscribe,
// Unsubscribe and Close. All methods are safe from any goroutine.
type Broker struct {
	cfg Config
	log *slog.Logger
	q   *outbox.Queue

	client  rueidis.Client
	deliver func(string, []byte)
	up      atomic.Bool
	closed  atomic.Bool
	started atomic.Bool

	changes outbox.Changes // wanted channels; changes not yet applied
	opWake  chan struct{}
	have    map[string]struct{} // subscriber only: channels subscribed on the connection
	opsBuf  []outbox.Change     // subscriber only
	subs    atomic.Int64        // len(have), for Stats

	// gate orders deliveries with Close: a delivery holds it shared.
	gate     sync.RWMutex
	gateShut bool

	stop chan struct{}
	wg   sync.WaitGroup

	published, dropped, received atomic.Uint64
	reconnects, disconnects      atomic.Uint64
	lastDropLog, lastLogAt       atomic.Uint64
}

// New returns a Broker configured by a copy of cfg with defaults filled in.
// It does not connect: Start does.
func New(cfg Config) *Broker {
	c := cfg.withDefaults()
	return &Broker{
		cfg:    c,
		log:    c.Logger,
		q:      outbox.New(c.MaxQueuedBytes),
		opWake: make(chan struct{}, 1),
		stop:   make(chan struct{}),
	}
}

// Start connects to Redis (a connection for publishing and a dedicated one
// for subscriptions) and starts the writer and subscriber goroutines.
// deliver is called from rueidis's reader goroutine of the subscription
// connection, one message at a time in arrival order, with the channel name
// (prefix removed) and the payload, which deliver must not keep or change.
// Start blocks while it connects (at most about ConnectTimeout) and returns
// an error when Redis does not answer: a node does not start without its
// broker. Once connected, the broker reconnects and subscribes again by
// itself, forever.
func (b *Broker) Start(deliver func(channel string, msg []byte)) error {
	if b.closed.Load() {
		return ErrClosed
	}
	if !b.started.CompareAndSwap(false, true) {
		return ErrStarted
	}
	opt, err := rueidis.ParseURL(b.cfg.URL)
	if err != nil {
		b.started.Store(false)
		return fmt.Errorf("megaws/redis: %w", err)
	}
	opt.DisableCache = true // no client-side caching: pub/sub only
	opt.DisableRetry = true // a PUBLISH retried after a lost reply could arrive twice
	opt.Dialer.Timeout = b.cfg.ConnectTimeout
	opt.ConnWriteTimeout = b.cfg.WriteTimeout
	opt.ClientName = "megaws"
	client, err := rueidis.NewClient(opt)
	if err != nil {
		b.started.Store(false)
		return fmt.Errorf("megaws/redis: connect %s: %w", redact(b.cfg.URL), err)
	}
	b.client, b.deliver = client, deliver
	sc, err := b.connectSubscriber()
	if err != nil {
		client.Close()
		b.started.Store(false)
		return fmt.Errorf("megaws/redis: connect %s: %w", redact(b.cfg.URL), err)
	}
	b.up.Store(true)
	b.log.Info("megaws/redis: connected", "server", redact(b.cfg.URL))
	b.wg.Add(2)
	go b.writer()
	go b.subscriber(sc)
	return nil
}

// Publish queues msg for channel and returns at once: it never waits for
// Redis. It returns ErrDown while the subscription connection is lost (Redis
// is taken to be unreachable), ErrQueueFull when MaxQueuedBytes are waiting,
// and ErrClosed after Close; the message is dropped then (counted in
// Stats.Dropped). msg is copied; the caller may reuse it.
func (b *Broker) Publish(channel string, msg []byte) error {
	switch {
	case b.closed.Load():
		b.dropped.Add(1)
		return ErrClosed
	case !b.up.Load():
		b.dropped.Add(1)
		return ErrDown
	}
	if !b.q.Push(channel, msg) {
		b.dropped.Add(1)
		return ErrQueueFull
	}
	return nil
}

// Subscribe asks for the messages of channel. It returns at once; the
// subscriber goroutine sends SUBSCRIBE and UNSUBSCRIBE, channels in the
// order of the calls, each in the state its last call asked for (a channel
// subscribed and unsubscribed again before the subscriber got to it is left
// alone). Subscribing to a channel already subscribed does nothing. While
// Redis is unreachable the subscription is recorded and made when the
// broker reconnects.
func (b *Broker) Subscribe(channel string) error { return b.change(channel, true) }

// Unsubscribe stops the messages of channel, in order with Subscribe calls;
// it returns at once. Messages already received may still be delivered.
func (b *Broker) Unsubscribe(channel string) error { return b.change(channel, false) }

func (b *Broker) change(channel string, sub bool) error {
	if b.closed.Load() {
		return ErrClosed
	}
	if b.changes.Set(channel, sub) {
		select {
		case b.opWake <- struct{}{}:
		default:
		}
	}
	return nil
}

// Close sends what is queued (waiting at most a second for Redis, or
// WriteTimeout for a writer stuck on a stalled Redis), stops delivering and
// disconnects. No deliver call starts after Close returns.
func (b *Broker) Close() error {
	if !b.closed.CompareAndSwap(false, true) {
		return nil
	}
	b.q.Close()
	if b.client == nil {
		return nil
	}
	close(b.stop)
	b.wg.Wait()
	b.gate.Lock()
	b.gateShut = true
	b.gate.Unlock()
	b.client.Close()
	b.up.Store(false)
	return nil
}

// Stats are a Broker's counters.
type Stats struct {
	// Connected reports whether the subscription connection is up now.
	Connected bool
	// Published counts messages Redis accepted.
	Published uint64
	// Dropped counts messages that did not reach Redis: refused by Publish
	// (disconnected, queue full, closed — the server counts those in its
	// Stats.ClusterDrops too) or queued and then not accepted by Redis.
	Dropped uint64
	// Received counts messages handed to the server's deliver function.
	Received uint64
	// Disconnects and Reconnects count losses of the subscription connection
	// and recoveries from them. Redis closes the connection of a subscriber
	// that reads too slowly (client-output-buffer-limit pubsub): that shows
	// here, with the messages lost meanwhile.
	Disconnects, Reconnects uint64
	// QueuedBytes is what waits for the writer now (see MaxQueuedBytes).
	QueuedBytes int
	// Subscriptions is the number of channels subscribed on the connection.
	Subscriptions int
}

// Stats returns the broker's counters. Any goroutine.
func (b *Broker) Stats() Stats {
	return Stats{
		Connected:     b.up.Load(),
		Published:     b.published.Load(),
		Dropped:       b.dropped.Load(),
		Received:      b.received.Load(),
		Disconnects:   b.disconnects.Load(),
		Reconnects:    b.reconnects.Load(),
		QueuedBytes:   b.q.Len(),
		Subscriptions: int(b.subs.Load()),
	}
}

// writer sends queued publishes in pipelined batches. It waits for each
// batch's replies before the next, which keeps every channel's order
// whichever of rueidis's connections a batch takes. A Redis that stalls
// stalls the writer, never a publisher: the queue fills and Publish refuses.
func (b *Broker) writer() {
	defer b.wg.Done()
	var batch []outbox.Item
	cmds := make(rueidis.Commands, 0, batchSize)
	for {
		ctx := context.Background()
		final := false
		select {
		case <-b.q.Wake():
		case <-b.stop:
			// No Take follows, so the arena outlives a timed-out batch.
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, time.Second)
			defer cancel()
			final = true
		}
		batch = b.q.Take(batch[:0])
		for len(batch) > 0 {
			n := min(len(batch), batchSize)
			cmds = cmds[:0]
			for _, it := range batch[:n] {
				// The command aliases the arena: DoMulti returns once
				// Redis has answered (or the connection failed), and the
				// arena is reused only after the next Take.
				cmds = append(cmds, b.client.B().Publish().Channel(b.cfg.Prefix+it.Channel).Message(unsafeString(it.Msg)).Build())
			}
			var failed error
			for _, r := range b.client.DoMulti(ctx, cmds...) {
				if err := r.Error(); err != nil {
					b.dropped.Add(1)
					failed = err
					continue
				}
				b.published.Add(1)
			}
			if failed != nil && b.up.Load() {
				b.log.Warn("megaws/redis: PUBLISH failed", "err", failed)
			}
			batch = batch[n:]
		}
		if final {
			return
		}
		b.reportDrops()
	}
}

// subConn is the dedicated subscription connection.
type subConn struct {
	dc   rueidis.DedicatedClient
	lost <-chan error // gets the reason and closes when the hooks stop
}

// close closes the connection (Close also gives it back to rueidis's pool,
// which discards a closed one) and waits until no hook can run any more.
func (s subConn) close() {
	s.dc.Close()
	for range s.lost { // the reason, if any, then closed
	}
}

// connectSubscriber opens a dedicated connection, sets the message hook and
// subscribes to every channel wanted now.
func (b *Broker) connectSubscriber() (subConn, error) {
	dc, _ := b.client.Dedicate()
	s := subConn{dc: dc}
	s.lost = dc.SetPubSubHooks(rueidis.PubSubHooks{OnMessage: b.onMessage})
	want := b.changes.Snapshot() // it includes the pending changes
	chans := make([]string, len(want))
	for i, ch := range want {
		chans[i] = b.cfg.Prefix + ch
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.ConnectTimeout)
	defer cancel()
	var err error
	if len(chans) == 0 {
		err = dc.Do(ctx, dc.B().Ping().Build()).Error()
	}
	for len(chans) > 0 && err == nil {
		n := min(len(chans), subscribeChunk)
		err = dc.Do(ctx, dc.B().Subscribe().Channel(chans[:n]...).Build()).Error()
		chans = chans[n:]
	}
	if err != nil {
		s.close()
		return subConn{}, err
	}
	b.have = make(map[string]struct{}, len(want))
	for _, ch := range want {
		b.have[ch] = struct{}{}
	}
	b.subs.Store(int64(len(b.have)))
	return s, nil
}

// subscriber applies subscription changes on the dedicated connection and
// replaces the connection when it is lost, subscribing again to everything.
func (b *Broker) subscriber(s subConn) {
	defer b.wg.Done()
	for {
		err := b.serveSubscriptions(s)
		s.close()
		if err == nil {
			return // stopping
		}
		if b.up.CompareAndSwap(true, false) {
			b.disconnects.Add(1)
			b.log.Warn("megaws/redis: disconnected; publishes are dropped until Redis is back", "err", err)
		}
		for {
			select {
			case <-time.After(b.cfg.ReconnectWait):
			case <-b.stop:
				return
			}
			if s, err = b.connectSubscriber(); err == nil {
				if err = b.pingPublisher(); err == nil {
					break
				}
				s.close()
			}
			b.log.Debug("megaws/redis: reconnect failed", "err", err)
		}
		b.up.Store(true)
		b.reconnects.Add(1)
		b.log.Info("megaws/redis: reconnected", "server", redact(b.cfg.URL), "subscriptions", b.subs.Load(), "dropped_total", b.dropped.Load())
	}
}

// pingPublisher makes sure the publishing connection works again before
// Publish accepts messages: the first command on a connection that died with
// Redis fails, and rueidis dials a new one for the next.
func (b *Broker) pingPublisher() error {
	var err error
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), b.cfg.ConnectTimeout)
		err = b.client.Do(ctx, b.client.B().Ping().Build()).Error()
		cancel()
		if err == nil {
			return nil
		}
	}
	return err
}

// serveSubscriptions applies changes until the connection is lost (the
// error) or the broker stops (nil).
func (b *Broker) serveSubscriptions(s subConn) error {
	for {
		select {
		case err, ok := <-s.lost:
			if !ok || err == nil {
				err = errors.New("subscription connection closed")
			}
			return err
		case <-b.stop:
			return nil
		case <-b.opWake:
		}
		b.opsBuf = b.changes.Take(b.opsBuf[:0])
		for _, op := range b.opsBuf {
			if _, have := b.have[op.Channel]; have == op.Sub {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), b.cfg.ConnectTimeout)
			cmd, name := s.dc.B().Unsubscribe().Channel(b.cfg.Prefix+op.Channel).Build(), "UNSUBSCRIBE"
			if op.Sub {
				cmd, name = s.dc.B().Subscribe().Channel(b.cfg.Prefix+op.Channel).Build(), "SUBSCRIBE"
			}
			err := s.dc.Do(ctx, cmd).Error()
			cancel()
			if err != nil {
				// The connection's state is unknown now: start again
				// from the wanted set on a new one.
				return fmt.Errorf("%s %s: %w", name, op.Channel, err)
			}
			if op.Sub {
				b.have[op.Channel] = struct{}{}
			} else {
				delete(b.have, op.Channel)
			}
			b.subs.Store(int64(len(b.have)))
		}
	}
}

// onMessage runs on rueidis's reader goroutine of the subscription
// connection.
func (b *Broker) onMessage(m rueidis.PubSubMessage) {
	ch, ok := strings.CutPrefix(m.Channel, b.cfg.Prefix)
	if !ok {
		return
	}
	b.gate.RLock()
	if !b.gateShut {
		b.received.Add(1)
		// deliver only reads msg, and rueidis made the string for this
		// message alone.
		b.deliver(ch, unsafe.Slice(unsafe.StringData(m.Message), len(m.Message)))
	}
	b.gate.RUnlock()
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
	b.log.Warn("megaws/redis: messages dropped", "dropped", d-last, "dropped_total", d, "queued_bytes", b.q.Len())
}

// unsafeString views b as a string without copying; b must not change while
// the string is in use.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

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
