// Package client is megaws's WebSocket client (RFC 6455, RFC 7692): Dial
// and a blocking Conn for programs that hold a few connections, and, in
// package client/loop, an event-loop pool that holds thousands per process
// for bots and load tests.
//
//	c, _, err := client.Dial(ctx, "wss://game.example/ws", &client.Options{
//		Subprotocols: []string{"game.v1"},
//		Compression:  true,
//	})
//	if err != nil { ... }
//	defer c.Close(ws.StatusNormalClosure, "")
//	err = c.WriteMessage(ws.OpText, []byte(`{"join":"lobby"}`))
//	op, msg, err := c.ReadMessage(ctx)
//
// Protocol work is codec's (frame headers, masking, close payloads, UTF-8,
// deflate); the handshake checks are shared with client/loop.
//
// Goroutines: none per connection. ReadMessage and the writes run on the
// caller's goroutines; control frames (ping → pong, the close handshake) are
// handled inside ReadMessage, so a connection whose server pings must be
// read. The runtime runs a context.AfterFunc to interrupt a read whose ctx
// is cancelled, and with Options.PingInterval a time.AfterFunc timer to send
// keepalive pings; neither keeps a goroutine while waiting.
//
// Dial does not follow redirects (a 3xx is a *HandshakeError; the Location
// header is in the returned *http.Response), and speaks HTTP/1.1 only
// (wss:// negotiates ALPN "http/1.1").
//
// Errors: a connection ends with a *CloseError carrying the close code
// (see CloseStatus); a refused or malformed handshake is a *HandshakeError
// carrying the HTTP status.
package client
