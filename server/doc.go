// Package server is megaws's WebSocket (RFC 6455) server and its embedding
// API: a Handler receives each connection's events on gnet event loops, with
// rooms that broadcast one encoded frame to many connections, timers and a
// tick that run on the loops, and per-loop counters for metrics.
//
// A server is a Handler, a Config and an address:
//
//	type game struct{ server.BaseHandler }
//
//	func (game) OnMessage(c *server.Conn, op ws.OpCode, p []byte) { _ = c.WriteMessage(op, p) }
//
//	s := server.New(game{}, server.Config{})
//	go s.ListenAndServe("127.0.0.1:8080")
//	<-s.Ready()
//	...
//	s.Stop(ctx) // close 1001 to everyone, then shut down
//
// # Threading model
//
// A server runs Config.Loops event loops (default: one per CPU), each a
// goroutine that owns a share of the connections. There is no goroutine per
// connection, and an idle connection holds no read or write buffer. Nothing
// ticks: each loop arms one runtime timer for its earliest deadline, so an
// idle server sleeps until a deadline is due.
//
// Everything megaws calls runs on the event loop that owns the connection,
// one call at a time per loop:
//
//   - the Handler's OnUpgrade, OnOpen, OnMessage and OnClose;
//   - HTTPResponder.ServeHTTP, for plain HTTP GETs on the WebSocket port;
//   - Ticker.OnTick, on every loop each Config.TickInterval;
//   - the functions given to Conn.AfterFunc, Loop.AfterFunc and Conn.Do.
//
// So state that belongs to one connection (Conn.SetContext) or is touched only
// from one loop (by Loop.Index, in OnTick and Loop.Each) needs no lock. State
// shared by connections of different loops, such as a game world, needs a
// lock or an owner goroutine of its own.
//
// None of these callbacks may block: while one runs, every other connection of
// its loop waits, their timers and keepalive pings included. Database calls,
// file I/O, sleeps and channel sends that may wait belong to the application's
// own goroutines, which answer with the goroutine-safe methods below, or with
// Conn.Do to run code back on the connection's loop.
//
// # Which methods are safe where
//
// Safe from any goroutine, the loops' own callbacks included: Server.Room,
// Server.Broadcast, Server.SendTo, Server.SendToID, Server.Stats,
// Server.Conns, Server.Stop; Room.Join, Room.Leave, Room.Publish,
// Room.PublishExcept, Room.PublishSnapshot, Room.Each, Room.Members, Room.Len;
// Conn.Send, Conn.SendSnapshot, Conn.Ping, Conn.Close, Conn.Do, Conn.ID,
// Conn.GlobalID, Conn.Path, Conn.Protocol, Conn.Compressed, Conn.Loop;
// Loop.Index. None of them blocks on the network or waits for a loop: they
// queue work for the loops, and the queries (Stats, Room.Len, Room.Members,
// Conns) read what the loops keep up to date.
// Stop, called from a callback, starts the graceful stop in the background
// and returns at once (the loop has to keep running for its connections to
// close). Each loop runs queued work in the order it was queued, so a
// message published after Room.Join returns reaches the new member, and a
// Send followed by a Close delivers the message before the close frame.
// Consecutive publishes to the same room (or broadcasts) are written to each
// recipient with a single writev.
//
// After a connection closed, Send, Ping, Do and Room.Join return ErrClosed
// (Close does nothing); after Stop, Broadcast, Publish, SendTo and Join
// return ErrServerStopped, and Stats keeps its last figures.
//
// # Panics
//
// A panic in a Handler method or in a function megaws runs on a loop
// (Conn.AfterFunc, Loop.AfterFunc, Conn.Do, Ticker.OnTick) is recovered: the
// connection it ran for is closed with 1011 (OnUpgrade and ServeHTTP answer
// HTTP 500), OnClose gets a *CloseError whose Err is a *PanicError (matching
// ErrHandlerPanic) with the panic value and stack, the panic is logged with
// its stack (at most 10 lines a second) and counted in Stats.Panics, and the
// loop goes on serving its other connections. Config.NoRecover turns this
// off for debugging.
//
// Loop only (from a callback running on the connection's loop): Conn.WriteMessage,
// Conn.WriteText, Conn.WriteBinary, Conn.WriteSnapshot, Conn.Context,
// Conn.SetContext, Conn.RemoteAddr, Conn.Rooms, Conn.Queued, Conn.AfterFunc,
// Loop.AfterFunc, Loop.Each, Loop.Len and Timer.Stop. A Conn.Ping made in a
// callback is written after the frames that callback wrote with WriteMessage. Writes made during OnMessage are coalesced into one write
// when the loop has handled the bytes that arrived.
//
// # Sharing a port with net/http
//
// Server is an http.Handler: mux.Handle("/ws", s) upgrades the requests that
// reach it and hands their connections to the loops, where they live like
// connections of megaws's own listener. Start runs the loops without a
// listener for a server that is reached only that way. Client code for
// tests and bots is in package client; package servertest starts a server
// on a free port for a test.
//
// # Borrowed memory
//
// The payload handed to OnMessage is borrowed from the loop's buffers (for a
// single-frame message it is gnet's input buffer, unmasked in place): it is
// valid only until OnMessage returns and must not be retained or handed to
// another goroutine. Clone copies it. A *Request is valid only during the
// OnUpgrade or ServeHTTP call that receives it. In the other direction,
// nothing keeps the caller's slice: WriteMessage, Send, Publish, Broadcast and
// SendTo copy or write the payload before they return, and the body returned
// by ServeHTTP is written before the loop's next event, so it may be a shared
// static slice.
//
// # Broadcast
//
// Room.Publish, Room.PublishExcept, Server.Broadcast and Server.SendTo encode
// the frame once into a pooled buffer shared by every recipient, and each
// loop writes those same bytes to its own members: no per-recipient copy or
// allocation. Publish queues work only on the loops that have members. Rooms
// are left automatically when a connection closes, and a room without
// members costs nothing: the server keeps no state for it.
//
// # Slow readers and backpressure
//
// When a peer's socket is full, its further output waits in megaws's queue
// for it — a broadcast or room frame as a run of a per-loop log that every
// lagging reader shares, its own frames as their pooled buffers — and is
// handed to the socket as it drains. A peer whose unsent bytes pass
// Config.MaxWriteQueue, or the readers that stopped reading and hold the
// most when the queues together hold more than Config.MaxQueuedBytes, are
// sent close 1008 and dropped (ErrWriteQueueFull, ErrServerQueueFull). While
// more than Config.WriteHighWater waits for a peer, its input is not handled;
// the input it sends meanwhile is held up to Config.MaxReadQueue
// (ErrReadQueueFull beyond).
//
// # Limits
//
// Every limit has a default (the zero Config is ready to use) and the answer
// the RFCs prescribe:
//
//	limit               Config field           default    outcome
//	request head        MaxHeaderBytes         8 KiB      HTTP 431
//	header lines        MaxHeaderLines         64         HTTP 431
//	connections         MaxConns               1,000,000  HTTP 503 before the upgrade
//	origin              AllowedOrigins         any        HTTP 403
//	handshake time      HandshakeTimeout       10 s       TCP close
//	message size        MaxMessageSize         16 MiB     close 1009, checked after reassembly and decompression
//	slow reader         MaxWriteQueue          4 MiB      close 1008, ErrWriteQueueFull
//	all slow readers    MaxQueuedBytes         RAM/8<=1GiB  close 1008 to the slowest, ErrServerQueueFull
//	input while paused  MaxReadQueue           16+1 MiB   close 1008, ErrReadQueueFull
//	open files          ReserveFDs             1%, 64-1024  HTTP 503 right after accept
//	silence             PingInterval           25 s       a ping
//	silence, pongs too  IdleTimeout            60 s       close 1001, ErrIdleTimeout
//	close handshake     CloseTimeout           5 s        TCP close, ErrCloseTimeout
//	burst leftovers     MemoryReleaseInterval  off        heap collected, memory returned to the OS (opt-in)
//
// A plain HTTP request without an upgrade gets 426 Upgrade Required (200 on
// /healthz) unless the Handler implements HTTPResponder. Protocol violations
// fail the connection with 1002, invalid UTF-8 with 1007 (RFC 6455 §7.4.1),
// never with a panic, and other connections are unaffected.
//
// # Errors
//
// OnClose receives a *CloseError for every connection that was open: its Code
// is the close status (the peer's when Remote is set, 1006 when TCP ended
// without a close frame) and its Err the cause, which errors.Is matches
// against this package's sentinels (ErrIdleTimeout, ErrWriteQueueFull, ...) and
// codec's protocol errors. CloseStatus extracts the code from any error chain.
//
// # Observability
//
// Server.Stats sums the counters that each loop keeps for itself (messages and
// bytes each way, handshakes, refusals by HTTP status, close codes, protocol
// errors by kind, drops of slow readers, panics, descriptors shed, output
// queued). A loop counts in plain fields and publishes them to atomics once
// per event, so counting costs the hot path no shared atomic and Stats never
// waits for a loop. `megaws serve --admin` exports it to Prometheus.
package server
