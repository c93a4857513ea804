// Command gorilla is the gorilla/websocket peer server of the benchmark: the
// standard Upgrader and one goroutine per connection running the read loop.
//
//	gorilla -addr 127.0.0.1:9001 [-admin 127.0.0.1:9101] [-mode echo|broadcast|sink]
package main

import (
	"net/http"
	"sync"

	"github.com/gorilla/websocket"

	"github.com/megaws/megaws/bench/peers/internal/peercmd"
)

var upgrader = websocket.Upgrader{
	// Load generators send no Origin or a foreign one; the peer is a test target.
	CheckOrigin: func(*http.Request) bool { return true },
	// EnableCompression is false by default: no permessage-deflate.
}

// client is one connection. gorilla allows one concurrent writer per
// connection, and in broadcast mode other connections' goroutines write too.
type client struct {
	conn *websocket.Conn
	mu   sync.Mutex
}

func (c *client) writeMessage(op int, p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn.WriteMessage(op, p)
}

func (c *client) writePrepared(pm *websocket.PreparedMessage) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn.WritePreparedMessage(pm)
}

// hub holds the open connections for broadcast mode.
type hub struct {
	mu      sync.RWMutex
	clients map[*client]struct{}
}

func (h *hub) add(c *client) {
	h.mu.Lock()
	h.clients[c] = struct{}{}
	h.mu.Unlock()
}

func (h *hub) remove(c *client) {
	h.mu.Lock()
	delete(h.clients, c)
	h.mu.Unlock()
}

// broadcast frames the message once (PreparedMessage) and writes it to every
// connection. A failed write is left to that connection's own read loop.
func (h *hub) broadcast(op int, p []byte) {
	pm, err := websocket.NewPreparedMessage(op, p)
	if err != nil {
		return
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	for c := range h.clients {
		_ = c.writePrepared(pm)
	}
}

func main() {
	peercmd.Main(func(p *peercmd.Peer) (func(), error) {
		h := &hub{clients: make(map[*client]struct{})}
		return p.ServeHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, err := upgrader.Upgrade(w, r, nil)
			if err != nil {
				return // Upgrade has already answered with an HTTP error
			}
			conn.SetReadLimit(peercmd.MaxMessageSize)
			c := &client{conn: conn}
			if p.Mode == peercmd.Broadcast {
				h.add(c)
			}
			p.Connections.Add(1)
			defer func() {
				if p.Mode == peercmd.Broadcast {
					h.remove(c)
				}
				p.Connections.Add(-1)
				_ = conn.Close()
			}()
			for {
				op, msg, err := conn.ReadMessage()
				if err != nil {
					return
				}
				switch p.Mode {
				case peercmd.Echo:
					if err := c.writeMessage(op, msg); err != nil {
						return
					}
				case peercmd.Broadcast:
					h.broadcast(op, msg)
				}
			}
		})), nil
	})
}
