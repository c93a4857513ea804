// Command gobwas is the gobwas/ws peer server of the benchmark, written the
// common way: ws.UpgradeHTTP on net/http, then a goroutine per connection
// reading with wsutil.ReadClientData and writing with wsutil.WriteServerMessage.
//
//	gobwas -addr 127.0.0.1:9002 [-admin 127.0.0.1:9102] [-mode echo|broadcast|sink]
package main

import (
	"net"
	"net/http"
	"sync"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/megaws/megaws/bench/peers/internal/peercmd"
)

// client is one connection. Writes are serialized because in broadcast mode
// other connections' goroutines write to it too, and a frame must not be
// interleaved with another.
type client struct {
	conn net.Conn
	mu   sync.Mutex
}

// Read reads from the connection; only the connection's own goroutine reads.
func (c *client) Read(p []byte) (int, error) { return c.conn.Read(p) }

// Write writes p whole under the write lock. wsutil.ReadClientData answers
// pings and closes through it, each with a single Write.
func (c *client) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn.Write(p)
}

func (c *client) writeMessage(op ws.OpCode, p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return wsutil.WriteServerMessage(c.conn, op, p)
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

// broadcast compiles the frame once and writes the same bytes to every
// connection. A failed write is left to that connection's own read loop.
func (h *hub) broadcast(op ws.OpCode, p []byte) {
	frame, err := ws.CompileFrame(ws.NewFrame(op, true, p))
	if err != nil {
		return
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	for c := range h.clients {
		_, _ = c.Write(frame)
	}
}

func main() {
	// The wsutil helpers read whole messages into memory; bound them.
	wsutil.SetMaxMessageSize(peercmd.MaxMessageSize)
	peercmd.Main(func(p *peercmd.Peer) (func(), error) {
		h := &hub{clients: make(map[*client]struct{})}
		return p.ServeHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// ws.UpgradeHTTP negotiates no extensions: no permessage-deflate.
			conn, _, _, err := ws.UpgradeHTTP(r, w)
			if err != nil {
				return
			}
			c := &client{conn: conn}
			if p.Mode == peercmd.Broadcast {
				h.add(c)
			}
			p.Connections.Add(1)
			go func() {
				defer func() {
					if p.Mode == peercmd.Broadcast {
						h.remove(c)
					}
					p.Connections.Add(-1)
					_ = conn.Close()
				}()
				for {
					msg, op, err := wsutil.ReadClientData(c)
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
			}()
		})), nil
	})
}
