//go:build linux

// Package bot runs the game example's bots: many players in one process on
// megaws's event-loop client (client/loop), one goroutine per loop and none
// per bot. Each bot sends inputs at a rate, chats now and then, and measures
// how old each snapshot is when it arrives (receive time minus the stamp the
// server put in it at its tick; both clocks are this host's).
package bot

import (
	"errors"
	"maps"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/gobwas/ws"

	"github.com/megaws/megaws/client/loop"
	"github.com/megaws/megaws/examples/game/arena"
)

// Config configures a Fleet.
type Config struct {
	// Addr is the game server, an IPv4 "host:port".
	Addr string
	// Path is the request target with the token, "/play?token=...". Every
	// bot sends the same request: client/loop has one request per pool,
	// so the bots share one token (the server numbers players itself).
	Path string
	// Bots is how many bots to connect.
	Bots int
	// Loops is the number of client event loops. Default 1.
	Loops int
	// InputRate is how many inputs each bot sends a second. Default 10;
	// negative: none.
	InputRate float64
	// ChatInterval is the mean time between two chat lines of one bot.
	// Default 0: bots chat only when asked (Fleet.ChatRound).
	ChatInterval time.Duration
}

// Fleet is a set of bots connected to one game server.
type Fleet struct {
	pool  *loop.Pool
	hs    []*handler
	start time.Time
}

// Start connects cfg.Bots bots; it returns once the dials are under way.
// Fleet.Report says how many got in.
func Start(cfg Config) (*Fleet, error) {
	if cfg.Loops <= 0 {
		cfg.Loops = 1
	}
	if cfg.InputRate == 0 {
		cfg.InputRate = 10
	}
	f := &Fleet{hs: make([]*handler, cfg.Loops), start: time.Now()}
	p, err := loop.New(loop.Config{Addr: cfg.Addr, Path: cfg.Path, Loops: cfg.Loops},
		func(l *loop.Loop) loop.Handler {
			h := &handler{l: l, cfg: cfg}
			f.hs[l.Index()] = h
			return h
		})
	if err != nil {
		return nil, err
	}
	f.pool = p
	p.Dial(cfg.Bots)
	return f, nil
}

// Bot is what one bot saw.
type Bot struct {
	Player, Match uint32 // from the welcome
	Welcomed      bool   // got its welcome: authenticated and in a match
	InSnapshot    bool   // found itself in a snapshot of its match
	Open          bool   // still connected
	CloseErr      string // why it was disconnected, if it was

	Snapshots                   int
	FirstSnapshot, LastSnapshot time.Time
	TickGaps                    int // snapshots whose tick did not follow the previous one

	ChatsSent, ChatsIn int
	ChatFrom           map[uint32]int // chat lines received, by sender
	Rounds             map[int]int    // ChatRound lines received, by round
	Joined, Left       int            // other players' arrivals and departures seen
}

// Report is what the fleet saw.
type Report struct {
	Elapsed   time.Duration // since Start
	Bots      []Bot
	Counters  loop.Counters // connections and messages, from client/loop
	Snapshots uint64        // snapshots received
	Chats     uint64        // chat lines received
	Unknown   uint64        // messages of a type bots do not know
	Latency   Latency       // snapshot age on arrival, since Start
	Window    Latency       // the same since the previous Report
	Errors    map[string]int64
}

// Welcomed returns the number of bots that got into a match.
func (r *Report) Welcomed() int {
	n := 0
	for i := range r.Bots {
		if r.Bots[i].Welcomed {
			n++
		}
	}
	return n
}

// Report collects what every bot saw so far. Any goroutine but a loop's.
func (f *Fleet) Report() Report {
	r := Report{Elapsed: time.Since(f.start), Counters: f.pool.Counters(), Errors: f.pool.Errors()}
	var mu sync.Mutex
	var lat, win histogram
	f.pool.Each(func(l *loop.Loop) {
		h := f.hs[l.Index()]
		bots := make([]Bot, len(h.bots))
		for i, b := range h.bots {
			bots[i] = b.Bot
			bots[i].ChatFrom = maps.Clone(b.ChatFrom)
			bots[i].Rounds = maps.Clone(b.Rounds)
		}
		mu.Lock()
		defer mu.Unlock()
		r.Bots = append(r.Bots, bots...)
		r.Snapshots += h.snapshots
		r.Chats += h.chats
		r.Unknown += h.unknown
		lat.merge(&h.lat)
		win.merge(&h.win)
		h.win = histogram{}
	})
	r.Latency, r.Window = lat.summary(), win.summary()
	return r
}

// ChatRound makes every bot in a match send one chat line tagged with round
// (1 or more), so that a test can count who received it.
func (f *Fleet) ChatRound(round int) {
	f.pool.Each(func(l *loop.Loop) {
		h := f.hs[l.Index()]
		for _, c := range l.Open() {
			h.chat(c, round)
		}
	})
}

// Close disconnects every bot with a close handshake (waiting up to 5 s for
// the server's answers) and stops the loops.
func (f *Fleet) Close() {
	f.pool.CloseAll()
	deadline := time.Now().Add(5 * time.Second)
	for f.pool.Counters().Open > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	f.pool.Close()
}

