package main

import (
	"github.com/gobwas/ws"
	"github.com/megaws/megaws/cmd/megaws/internal/demo"
	"github.com/megaws/megaws/server"
)

// echoHandler sends every message back to its sender.
type echoHandler struct{ server.BaseHandler }

func (echoHandler) OnMessage(c *server.Conn, op ws.OpCode, p []byte) { _ = c.WriteMessage(op, p) }

// broadcastHandler sends every message to every connection, the sender included.
type broadcastHandler struct {
	server.BaseHandler
	s *server.Server
}

func (h *broadcastHandler) OnMessage(_ *server.Conn, op ws.OpCode, p []byte) {
	_ = h.s.Broadcast(op, p)
}

// sinkHandler reads and drops.
type sinkHandler struct{ server.BaseHandler }

// newHandler returns the handler for a --mode. The caller sets the broadcast
// handler's server once it exists, and starts the demo's.
func newHandler(mode string) server.Handler {
	switch mode {
	case "broadcast":
		return &broadcastHandler{}
	case "sink":
		return sinkHandler{}
	case "demo":
		return demo.New()
	}
	return echoHandler{}
}
