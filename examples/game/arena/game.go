package arena

import (
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/megaws/megaws/server"
)

// Config configures a Game. The zero value is ready to use: every field
// documents its default.
type Config struct {
	// Secret is the HMAC key tokens are checked with (see MintToken).
	// Default: DemoSecret.
	Secret []byte
	// MatchSize is the most players in a match. Default: 8; at most 255.
	MatchSize int
	// TickRate is how many times a second the world is stepped and each
	// match's snapshot published. Default: 20; at most 100 (megaws's timers
	// have a 10 ms resolution).
	TickRate int
	// NPCs is the number of wandering non-player entities in each match's
	// world, 4 bytes each in every snapshot: what makes a snapshot large.
	// Default: 0; at most 65535.
	NPCs int
	// Path is the WebSocket endpoint; other paths are refused with 404.
	// Default: "/play".
	Path string
	// Server is the megaws configuration. New copies it and sets
	// TickInterval from TickRate, Loops to runtime.NumCPU() when zero, and
	// RateLimit to DefaultRateLimit when it is zero.
	Server server.Config
}

// DefaultRateLimit is what one player may send: 40 messages a second
// (inputs at 20 Hz and some chat, with room for jitter) and 8 KiB/s. Beyond
// it messages are dropped (Stats.RateLimited in megaws counts them) and the
// player stays connected; set Close to disconnect flooders instead.
var DefaultRateLimit = server.RateLimit{Messages: 40, MessageBurst: 40, Bytes: 8 << 10}

func (c Config) withDefaults() Config {
	if len(c.Secret) == 0 {
		c.Secret = []byte(DemoSecret)
	}
	if c.MatchSize <= 0 {
		c.MatchSize = 8
	}
	c.MatchSize = min(c.MatchSize, maxSnapshotPlayers)
	if c.TickRate <= 0 {
		c.TickRate = 20
	}
	c.TickRate = min(c.TickRate, 100)
	c.NPCs = min(max(c.NPCs, 0), maxSnapshotNPCs)
	if c.Path == "" {
		c.Path = "/play"
	}
	if c.Server.Loops <= 0 {
		c.Server.Loops = runtime.NumCPU()
	}
	c.Server.TickInterval = time.Second / time.Duration(c.TickRate)
	if c.Server.RateLimit == (server.RateLimit{}) {
		c.Server.RateLimit = DefaultRateLimit
	}
	return c
}

// Game is the game server's megaws Handler: token auth in OnUpgrade,
// matchmaking into rooms in OnOpen, inputs and chat in OnMessage, the world
// step and snapshots in OnTick. Create it with New; serve Server().
type Game struct {
	server.BaseHandler

	cfg   Config
	s     *server.Server
	mm    matchmaker
	loops []loopState // indexed by server.Loop.Index

	nextID      atomic.Uint32
	players     atomic.Int64
	authRefused atomic.Uint64
	tickSeconds prometheus.Histogram
}

// player is a connection's state (Conn.SetContext). Only the connection's
// event loop touches it, so it needs no lock.
type player struct {
	id     uint32
	name   string
	m      *match // nil until OnOpen
	slot   int
	x, y   float32
	dx, dy int8 // the latest input
}

// loopState is what one event loop keeps: only that loop writes buf, step
// and the plain fields; the counters are atomics read by Stats.
type loopState struct {
	buf  []byte // scratch for the messages this loop encodes
	step func(c *server.Conn)
	// owned are the matches whose snapshots this loop publishes, replaced
	// (never modified) by the matchmaker.
	owned   atomic.Pointer[[]*match]
	lagging int // players whose output waited at this tick (loop only)

	inputs, chats, snapshots atomic.Uint64
	laggingNow               atomic.Int64
	_                        [64]byte // keep loops' counters on separate cache lines
}

// New returns a game and the megaws server that runs it.
func New(cfg Config) *Game {
	cfg = cfg.withDefaults()
	g := &Game{
		cfg:   cfg,
		loops: make([]loopState, cfg.Server.Loops),
		tickSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "game_tick_seconds",
			Help:    "Time one event loop spent in a tick: stepping its players, stepping and publishing the matches it owns.",
			Buckets: []float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3},
		}),
	}
	g.mm.init(g, cfg.MatchSize)
	for i := range g.loops {
		ls := &g.loops[i]
		ls.owned.Store(new([]*match))
		ls.step = func(c *server.Conn) { g.stepPlayer(ls, c) }
	}
	g.s = server.New(g, cfg.Server)
	return g
}

// Server returns the megaws server: ListenAndServe it, Stop it.
func (g *Game) Server() *server.Server { return g.s }

// Config returns the game's configuration, defaults filled in.
func (g *Game) Config() Config { return g.cfg }

// OnUpgrade authenticates the player before the 101: a token in the query
// (?token=...) or an "Authorization: Bearer ..." header, checked without any
// I/O (an HMAC), so it runs on the event loop. A refusal is an HTTP 401 and
// the connection never opens.
func (g *Game) OnUpgrade(c *server.Conn, r *server.Request) error {
	if r.Path() != g.cfg.Path {
		return server.Reject(404, "not found")
	}
	var token string
	if q, err := url.ParseQuery(r.RawQuery()); err == nil {
		token = q.Get("token")
	}
	if token == "" {
		token, _ = strings.CutPrefix(r.Header("Authorization"), "Bearer ")
	}
	name, err := VerifyToken(g.cfg.Secret, token, time.Now())
	if err != nil {
		g.authRefused.Add(1)
		return server.Reject(401, "invalid or expired token")
	}
	c.SetContext(&player{name: name})
	return nil
}