// handler is one client loop's bots. Only its loop goroutine touches it,
// except in Fleet.Report and ChatRound, which run on that goroutine too.
type handler struct {
	loop.NopHandler
	l    *loop.Loop
	cfg  Config
	bots []*bot

	last              time.Time
	inputDue, chatDue float64 // inputs and chats owed, over all bots
	next              int     // round-robin position for inputs
	buf               []byte
	lat, win          histogram
	snapshots, chats  uint64
	unknown           uint64 // messages of a type bots do not know
}

type bot struct {
	Bot
	lastTick uint32
	seq      int
}

var errMalformed = errors.New("bot: malformed message from the server")

func (h *handler) OnOpen(c *loop.Conn) {
	b := &bot{Bot: Bot{Open: true, ChatFrom: map[uint32]int{}, Rounds: map[int]int{}}}
	c.SetContext(b)
	h.bots = append(h.bots, b)
}

func (h *handler) OnClose(c *loop.Conn, err error) {
	b := c.Context().(*bot)
	b.Open = false
	if err != nil {
		b.CloseErr = err.Error()
	}
}

func (h *handler) OnMessage(c *loop.Conn, op ws.OpCode, p []byte) {
	if op != ws.OpBinary || len(p) == 0 {
		return // pongs
	}
	b := c.Context().(*bot)
	switch p[0] {
	case arena.MsgSnapshot:
		s, ok := arena.ParseSnapshot(p)
		if !ok {
			c.Abort(errMalformed)
			return
		}
		now := time.Now()
		age := now.Sub(time.Unix(0, s.Stamp))
		h.lat.record(age)
		h.win.record(age)
		h.snapshots++
		if b.Snapshots == 0 {
			b.FirstSnapshot = now
		} else if s.Tick != b.lastTick+1 {
			b.TickGaps++
		}
		b.Snapshots++
		b.LastSnapshot, b.lastTick = now, s.Tick
		if !b.InSnapshot {
			for i := range s.Players {
				if id, _, _ := arena.Player(p, i); id == b.Player {
					b.InSnapshot = true
				}
			}
		}
	case arena.MsgChatFrom:
		from, text, ok := arena.ParseChatFrom(p)
		if !ok {
			c.Abort(errMalformed)
			return
		}
		h.chats++
		b.ChatsIn++
		b.ChatFrom[from]++
		if r := roundOf(text); r > 0 {
			b.Rounds[r]++
		}
	case arena.MsgWelcome:
		w, ok := arena.ParseWelcome(p)
		if !ok {
			c.Abort(errMalformed)
			return
		}
		b.Welcomed, b.Player, b.Match = true, w.Player, w.Match
	case arena.MsgJoined, arena.MsgLeft:
		typ, _, _, ok := arena.ParsePlayerEvent(p)
		if !ok {
			c.Abort(errMalformed)
			return
		}
		if typ == arena.MsgJoined {
			b.Joined++
		} else {
			b.Left++
		}
	default:
		h.unknown++
	}
}

// OnTick sends the inputs and chat lines due since the last tick, spread
// over the loop's bots: the work is per message sent, not per bot.
func (h *handler) OnTick(now time.Time) {
	if h.last.IsZero() {
		h.last = now
		return
	}
	dt := now.Sub(h.last).Seconds()
	h.last = now
	open := h.l.Open()
	n := len(open)
	if n == 0 {
		return
	}
	if h.cfg.InputRate > 0 {
		h.inputDue = min(h.inputDue+dt*h.cfg.InputRate*float64(n), float64(n))
		for ; h.inputDue >= 1; h.inputDue-- {
			c := open[h.next%n]
			h.next++
			h.buf = arena.AppendInput(h.buf[:0], int8(rand.IntN(255)-127), int8(rand.IntN(255)-127))
			c.Send(ws.OpBinary, h.buf)
		}
	}
	if h.cfg.ChatInterval > 0 {
		h.chatDue = min(h.chatDue+dt/h.cfg.ChatInterval.Seconds()*float64(n), float64(n))
		for ; h.chatDue >= 1; h.chatDue-- {
			h.chat(open[rand.IntN(n)], 0)
		}
	}
}

// chat sends one chat line from c's bot, if it is in a match:
// "r<round> hello #<seq>" (round 0 for the background chatter).
func (h *handler) chat(c *loop.Conn, round int) {
	b := c.Context().(*bot)
	if !b.Welcomed || !c.IsOpen() {
		return
	}
	b.seq++
	b.ChatsSent++
	h.buf = append(h.buf[:0], arena.MsgChat, 'r')
	h.buf = strconv.AppendInt(h.buf, int64(round), 10)
	h.buf = append(h.buf, " hello #"...)
	h.buf = strconv.AppendInt(h.buf, int64(b.seq), 10)
	c.Send(ws.OpBinary, h.buf)
}

// roundOf returns the round of a chat line a bot sent, 0 for others.
func roundOf(text []byte) int {
	if len(text) < 2 || text[0] != 'r' {
		return 0
	}
	r := 0
	for _, d := range text[1:] {
		if d < '0' || d > '9' {
			break
		}
		r = r*10 + int(d-'0')
	}
	return r
}
