// Package loop is megaws's many-connections client: event loops that each
// hold thousands of WebSocket connections with one goroutine per loop and
// none per connection, like the server. It is meant for bots and load tests
// (the bench harness's load generator is built on it); package client is the
// blocking client for a few connections.
//
//	p, err := loop.New(loop.Config{Addr: "127.0.0.1:8080", Loops: 2},
//		func(l *loop.Loop) loop.Handler { return &bot{} })
//	if err != nil { ... }
//	defer p.Close()
//	p.Dial(10_000)
//
// Each Loop owns an epoll instance (Linux only). Connections are opened with
// non-blocking connect(2), paced by Config.MaxPending, optionally from a
// rotating set of local source addresses bound with IP_BIND_ADDRESS_NO_PORT
// (127.0.0.2, 127.0.0.3, ...) so that one process is not limited to one
// source address's ephemeral ports. Every handshake's Sec-WebSocket-Accept is
// verified; every frame sent is masked with a fresh key (RFC 6455 §5.3) drawn
// from a per-loop ChaCha8 stream seeded from crypto/rand; pings are answered
// with pongs, the server's close frame is echoed, text is checked to be
// UTF-8, messages over Config.MaxMessageSize fail with 1009 and any other
// protocol violation with the RFC's code. Plain ws:// over IPv4 only: no TLS,
// no permessage-deflate, no subprotocols.
//
// A Handler plugs the application in; its methods run on the loop goroutine
// and must not block. Sends queue bytes that the loop writes at the end of
// the iteration, so many sends in one callback cost one write(2).
// Counters are atomic and may be read from any goroutine.
package loop
