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

// deflateOption is gws's permessage-deflate setting for -compression:
// off, shared nothing between messages (0), or context takeover both ways
// with a window of 2^bits bytes. Level and takeover threshold are gws's
// defaults (flate.BestSpeed; every message compressed under takeover); 32
// bytes is the threshold without takeover, as the compress scenario gives
// megaws.
func deflateOption(bits int) gws.PermessageDeflate {
	switch bits {
	case peercmd.CompressionOff:
		return gws.PermessageDeflate{Enabled: false}
	case 0:
		return gws.PermessageDeflate{Enabled: true, Threshold: 32}
	}
	return gws.PermessageDeflate{Enabled: true, Threshold: 32, ServerContextTakeover: true, ClientContextTakeover: true, ServerMaxWindowBits: bits, ClientMaxWindowBits: bits}
}

func main() {
	peercmd.Main(func(p *peercmd.Peer) (func(), error) {
		h := &handler{peer: p, conns: gws.NewConcurrentMap[*gws.Conn, struct{}]()}
		upgrader := gws.NewUpgrader(h, &gws.ServerOption{
			ParallelEnabled:     false,
			ReadMaxPayloadSize:  peercmd.MaxMessageSize,
			WriteMaxPayloadSize: peercmd.MaxMessageSize,
			PermessageDeflate:   deflateOption(p.Compression),
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
