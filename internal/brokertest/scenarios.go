package brokertest

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/megaws/megaws/server"
)

// Env is what the scenarios need from a broker package.
type Env struct {
	Kind Kind
	// Prefix is the channel prefix of brokers made with Opts.Prefix empty.
	Prefix string
	// New returns a broker client for the broker at url, with test timings
	// (reconnect attempts every 100 ms or so).
	New func(url string, o Opts) server.Broker
	// Stats returns the counters of a broker client from New.
	Stats func(server.Broker) Counters
}

// Opts are the broker settings a scenario chooses.
type Opts struct {
	Log            *slog.Logger
	Prefix         string // "" for the default
	MaxQueuedBytes int    // 0 for the default
}

// Counters are the figures every broker package reports in its Stats.
type Counters struct {
	Connected                    bool
	Published, Dropped, Received uint64
}

const wait = 15 * time.Second

// TestLogger returns a logger whose output the test prints if it fails.
func TestLogger(t testing.TB) *slog.Logger {
	buf := &lockedBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// cluster starts a broker process and n nodes, each with its own broker client.
func (e Env) cluster(t *testing.T, n int) (*Process, []*Node, []server.Broker) {
	t.Helper()
	p := start(t, e.Kind)
	log := TestLogger(t)
	var nodes []*Node
	var brokers []server.Broker
	for i := range n {
		b := e.New(p.URL(), Opts{Log: log.With("node", i)})
		brokers = append(brokers, b)
		nodes = append(nodes, StartNode(t, b, log.With("node", i)))
	}
	e.waitSubs(t, p, "all", n)
	return p, nodes, brokers
}

func (e Env) waitSubs(t *testing.T, p *Process, channel string, n int) {
	t.Helper()
	if err := p.WaitSubscribers(e.Prefix+channel, n, wait); err != nil {
		t.Fatal(err)
	}
}

// Delivery: three nodes. Room publishes from every node, made concurrently,
// reach every member on every node exactly once and in each publisher's
// order; a broadcast reaches every connection once; SendToID reaches the
// one connection it names, on another node or its own; connections outside
// the room get nothing else.
func Delivery(t *testing.T, e Env) {
	p, nodes, _ := e.cluster(t, 3)
	var members, plain []*Client
	for _, n := range nodes {
		members = append(members, Dial(t, n.Addr, "/room/r"), Dial(t, n.Addr, "/room/r"))
		plain = append(plain, Dial(t, n.Addr, "/"))
	}
	e.waitSubs(t, p, "room.r", 3)

	const perNode = 200
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			for seq := range perNode {
				if err := n.S.Room("r").Publish(ws.OpText, []byte(fmt.Sprintf("n%d-%d", i, seq))); err != nil {
					t.Errorf("node %d: publish %d: %v", i, seq, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := nodes[1].S.Broadcast(ws.OpText, []byte("bcast")); err != nil {
		t.Fatalf("broadcast: %v", err)
	}
	for _, c := range members {
		got := c.Expect(len(nodes)*perNode+1, wait)
		checkOrder(t, c.ID, got, len(nodes), perNode, 1)
	}
	for _, c := range plain {
		if got := c.Expect(1, wait); got[0] != "bcast" {
			t.Fatalf("connection outside the room got %q, want only the broadcast", got)
		}
	}

	target := plain[2]
	if err := nodes[0].S.SendToID(target.ID, ws.OpText, []byte("direct")); err != nil {
		t.Fatalf("SendToID to another node: %v", err)
	}
	if got := target.Expect(1, wait); got[0] != "direct" {
		t.Fatalf("SendToID target got %q", got)
	}
	if err := nodes[2].S.SendToID(target.ID, ws.OpText, []byte("direct-local")); err != nil {
		t.Fatalf("SendToID on its own node: %v", err)
	}
	if got := target.Expect(1, wait); got[0] != "direct-local" {
		t.Fatalf("SendToID target got %q", got)
	}
	for _, c := range append(members, plain...) {
		c.Quiet(150 * time.Millisecond)
	}
	// Node 0 sent its publishes and a SendToID, node 1 its publishes and the
	// broadcast, node 2 its publishes (its SendToID stayed local).
	for i, want := range []uint64{perNode + 1, perNode + 1, perNode} {
		st := nodes[i].S.Stats()
		if st.ClusterDrops != 0 || st.ClusterIn == 0 || st.ClusterOut != want {
			t.Errorf("node %d: cluster counters out %d (want %d) in %d drops %d", i, st.ClusterOut, want, st.ClusterIn, st.ClusterDrops)
		}
	}
}

// checkOrder checks that got holds, per publishing node, messages
// "n<node>-0" to "n<node>-<perNode-1>" in order, each once, and bcasts
// "bcast" messages.
func checkOrder(t *testing.T, who string, got []string, nodes, perNode, bcasts int) {
	t.Helper()
	next := make([]int, nodes)
	seen := 0
	for _, m := range got {
		if m == "bcast" {
			seen++
			continue
		}
		var node, seq int
		if _, err := fmt.Sscanf(m, "n%d-%d", &node, &seq); err != nil || node < 0 || node >= nodes {
			t.Fatalf("%s: unexpected message %q", who, m)
		}
		if seq != next[node] {
			t.Fatalf("%s: from node %d got seq %d, want %d (a gap, a duplicate or out of order)", who, node, seq, next[node])
		}
		next[node]++
	}
	for i, n := range next {
		if n != perNode {
			t.Fatalf("%s: %d messages from node %d, want %d", who, n, i, perNode)
		}
	}
	if seen != bcasts {
		t.Fatalf("%s: %d broadcasts, want %d", who, seen, bcasts)
	}
}

// Unsubscribe: a node subscribes to a room's channel on the broker only
// while it has members there, as the broker itself reports, and quick
// join/leave churn leaves the subscriptions in the state of the last call.
func Unsubscribe(t *testing.T, e Env) {
	p, nodes, _ := e.cluster(t, 2)
	a, b := nodes[0], nodes[1]
	c := Dial(t, a.Addr, "/room/solo")
	e.waitSubs(t, p, "room.solo", 1) // node a only
	if err := b.S.Room("solo").Publish(ws.OpText, []byte("to-solo")); err != nil {
		t.Fatalf("publish from a node without members: %v", err)
	}
	if got := c.Expect(1, wait); got[0] != "to-solo" {
		t.Fatalf("member got %q", got)
	}
	c.Close()
	e.waitSubs(t, p, "room.solo", 0)

	c2 := Dial(t, b.Addr, "/room/solo")
	e.waitSubs(t, p, "room.solo", 1)
	_ = a.S.Room("solo").Publish(ws.OpText, []byte("again"))
	if got := c2.Expect(1, wait); got[0] != "again" {
		t.Fatalf("member on the other node got %q", got)
	}

	// Churn: every cycle subscribes and unsubscribes node a; the last
	// state (no members) must win.
	for range 20 {
		Dial(t, a.Addr, "/room/churn").Close()
	}
	keep := Dial(t, b.Addr, "/room/churn")
	e.waitSubs(t, p, "room.churn", 1)
	time.Sleep(300 * time.Millisecond)
	e.waitSubs(t, p, "room.churn", 1)
	_ = a.S.Room("churn").Publish(ws.OpText, []byte("churned"))
	if got := keep.Expect(1, wait); got[0] != "churned" {
		t.Fatalf("member after churn got %q", got)
	}
	keep.Quiet(100 * time.Millisecond)
}

// BrokerRestart: the broker is killed. Local members keep getting every
// publish and the lost cross-node copies are counted; the broker is started
// again on the same port and the nodes reconnect and subscribe again by
// themselves: delivery across nodes resumes, in order, without duplicates.
func BrokerRestart(t *testing.T, e Env) {
	p, nodes, brokers := e.cluster(t, 2)
	a, b := nodes[0], nodes[1]
	ca, cb := Dial(t, a.Addr, "/room/r"), Dial(t, b.Addr, "/room/r")
	e.waitSubs(t, p, "room.r", 2)
	_ = a.S.Room("r").Publish(ws.OpText, []byte("before"))
	for _, c := range []*Client{ca, cb} {
		if got := c.Expect(1, wait); got[0] != "before" {
			t.Fatalf("before the outage: %q", got)
		}
	}

	pid := p.PID()
	p.Kill()
	t.Logf("killed %s (pid %d)", p.Kind, pid)
	start := time.Now()
	sent := 0
	for a.S.Stats().ClusterDrops == 0 {
		if time.Since(start) > wait {
			t.Fatalf("no cluster drop counted %v after the broker died (%d publishes)", wait, sent)
		}
		msg := "down-" + strconv.Itoa(sent)
		_ = a.S.Room("r").Publish(ws.OpText, []byte(msg))
		sent++
		if got := ca.Expect(1, wait); got[0] != msg {
			t.Fatalf("local member during the outage got %q, want %q", got[0], msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = b.S.Broadcast(ws.OpText, []byte("down-bcast"))
	if got := cb.Expect(1, wait); got[0] != "down-bcast" {
		t.Fatalf("local broadcast during the outage: %q", got)
	}
	cb.Quiet(200 * time.Millisecond) // nothing from node a got through
	t.Logf("outage: %d publishes, %d counted as cluster drops after %v", sent, a.S.Stats().ClusterDrops, time.Since(start).Round(time.Millisecond))

	p.Restart()
	t.Logf("restarted %s on port %d (pid %d)", p.Kind, p.Port, p.PID())
	start = time.Now()
	for i, br := range brokers {
		for !e.Stats(br).Connected {
			if time.Since(start) > wait {
				t.Fatalf("node %d did not reconnect within %v", i, wait)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	e.waitSubs(t, p, "room.r", 2)
	e.waitSubs(t, p, "all", 2)
	t.Logf("both nodes reconnected and subscribed again after %v", time.Since(start).Round(time.Millisecond))

	const perNode = 50
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			for seq := range perNode {
				if err := n.S.Room("r").Publish(ws.OpText, []byte(fmt.Sprintf("n%d-%d", i, seq))); err != nil {
					t.Errorf("node %d after the restart: %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, c := range []*Client{ca, cb} {
		checkOrder(t, c.ID, c.Expect(2*perNode, wait), 2, perNode, 0)
	}
	// The node channels are back too.
	if err := b.S.SendToID(ca.ID, ws.OpText, []byte("direct")); err != nil {
		t.Fatal(err)
	}
	if got := ca.Expect(1, wait); got[0] != "direct" {
		t.Fatalf("SendToID after the restart: %q", got)
	}
	ca.Quiet(150 * time.Millisecond)
	cb.Quiet(150 * time.Millisecond)
}

// NodeStopped: one of three nodes stops at once. Its own connections end;
// the broker forgets its subscriptions; the other nodes and their
// connections go on as before.
func NodeStopped(t *testing.T, e Env) {
	p, nodes, _ := e.cluster(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	ca, cb, cc := Dial(t, a.Addr, "/room/r"), Dial(t, b.Addr, "/room/r"), Dial(t, c.Addr, "/room/r")
	cplain := Dial(t, c.Addr, "/")
	e.waitSubs(t, p, "room.r", 3)

	c.Stop(0)
	cc.Closed(wait)
	cplain.Closed(wait)
	e.waitSubs(t, p, "room.r", 2)
	e.waitSubs(t, p, "all", 2)

	_ = a.S.Room("r").Publish(ws.OpText, []byte("after-stop"))
	_ = b.S.Broadcast(ws.OpText, []byte("bcast"))
	// A message for a connection of the stopped node goes nowhere.
	if err := a.S.SendToID(cc.ID, ws.OpText, []byte("lost")); err != nil {
		t.Logf("SendToID to the stopped node: %v", err)
	}
	for _, cl := range []*Client{ca, cb} {
		got := cl.Expect(2, wait)
		if strings.Join(got, ",") != "after-stop,bcast" && strings.Join(got, ",") != "bcast,after-stop" {
			t.Fatalf("%s: got %q", cl.ID, got)
		}
		cl.Quiet(150 * time.Millisecond)
	}
	for i, n := range nodes[:2] {
		if d := n.S.Stats().ClusterDrops; d != 0 {
			t.Errorf("node %d: %d cluster drops", i, d)
		}
	}
}
