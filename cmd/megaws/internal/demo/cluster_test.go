package demo_test

import (
	"strconv"
	"testing"
	"time"

	natsbroker "github.com/megaws/megaws/broker/nats"
	"github.com/megaws/megaws/cmd/megaws/internal/demo"
	"github.com/megaws/megaws/internal/brokertest"
	"github.com/megaws/megaws/server"
	"github.com/megaws/megaws/server/servertest"
)

// startNode runs a demo node on a real NATS server.
func startNode(t *testing.T, natsPort int) string {
	t.Helper()
	d := demo.New()
	b := natsbroker.New(natsbroker.Config{URL: "nats://127.0.0.1:" + strconv.Itoa(natsPort)})
	s := server.New(d, server.Config{Loops: 2, Broker: b})
	stop := d.Start(s)
	t.Cleanup(stop)
	servertest.Serve(t, s)
	return servertest.Addr(s)
}

// TestBoardAcrossNodes: two demo nodes on one NATS server keep one board:
// a move made on one node reaches the other node's players and its board, so
// a player who joins the other node later gets it in the snapshot; players'
// ids differ across nodes.
func TestBoardAcrossNodes(t *testing.T) {
	nats := brokertest.StartNATS(t)
	addrA, addrB := startNode(t, nats.Port), startNode(t, nats.Port)
	a, ha := join(t, addrA)
	b, hb := join(t, addrB)
	if ha.You == hb.You {
		t.Fatalf("players on two nodes share id %d", ha.You)
	}
	a.send(`{"t":"paint","i":5}`)
	if m := b.next("paint"); m.I != 5 || m.By != ha.You {
		t.Fatalf("node B's player saw %+v", m)
	}
	a.next("paint")
	// The move reached node B's board: a later player there gets it.
	ok := servertest.WaitFor(5*time.Second, func() bool {
		_, hc := join(t, addrB)
		return hc.Cells[5] != '0'
	})
	if !ok {
		t.Fatal("a player joining node B does not see node A's move")
	}
	b.send(`{"t":"erase","i":5}`)
	if m := a.next("paint"); m.I != 5 || m.C != 0 {
		t.Fatalf("node A's player saw %+v", m)
	}
	// Each node's panel reaches its own players only.
	if m := a.next("stats"); m.Conns < 1 {
		t.Fatalf("stats %+v", m)
	}
}
