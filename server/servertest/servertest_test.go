package servertest_test

import (
	"context"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/megaws/megaws/server"
	"github.com/megaws/megaws/server/servertest"
)

type echo struct{ server.BaseHandler }

func (echo) OnMessage(c *server.Conn, op ws.OpCode, p []byte) { _ = c.WriteMessage(op, p) }

func TestStart(t *testing.T) {
	s := servertest.Start(t, echo{}, server.Config{})
	nc, _, _, err := ws.Dial(context.Background(), servertest.URL(s, "/"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := wsutil.WriteClientText(nc, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	p, err := wsutil.ReadServerText(nc)
	if err != nil || string(p) != "hi" {
		t.Fatalf("%q %v", p, err)
	}
	servertest.Eventually(t, 5*time.Second, func() bool { return s.Conns() == 1 })
	if servertest.WaitFor(10*time.Millisecond, func() bool { return false }) {
		t.Fatal("WaitFor held a false condition")
	}
}
