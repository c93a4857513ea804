// Package loadgen is the benchmark's WebSocket client: an event-driven load
// generator that holds thousands of connections per process with one
// goroutine per event loop and none per connection, like the server it
// measures.
//
// Each Loop owns an epoll instance (golang.org/x/sys/unix). Connections are
// opened with non-blocking connect(2) from a rotating set of loopback source
// addresses (127.0.0.2, 127.0.0.3, ...) bound with IP_BIND_ADDRESS_NO_PORT, so
// the kernel picks the port per 4-tuple and one process is not limited to one
// source address's ephemeral ports. Every handshake's Sec-WebSocket-Accept is
// verified; every client frame is masked with a fresh random key (RFC 6455
// §5.3); control frames from the server are answered (ping → pong, close →
// close).
//
// Scenarios plug in a Handler, whose methods run on the loop goroutine and
// must not block. Counters are atomic and may be read from any goroutine.
package loadgen
