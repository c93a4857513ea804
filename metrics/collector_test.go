package metrics

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/codec"
	"github.com/megaws/megaws/server"
	"github.com/prometheus/client_golang/prometheus"
)

// testHandler echoes messages, refuses upgrades of /forbidden (403), panics
// on the message "panic" and blocks its loop on "block": for 300 ms, or,
// when blocked is set, from the moment it closes blocked until release is
// closed.
type testHandler struct {
	server.BaseHandler
	blocked, release chan struct{}
}

func (testHandler) OnUpgrade(_ *server.Conn, r *server.Request) error {
	if r.Path() == "/forbidden" {
		return server.Reject(http.StatusForbidden, "forbidden")
	}
	return nil
}

func (h testHandler) OnMessage(c *server.Conn, op ws.OpCode, p []byte) {
	switch string(p) {
	case "panic":
		panic("a handler bug")
	case "block": // a handler that blocks: what loop lag is for
		if h.blocked == nil {
			time.Sleep(300 * time.Millisecond)
			break
		}
		close(h.blocked)
		<-h.release
	}
	_ = c.WriteMessage(op, p)
}

// TestScrape runs a server, talks to it with raw clients (messages, a clean
// close, a plain GET, a refused upgrade, /healthz, an unmasked frame, a
// panicking handler) and checks what a scrape reports, then that every
// field of server.Stats has its metric in the scrape.
func TestScrape(t *testing.T) {
	s, addr := startServer(t, testHandler{}, server.Config{Loops: 2})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(s))

	m, _ := gather(t, reg)
	for k, want := range map[string]float64{
		"megaws_connections":                 0,
		"megaws_event_loops":                 2,
		"megaws_handshakes_accepted_total":   0,
		"megaws_messages_received_total":     0,
		"megaws_queued_bytes":                0,
		"megaws_cluster_messages_sent_total": 0,
	} {
		if got, ok := m[k]; !ok || got != want {
			t.Errorf("fresh server: %s = %v (present %v), want %v", k, got, ok, want)
		}
	}

	const msgs, size = 5, 100
	payload := []byte(strings.Repeat("m", size))
	c := dial(t, addr)
	c.upgrade("/")
	for range msgs {
		c.send(ws.OpText, payload)
		if h, p := c.readFrame(); h.OpCode != ws.OpText || len(p) != size {
			t.Fatalf("echo: %v of %d bytes", h.OpCode, len(p))
		}
	}
	waitSamples(t, reg, map[string]float64{
		"megaws_connections":               1,
		"megaws_handshakes_accepted_total": 1,
		"megaws_messages_received_total":   msgs,
		"megaws_received_bytes_total":      msgs * size,
		"megaws_messages_sent_total":       msgs,
		"megaws_sent_bytes_total":          msgs * size,
	})
	c.send(ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye"))
	c.expectClose(ws.StatusNormalClosure)

	if status := dial(t, addr).get("/", false); status != http.StatusUpgradeRequired {
		t.Errorf("plain GET: status %d, want 426", status)
	}
	if status := dial(t, addr).get("/forbidden", true); status != http.StatusForbidden {
		t.Errorf("upgrade refused by OnUpgrade: status %d, want 403", status)
	}
	if status := dial(t, addr).get("/healthz", false); status != http.StatusOK {
		t.Errorf("GET /healthz: status %d, want 200", status)
	}

	unmasked := dial(t, addr)
	unmasked.upgrade("/")
	unmasked.write(codec.AppendFrame(nil, ws.OpText, true, []byte("unmasked")))
	unmasked.expectClose(ws.StatusProtocolError) // RFC 6455 §5.1

	panicky := dial(t, addr)
	panicky.upgrade("/")
	panicky.send(ws.OpText, []byte("panic"))
	panicky.expectClose(ws.StatusInternalServerError)

	m = waitSamples(t, reg, map[string]float64{
		"megaws_handshakes_accepted_total":                                3,
		`megaws_handshakes_rejected_total{status="426"}`:                  1,
		`megaws_handshakes_rejected_total{status="403"}`:                  1,
		`megaws_http_served_total{status="200"}`:                          1,
		`megaws_closes_total{code="1000"}`:                                1,
		`megaws_closes_total{code="1002"}`:                                1,
		`megaws_closes_total{code="1011"}`:                                1,
		`megaws_protocol_errors_total{kind="client_frame_is_not_masked"}`: 1,
		`megaws_handler_panics_total{callback="OnMessage"}`:               1,
		"megaws_messages_received_total":                                  msgs + 1,      // + "panic"
		"megaws_received_bytes_total":                                     msgs*size + 5, // + len("panic")
		"megaws_write_queue_drops_total":                                  0,
		"megaws_budget_drops_total":                                       0,
		"megaws_read_queue_drops_total":                                   0,
		"megaws_fd_shed_total":                                            0,
		"megaws_event_loops":                                              2,
		"megaws_connections":                                              0,
	})
	if _, ok := m[`megaws_handshakes_rejected_total{status="200"}`]; ok {
		t.Errorf("a served /healthz is counted as a rejected handshake")
	}

	// Every field of server.Stats shows in a real scrape, under its name and
	// type; the labelled ones too, now that the traffic above filled them.
	_, types := gather(t, reg)
	for field, fm := range statsMetrics {
		if got := types["megaws_"+fm.name]; got != fm.typ {
			t.Errorf("Stats.%s: megaws_%s is %q in the scrape, want a %s", field, fm.name, got, fm.typ)
		}
	}
	loops := len(s.Stats().LoopLag)
	m, _ = gather(t, reg)
	for i := range loops {
		for _, name := range []string{"megaws_loop_lag_seconds", "megaws_loop_lag_max_seconds"} {
			if _, ok := m[sample(name, "loop", i)]; !ok {
				t.Errorf("%s missing for loop %d of %d", name, i, loops)
			}
		}
	}
}