// OnOpen puts the player into a match: a slot in the first match with room,
// or a new match, and its room. The welcome follows in OnJoin, once the
// player is a member and gets the match's snapshots.
func (g *Game) OnOpen(c *server.Conn) {
	p := c.Context().(*player)
	p.id = g.nextID.Add(1)
	p.m, p.slot = g.mm.join(p.id, p.name, c.Loop().Index())
	p.x, p.y = spawn()
	p.m.slots[p.slot].Store(pack(p.id, p.x, p.y))
	g.players.Add(1)
	if err := p.m.room.Join(c); err != nil { // the server is stopping
		_ = c.Close(ws.StatusGoingAway, "server stopping")
	}
}

// OnJoin (server.RoomObserver) runs on the player's loop once it is in the
// match's room: the player gets its welcome and the names of the players
// already there, the others a Joined message.
func (g *Game) OnJoin(r *server.Room, c *server.Conn) {
	p, ok := c.Context().(*player)
	if !ok || p.m == nil || r.Name() != p.m.room.Name() {
		return
	}
	ls := &g.loops[c.Loop().Index()]
	ls.buf = AppendWelcome(ls.buf[:0], Welcome{
		Player: p.id, Match: p.m.id, MatchSize: uint8(g.cfg.MatchSize), TickRate: uint8(g.cfg.TickRate),
	})
	_ = c.WriteBinary(ls.buf)
	for _, o := range g.mm.roster(p.m, p.id) {
		ls.buf = AppendJoined(ls.buf[:0], o.id, o.name)
		_ = c.WriteBinary(ls.buf)
	}
	ls.buf = AppendJoined(ls.buf[:0], p.id, p.name)
	_ = r.PublishExcept(c, ws.OpBinary, ls.buf)
}

// OnLeave (server.RoomObserver) tells the rest of the match that the player
// left; megaws calls it for a closing connection before OnClose.
func (g *Game) OnLeave(r *server.Room, c *server.Conn) {
	p, ok := c.Context().(*player)
	if !ok || p.m == nil || r.Name() != p.m.room.Name() {
		return
	}
	ls := &g.loops[c.Loop().Index()]
	ls.buf = AppendLeft(ls.buf[:0], p.id)
	_ = r.PublishExcept(c, ws.OpBinary, ls.buf)
}

// OnMessage applies an input to the player's state (its own loop's, so no
// lock) or relays a chat line to the rest of its match. Anything else breaks
// the protocol and closes the connection.
func (g *Game) OnMessage(c *server.Conn, op ws.OpCode, msg []byte) {
	p := c.Context().(*player)
	if op != ws.OpBinary || len(msg) == 0 {
		_ = c.Close(ws.StatusUnsupportedData, "binary messages only")
		return
	}
	ls := &g.loops[c.Loop().Index()]
	switch msg[0] {
	case MsgInput:
		if len(msg) != 3 {
			_ = c.Close(ws.StatusPolicyViolation, "bad input")
			return
		}
		p.dx, p.dy = max(int8(msg[1]), -127), max(int8(msg[2]), -127)
		ls.inputs.Add(1)
	case MsgChat:
		if !validChat(msg[1:]) {
			_ = c.Close(ws.StatusPolicyViolation, "bad chat")
			return
		}
		// The sender's id comes from its connection, not from the message:
		// a client cannot speak for another player.
		ls.buf = AppendChatFrom(ls.buf[:0], p.id, msg[1:])
		_ = p.m.room.PublishExcept(c, ws.OpBinary, ls.buf)
		ls.chats.Add(1)
	default:
		_ = c.Close(ws.StatusPolicyViolation, "unknown message")
	}
}

// OnClose frees the player's slot; megaws has already taken it out of the
// room (and frees the room with its last member).
func (g *Game) OnClose(c *server.Conn, _ error) {
	p, ok := c.Context().(*player)
	if !ok || p.m == nil {
		return
	}
	p.m.slots[p.slot].Store(0)
	g.mm.leave(p.m, p.slot)
	g.players.Add(-1)
}

// Stats are the game's own counters.
type Stats struct {
	Players     int64  // connected players, all in a match
	Matches     int    // matches with players
	Lagging     int64  // players whose output waited in megaws at the last tick
	Inputs      uint64 // inputs applied
	Chats       uint64 // chat lines relayed
	Snapshots   uint64 // match snapshots published
	AuthRefused uint64 // upgrades refused for a bad token
}

// Stats returns the game's counters. Any goroutine.
func (g *Game) Stats() Stats {
	st := Stats{Players: g.players.Load(), Matches: g.mm.matches(), AuthRefused: g.authRefused.Load()}
	for i := range g.loops {
		ls := &g.loops[i]
		st.Inputs += ls.inputs.Load()
		st.Chats += ls.chats.Load()
		st.Snapshots += ls.snapshots.Load()
		st.Lagging += ls.laggingNow.Load()
	}
	return st
}
