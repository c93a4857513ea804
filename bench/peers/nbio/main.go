// Command nbio is the lesismal/nbio peer server of the benchmark, in
// non-blocking mode: an nbhttp engine (IOModNonBlocking) whose pollers read
// every connection, websocket.NewUpgrader, and an OnMessage handler. No
// goroutine per connection.
//
//	nbio -addr 127.0.0.1:9004 [-admin 127.0.0.1:9104] [-mode echo|broadcast|sink]
package main

import (
	"net"
	"net/http"
	"os"
	"sync"

	"github.com/lesismal/nbio/logging"
	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/megaws/megaws/bench/peers/internal/peercmd"
)

// hub holds the open connections for broadcast mode. websocket.Conn writes
// are safe for concurrent use and do not block: nbio buffers what the socket
// does not take.
type hub struct {
	mu    sync.RWMutex
	conns map[*websocket.Conn]struct{}
}

func (h *hub) add(c *websocket.Conn) {
	h.mu.Lock()
	h.conns[c] = struct{}{}
	h.mu.Unlock()
}

func (h *hub) remove(c *websocket.Conn) {
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
}

func (h *hub) broadcast(mt websocket.MessageType, data []byte) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for c := range h.conns {
		_ = c.WriteMessage(mt, data)
	}
}

func main() {
	// nbio logs to stdout by default; stdout carries only the ready line.
	logging.Output = os.Stderr

	peercmd.Main(func(p *peercmd.Peer) (func(), error) {
		h := &hub{conns: make(map[*websocket.Conn]struct{})}

		upgrader := websocket.NewUpgrader()
		upgrader.EnableCompression(false)
		upgrader.MessageLengthLimit = peercmd.MaxMessageSize
		// The default 120 s read deadline would close idle connections;
		// no other peer has one.
		upgrader.KeepaliveTime = 0
		upgrader.OnOpen(func(c *websocket.Conn) {
			if p.Mode == peercmd.Broadcast {
				h.add(c)
			}
			p.Connections.Add(1)
		})
		upgrader.OnClose(func(c *websocket.Conn, err error) {
			if p.Mode == peercmd.Broadcast {
				h.remove(c)
			}
			p.Connections.Add(-1)
		})
		// data is released after the handler returns (ReleaseWebsocketPayload);
		// WriteMessage has copied or sent it by then.
		upgrader.OnMessage(func(c *websocket.Conn, mt websocket.MessageType, data []byte) {
			switch p.Mode {
			case peercmd.Echo:
				_ = c.WriteMessage(mt, data)
			case peercmd.Broadcast:
				h.broadcast(mt, data)
			}
		})

		engine := nbhttp.NewEngine(nbhttp.Config{
			Network: "tcp",
			Addrs:   []string{p.Listener.Addr().String()},
			// Serve on the listener peercmd has bound instead of binding again.
			Listen: func(network, addr string) (net.Listener, error) { return p.Listener, nil },
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = upgrader.Upgrade(w, r, nil)
			}),
			IOMod:                   nbhttp.IOModNonBlocking,
			ReleaseWebsocketPayload: true,
		})
		if err := engine.Start(); err != nil {
			return nil, err
		}
		return engine.Stop, nil
	})
}
