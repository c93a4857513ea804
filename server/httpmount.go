package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/panjf2000/gnet/v2"
)

// enrolled is what ServeHTTP hands to the loop with a hijacked connection.
type enrolled struct {
	head []byte // the request head, rebuilt for codec.ParseRequest
}

// Start runs the event loops without a listener of their own, for a server
// that gets its connections only through ServeHTTP (a net/http mux). Stop
// stops it. Use ListenAndServe instead when megaws has its own port (both
// may mount on a mux).
func (s *Server) Start() error {
	started := make(chan error, 1)
	go func() {
		defer close(s.done)
		cli, err := gnet.NewClient(&engine{s: s},
			gnet.WithMulticore(true),
			gnet.WithNumEventLoop(s.cfg.Loops),
			gnet.WithLoadBalancing(gnet.LeastConnections),
			gnet.WithTicker(true),
			gnet.WithTCPNoDelay(gnet.TCPNoDelay),
			gnet.WithLogger(gnetLogger{s.log}),
			gnet.WithReadBufferCap(s.cfg.ReadBufferSize),
		)
		if err == nil {
			s.fdCeiling = reserveFDs(s.cfg.ReserveFDs)
			if cl := s.cluster; cl != nil {
				if err = cl.b.Start(s.deliver); err == nil {
					defer func() { _ = cl.b.Close() }()
					_ = cl.b.Subscribe(chanAll)
					_ = cl.b.Subscribe(chanNodePfx + cl.nodeS)
				}
			}
		}
		if err == nil {
			s.client = cli
			err = cli.Start() // calls OnBoot, which closes Ready
		}
		started <- err
		if err != nil {
			return
		}
		<-s.clientDone
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("megaws: start: %w", err)
	}
	return nil
}

// ServeHTTP makes Server an http.Handler, to share a port with net/http:
// mounted on a mux (mux.Handle("/ws", s)), it takes the WebSocket upgrade
// requests that reach it, hijacks their TCP connections from net/http and
// hands them to its event loops (gnet's Enroll), where the handshake is
// answered exactly as on megaws's own listener — OnUpgrade, origins,
// subprotocols, compression, limits — and the connection lives on like any
// other. The net/http server keeps its port, its other routes and its
// middleware (which runs before ServeHTTP, on the request only). Requests
// that are not upgrades get 426 Upgrade Required.
//
// The cost is paid once per connection, in the handshake: net/http parses
// the request in a goroutine of its own, the request head is rebuilt for
// megaws's parser, and Enroll duplicates the descriptor and waits for the
// loop (measured in one process: 180 µs and 93 allocations per handshake,
// 110 µs and 24 on the native listener). After the upgrade a mounted
// connection costs what a native one does, plus gnet's copy of its local
// address. Connections must be plain TCP: terminate TLS in front (gnet
// cannot take over a crypto/tls connection), and the client must not send
// frames before the 101 (RFC 6455 §4.1; such a request gets 400).
//
// It needs a server that runs (ListenAndServe, or Start when megaws has no
// port of its own); it waits while the server starts and answers 503 once
// it stopped.
// It blocks only until a loop has taken the connection (or, while the
// server starts, until its loops run).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	select {
	case <-s.running:
	case <-s.done:
		http.Error(w, "server stopped", http.StatusServiceUnavailable)
		return
	case <-r.Context().Done():
		return
	}
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		w.Header().Set("Upgrade", "websocket")
		w.Header().Set("Connection", "Upgrade")
		http.Error(w, "426 Upgrade Required: this is a WebSocket endpoint", http.StatusUpgradeRequired)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "the connection cannot be taken over (HTTP/2?)", http.StatusHTTPVersionNotSupported)
		return
	}
	nc, brw, err := hj.Hijack()
	if err != nil {
		s.log.Warn("megaws: hijack", "err", err)
		return
	}
	if brw.Reader.Buffered() > 0 {
		// The client sent data before the 101 (RFC 6455 §4.1 forbids it);
		// megaws cannot hand gnet bytes net/http has already read.
		_, _ = nc.Write([]byte("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"))
		_ = nc.Close()
		return
	}
	if _, ok := nc.(*net.TCPConn); !ok {
		_, _ = nc.Write([]byte("HTTP/1.1 501 Not Implemented\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"))
		_ = nc.Close()
		s.log.Warn("megaws: ServeHTTP needs a plain TCP connection (terminate TLS in front)", "type", fmt.Sprintf("%T", nc))
		return
	}
	e := &enrolled{head: requestHead(r)}
	if s.client != nil {
		// Without a listener gnet's Engine API is unavailable; the client
		// engine enrolls the connection itself (and closes nc).
		_, err = s.client.EnrollContext(nc, e)
	} else {
		ctx := gnet.NewNetConnContext(gnet.NewContext(context.Background(), e), nc)
		var res <-chan gnet.RegisteredResult
		if res, err = s.eng.Register(ctx); err == nil {
			if rr, ok := <-res; !ok {
				err = errors.New("enroll: no result")
			} else {
				err = rr.Err
			}
		}
	}
	if err != nil {
		_ = nc.Close()
		s.log.Warn("megaws: handing a net/http connection to the loops failed", "err", err)
	}
}

// requestHead rebuilds the request head from a parsed net/http request.
func requestHead(r *http.Request) []byte {
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte(' ')
	b.WriteString(r.RequestURI)
	b.WriteString(" HTTP/1.1\r\nHost: ")
	b.WriteString(r.Host)
	b.WriteString("\r\n")
	for name, values := range r.Header {
		for _, v := range values {
			b.WriteString(name)
			b.WriteString(": ")
			b.WriteString(v)
			b.WriteString("\r\n")
		}
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// openEnrolled runs the handshake of a connection handed over by ServeHTTP,
// on its loop, from onOpen.
func (s *Server) openEnrolled(c *Conn, e *enrolled) gnet.Action {
	l := c.l
	l.corked = c
	s.handshakeFrom(c, e.head)
	if c.state == stateHandshake {
		// An incomplete head cannot come from net/http; refuse it as such.
		s.reject(c, errors.New("incomplete request"))
	}
	l.flush(c)
	l.corked = nil
	l.stats.publish()
	if c.state == stateClosed {
		if l.unsent(c) > 0 && l.linger(c) {
			return gnet.None
		}
		return gnet.Close
	}
	return gnet.None
}