// TestLoopLagShowsBlockingHandler: a handler that blocks its loop for 300 ms
// shows up within one scrape as megaws_loop_lag_max_seconds of that loop,
// which is the figure to alert on.
func TestLoopLagShowsBlockingHandler(t *testing.T) {
	h := testHandler{blocked: make(chan struct{}), release: make(chan struct{})}
	s, addr := startServer(t, h, server.Config{Loops: 1})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(s))

	c := dial(t, addr)
	c.upgrade("/")
	c.send(ws.OpText, []byte("block"))
	<-h.blocked
	blockedAt := time.Now()
	// Work queued while the loop is blocked waits for it; the scrape, made
	// meanwhile, does not (the loop stays blocked until it is done: a
	// Collect that waited for the loops would never return).
	_ = s.Broadcast(ws.OpText, []byte("queued"))
	scraped := make(chan error, 1)
	go func() { _, err := reg.Gather(); scraped <- err }()
	select {
	case err := <-scraped:
		if err != nil {
			t.Fatal(err)
		}
		if m, _ := gather(t, reg); m["megaws_connections"] != 1 {
			t.Errorf("scrape during the block: connections %v, want 1", m["megaws_connections"])
		}
	case <-time.After(time.Minute):
		t.Fatal("a scrape waited for the blocked loop: Collect must not wait for the loops")
	}
	time.Sleep(300*time.Millisecond - time.Since(blockedAt))
	close(h.release)
	c.readFrame()
	c.readFrame()
	m, _ := gather(t, reg)
	if got := m[`megaws_loop_lag_max_seconds{loop="0"}`]; got < 0.2 {
		t.Errorf(`megaws_loop_lag_max_seconds{loop="0"} = %v after a 300 ms block, want >= 0.2`, got)
	}
	if _, ok := m[`megaws_loop_lag_seconds{loop="0"}`]; !ok {
		t.Errorf(`megaws_loop_lag_seconds{loop="0"} missing`)
	}
}

// TestClusterMetrics: a broadcast on node a reaches node b through the
// broker (sent on a, received on b); with the broker down it is dropped.
func TestClusterMetrics(t *testing.T) {
	hub := &hub{}
	a, _ := startServer(t, testHandler{}, server.Config{Loops: 1, Broker: hub.node()})
	b, _ := startServer(t, testHandler{}, server.Config{Loops: 1, Broker: hub.node()})
	regA, regB := prometheus.NewPedanticRegistry(), prometheus.NewPedanticRegistry()
	regA.MustRegister(NewCollector(a))
	regB.MustRegister(NewCollector(b))

	if err := a.Broadcast(ws.OpText, []byte("to all nodes")); err != nil {
		t.Fatalf("Broadcast: %v", err)
	}
	waitSample(t, regB, "megaws_cluster_messages_received_total", 1)
	m, _ := gather(t, regA)
	for k, want := range map[string]float64{
		"megaws_cluster_messages_sent_total":     1,
		"megaws_cluster_messages_received_total": 0, // a node ignores its own
		"megaws_cluster_messages_dropped_total":  0,
	} {
		if got := m[k]; got != want {
			t.Errorf("node a: %s = %v, want %v", k, got, want)
		}
	}

	hub.down.Store(true)
	if err := a.Broadcast(ws.OpText, []byte("lost")); !errors.Is(err, server.ErrClusterDrop) {
		t.Fatalf("Broadcast with the broker down: %v, want ErrClusterDrop", err)
	}
	m, _ = gather(t, regA)
	if got := m["megaws_cluster_messages_dropped_total"]; got != 1 {
		t.Errorf("node a: megaws_cluster_messages_dropped_total = %v, want 1", got)
	}
	if got := m["megaws_cluster_messages_sent_total"]; got != 1 {
		t.Errorf("node a: megaws_cluster_messages_sent_total = %v, want 1 (the drop is not sent)", got)
	}
}

// hub is an in-process pub/sub broker for several servers: every published
// message goes to the nodes subscribed to its channel, the publisher
// included, as server.Broker asks.
type hub struct {
	mu    sync.Mutex
	nodes []*hubNode
	down  atomic.Bool // Publish fails
}

type hubNode struct {
	h       *hub
	deliver func(string, []byte)
	subs    map[string]bool
}

func (h *hub) node() *hubNode {
	n := &hubNode{h: h, subs: map[string]bool{}}
	h.mu.Lock()
	h.nodes = append(h.nodes, n)
	h.mu.Unlock()
	return n
}

func (n *hubNode) Start(deliver func(string, []byte)) error {
	n.h.mu.Lock()
	n.deliver = deliver
	n.h.mu.Unlock()
	return nil
}

func (n *hubNode) Publish(channel string, msg []byte) error {
	if n.h.down.Load() {
		return errors.New("broker down")
	}
	n.h.mu.Lock()
	defer n.h.mu.Unlock()
	for _, o := range n.h.nodes {
		if o.subs[channel] && o.deliver != nil {
			o.deliver(channel, append([]byte(nil), msg...))
		}
	}
	return nil
}

func (n *hubNode) Subscribe(channel string) error {
	n.h.mu.Lock()
	n.subs[channel] = true
	n.h.mu.Unlock()
	return nil
}

func (n *hubNode) Unsubscribe(channel string) error {
	n.h.mu.Lock()
	delete(n.subs, channel)
	n.h.mu.Unlock()
	return nil
}

func (n *hubNode) Close() error { return nil }
