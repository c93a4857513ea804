// Command gws is the lxzan/gws peer server of the benchmark, on its event
// handler API: gws.NewUpgrader on net/http and socket.ReadLoop in a goroutine
// per connection, messages handled in order on that goroutine
// (ParallelEnabled false); broadcast goes through gws.NewBroadcaster.
//
//	gws -addr 127.0.0.1:9003 [-admin 127.0.0.1:9103] [-mode echo|broadcast|sink]
package main

import (
	"net/http"

	"github.com/lxzan/gws"

	"github.com/megaws/megaws/bench/peers/internal/peercmd"
)

type handler struct {
	gws.BuiltinEventHandler // answers pings with pongs
	peer                    *peercmd.Peer
	conns                   *gws.ConcurrentMap[*gws.Conn, struct{}] // broadcast mode only
}

func (h *handler) OnOpen(socket *gws.Conn) {
	if h.peer.Mode == peercmd.Broadcast {
		h.conns.Store(socket, struct{}{})
	}
	h.peer.Connections.Add(1)
}

func (h *handler) OnClose(socket *gws.Conn, err error) {
	if h.peer.Mode == peercmd.Broadcast {
		h.conns.Delete(socket)
	}
	h.peer.Connections.Add(-1)
}

func (h *handler) OnMessage(socket *gws.Conn, message *gws.Message) {
	defer func() { _ = message.Close() }()
	switch h.peer.Mode {
	case peercmd.Echo:
		_ = socket.WriteMessage(message.Opcode, message.Bytes())
	case peercmd.Broadcast:
		// The broadcaster encodes the frame once, on the first Broadcast
		// call, and queues it on every connection's asynchronous writer.
		b := gws.NewBroadcaster(message.Opcode, message.Bytes())
		h.conns.Range(func(conn *gws.Conn, _ struct{}) bool {
			_ = b.Broadcast(conn)
			return true
		})
		_ = b.Close()
	}
}

func main() {
	peercmd.Main(func(p *peercmd.Peer) (func(), error) {
		h := &handler{peer: p, conns: gws.NewConcurrentMap[*gws.Conn, struct{}]()}
		upgrader := gws.NewUpgrader(h, &gws.ServerOption{
			ParallelEnabled:     false,
			ReadMaxPayloadSize:  peercmd.MaxMessageSize,
			WriteMaxPayloadSize: peercmd.MaxMessageSize,
			PermessageDeflate:   gws.PermessageDeflate{Enabled: false},
		})
		return p.ServeHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			socket, err := upgrader.Upgrade(w, r)
			if err != nil {
				return
			}
			go socket.ReadLoop()
		})), nil
	})
}
