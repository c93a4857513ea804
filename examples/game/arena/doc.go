// Package arena is the game of the megaws game example: players move around
// a shared world in matches of a few players, chat with their match, and
// receive the match's state 20 times a second. It is a megaws Handler and
// shows the embedding API a game backend uses:
//
//   - auth: OnUpgrade checks an HMAC token (token.go) and refuses with
//     server.Reject(401, ...) before the 101;
//   - matches as rooms: OnOpen takes a slot in the first match with room and
//     joins its server.Room "match-N" (match.go); megaws frees the room when
//     its last player leaves; RoomObserver.OnJoin/OnLeave send the welcome and
//     tell the match who joined or left;
//   - per-player state in the Conn context, touched only by its event loop:
//     inputs (OnMessage) are applied there without locks;
//   - the tick: Ticker.OnTick runs on every loop at Config.TickInterval;
//     Loop.Each steps that loop's players, and each match's owner loop
//     publishes its world with Room.PublishSnapshot (tick.go), so a player
//     whose socket is full gets the newest state, not a backlog;
//   - chat: Room.PublishExcept relays a line to the match but not its sender;
//   - rate limits: server.Config.RateLimit (DefaultRateLimit) drops what a
//     player sends beyond 40 messages a second;
//   - metrics: Register exports megaws's counters (package metrics) and the
//     game's to Prometheus.
//
// The wire protocol is in protocol.go.
package arena
