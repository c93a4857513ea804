//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/megaws/megaws/client"
	"github.com/megaws/megaws/examples/game/arena"
	"github.com/megaws/megaws/examples/game/bot"
	"github.com/megaws/megaws/server"
	"github.com/megaws/megaws/server/servertest"
)

// TestMain fails the run when the tests leave goroutines behind (servers,
// client loops, admin listeners).
func TestMain(m *testing.M) {
	before := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 && !servertest.WaitFor(10*time.Second, func() bool { return runtime.NumGoroutine() <= before }) {
		buf := make([]byte, 1<<20)
		fmt.Fprintf(os.Stderr, "FAIL: %d goroutines before the tests, %d after:\n%s\n",
			before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		code = 1
	}
	os.Exit(code)
}

// startGame serves a game on a free port for the test.
func startGame(t *testing.T, cfg arena.Config) (*arena.Game, string) {
	t.Helper()
	g := arena.New(cfg)
	servertest.Serve(t, g.Server())
	return g, servertest.Addr(g.Server())
}

// botPath is the request target with a valid token.
func botPath(t *testing.T) string {
	t.Helper()
	tok, err := arena.MintToken([]byte(arena.DemoSecret), "bot", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return "/play?token=" + tok
}

// startBots connects n bots and waits until every one is in a match.
func startBots(t *testing.T, addr string, cfg bot.Config) *bot.Fleet {
	t.Helper()
	cfg.Addr, cfg.Path = addr, botPath(t)
	f, err := bot.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	var r bot.Report
	if !poll(30*time.Second, func() bool { r = f.Report(); return r.Welcomed() == cfg.Bots }) {
		t.Fatalf("%d of %d bots in a match after 30 s; counters %+v, errors %v", r.Welcomed(), cfg.Bots, r.Counters, r.Errors)
	}
	return f
}

// poll is servertest.WaitFor at a pace that suits Fleet.Report, which
// visits every client loop.
func poll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// TestGame: 200 bots play for a few seconds. Every one authenticates and
// gets into a match of at most 8; each receives its match's snapshots at
// about the tick rate; chat reaches the other members of the sender's match,
// never the sender or another match; snapshot ages are measured.
func TestGame(t *testing.T) {
	const (
		bots    = 200
		size    = 8
		tickHz  = 20
		measure = 3 * time.Second
	)
	g, addr := startGame(t, arena.Config{MatchSize: size, TickRate: tickHz, Server: server.Config{Loops: 2}})
	f := startBots(t, addr, bot.Config{Bots: bots, InputRate: 10, ChatInterval: 2 * time.Second})

	before := f.Report() // also starts the latency window
	serverBefore := g.Server().Stats()
	time.Sleep(measure)
	during := f.Report()
	serverDuring := g.Server().Stats()
	window := during.Elapsed - before.Elapsed

	// One tagged chat line from every bot: each must reach exactly the
	// other members of its match.
	f.ChatRound(1)
	matchOf := map[uint32]uint32{} // player → match
	members := map[uint32]int{}    // match → players
	for _, b := range during.Bots {
		matchOf[b.Player] = b.Match
		members[b.Match]++
	}
	var r bot.Report
	done := poll(10*time.Second, func() bool {
		r = f.Report()
		for _, b := range r.Bots {
			if b.Rounds[1] < members[b.Match]-1 {
				return false
			}
		}
		return true
	})
	if !done {
		t.Error("round-1 chat lines still missing after 10 s")
	}
	time.Sleep(200 * time.Millisecond) // anything extra would arrive by now
	r = f.Report()

	// Authenticated, in a match, matches full and none over the size.
	if r.Counters.Established != bots || r.Counters.Failed != 0 || r.Counters.Dropped != 0 || r.Welcomed() != bots {
		t.Errorf("established %d, failed %d, dropped %d, in a match %d; want %d in, none lost (errors %v)",
			r.Counters.Established, r.Counters.Failed, r.Counters.Dropped, r.Welcomed(), bots, r.Errors)
	}
	if want := (bots + size - 1) / size; len(members) != want {
		t.Errorf("%d matches, want %d", len(members), want)
	}
	for m, n := range members {
		room := g.Server().Room(fmt.Sprintf("match-%d", m))
		if n > size || room.Len() > size || room.Len() != n {
			t.Errorf("match %d: %d bots say they are in it, the room has %d members; at most %d", m, n, room.Len(), size)
		}
	}
	if st := g.Stats(); st.Players != bots || st.Matches != len(members) {
		t.Errorf("game stats %+v, want %d players in %d matches", st, bots, len(members))
	}

	// Snapshots at about the tick rate, the bot itself in them.
	minRate := 1.0
	for _, b := range r.Bots {
		if !b.InSnapshot {
			t.Errorf("player %d never saw itself in a snapshot of match %d", b.Player, b.Match)
		}
		expected := b.LastSnapshot.Sub(b.FirstSnapshot).Seconds()*tickHz + 1
		got := float64(b.Snapshots) / expected
		minRate = min(minRate, got)
		if got < 0.5 || time.Since(b.LastSnapshot) > time.Second {
			t.Errorf("player %d: %d snapshots, %.0f expected, the last %v ago", b.Player, b.Snapshots, expected, time.Since(b.LastSnapshot))
		}
	}

	// Chat: the round reached exactly the others of the match; no line
	// ever reached its sender or another match.
	var self, foreign, lines int
	for _, b := range r.Bots {
		if got, want := b.Rounds[1], members[b.Match]-1; got != want {
			t.Errorf("player %d (match %d): %d round-1 lines, want %d", b.Player, b.Match, got, want)
		}
		for from, n := range b.ChatFrom {
			lines += n
			switch {
			case from == b.Player:
				self += n
			case matchOf[from] != b.Match:
				foreign += n
			}
		}
	}
	if self != 0 || foreign != 0 {
		t.Errorf("of %d chat lines, %d reached their sender and %d another match", lines, self, foreign)
	}

	// Latency: logged; asserted only against a bound no slow machine
	// should reach.
	lat := during.Window
	if lat.Samples == 0 || lat.P50 <= 0 || lat.P99 > 2*time.Second {
		t.Errorf("snapshot age %+v", lat)
	}
	if r.Unknown != 0 {
		t.Errorf("%d messages of unknown types", r.Unknown)
	}
	if st := g.Server().Stats(); st.RateLimited != 0 || st.QueueDrops != 0 {
		t.Errorf("rate limited %d, dropped for slow reading %d: the bots are well-behaved", st.RateLimited, st.QueueDrops)
	}
	sec := window.Seconds()
	t.Logf("%d bots in %d matches of %d; over %.1f s: %.0f deliveries/s to the bots (%.0f snapshots/s, %.0f chat lines/s), %.0f messages/s from them; server wrote %.0f frames/s",
		bots, len(members), size, sec,
		float64(during.Counters.Recv-before.Counters.Recv)/sec,
		float64(during.Snapshots-before.Snapshots)/sec, float64(during.Chats-before.Chats)/sec,
		float64(during.Counters.Sent-before.Counters.Sent)/sec,
		float64(serverDuring.MessagesOut-serverBefore.MessagesOut)/sec)
	t.Logf("snapshot age on arrival: p50 %v, p90 %v, p99 %v, max %v (%d samples); slowest bot got %.0f%% of its ticks; %d chat lines, round 1 exact",
		lat.P50, lat.P90, lat.P99, lat.Max, lat.Samples, 100*minRate, lines)
}

// TestAuth: a missing, forged or expired token is refused with 401 before
// the upgrade, another path with 404; a valid token gets a welcome.
func TestAuth(t *testing.T) {
	g, addr := startGame(t, arena.Config{})
	secret := []byte(arena.DemoSecret)
	good, _ := arena.MintToken(secret, "alice", time.Hour)
	forged, _ := arena.MintToken([]byte("not the secret"), "alice", time.Hour)
	expired, _ := arena.MintToken(secret, "alice", -time.Minute)
	for _, tc := range []struct {
		name, path string
		header     string
		status     int
	}{
		{name: "no token", path: "/play", status: 401},
		{name: "forged", path: "/play?token=" + forged, status: 401},
		{name: "expired", path: "/play?token=" + expired, status: 401},
		{name: "garbage", path: "/play?token=x.y", status: 401},
		{name: "wrong path", path: "/chat?token=" + good, status: 404},
		{name: "query", path: "/play?token=" + good, status: 101},
		{name: "bearer header", path: "/play", header: "Bearer " + good, status: 101},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			opts := &client.Options{}
			if tc.header != "" {
				opts.Header = map[string][]string{"Authorization": {tc.header}}
			}
			c, _, err := client.Dial(ctx, "ws://"+addr+tc.path, opts)
			if tc.status != 101 {
				var he *client.HandshakeError
				if !errors.As(err, &he) || he.StatusCode != tc.status {
					t.Fatalf("dial: %v, want HTTP %d", err, tc.status)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(ws.StatusNormalClosure, "")
			_, msg, err := c.ReadMessage(ctx)
			if w, ok := arena.ParseWelcome(msg); err != nil || !ok || w.Match == 0 {
				t.Fatalf("first message %x, %v: want a welcome", msg, err)
			}
		})
	}
	if st := g.Stats(); st.AuthRefused != 4 {
		t.Errorf("AuthRefused %d, want 4", st.AuthRefused)
	}
	if n := g.Server().Stats().Rejected[401]; n != 4 {
		t.Errorf("megaws counted %d refusals with 401, want 4", n)
	}
}

// TestRateLimit: a player that floods inputs has everything past its burst
// dropped by megaws (Config.RateLimit) and stays connected.
func TestRateLimit(t *testing.T) {
	g, addr := startGame(t, arena.Config{})
	c := dialPlayer(t, addr, nil)
	input := arena.AppendInput(nil, 127, 0)
	for range 200 {
		if err := c.WriteMessage(ws.OpBinary, input); err != nil {
			t.Fatal(err)
		}
	}
	servertest.Eventually(t, 5*time.Second, func() bool { return g.Stats().Inputs+g.Server().Stats().RateLimited == 200 })
	inputs, limited := g.Stats().Inputs, g.Server().Stats().RateLimited
	burst := uint64(arena.DefaultRateLimit.MessageBurst)
	if limited == 0 || inputs > burst+10 {
		t.Errorf("%d inputs applied, %d dropped; want at most the burst (%d) and a few more applied", inputs, limited, burst)
	}
	// Still in the game, alone in its match: snapshots keep coming.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for snapshots := 0; snapshots < 3; {
		_, msg, err := c.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("after the flood, %d snapshots: %v", snapshots, err)
		}
		if _, ok := arena.ParseSnapshot(msg); ok {
			snapshots++
		}
	}
	t.Logf("200 inputs sent at once: %d applied, %d dropped by the rate limit", inputs, limited)
}

// dialPlayer connects one player with the blocking client and reads its
// welcome. control, when set, configures the socket before it connects.
func dialPlayer(t *testing.T, addr string, control func(fd uintptr)) *client.Conn {
	t.Helper()
	d := &net.Dialer{}
	if control != nil {
		d.Control = func(_, _ string, rc syscall.RawConn) error { return rc.Control(control) }
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := client.Dial(ctx, "ws://"+addr+botPath(t), &client.Options{NetDialContext: d.DialContext})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(ws.StatusNormalClosure, "") })
	_, msg, err := c.ReadMessage(ctx)
	if _, ok := arena.ParseWelcome(msg); err != nil || !ok {
		t.Fatalf("first message %x, %v: want a welcome", msg, err)
	}
	return c
}

// TestSlowReader: a player that stops reading does not slow the others
// down, its match included; when it reads again it gets the newest state
// after what its socket held, not every snapshot it missed.
func TestSlowReader(t *testing.T) {
	const (
		tickHz = 20
		npcs   = 12_000 // 48 KB snapshots: the kernel's ~3 MB fill in ~3 s
		stall  = 1500 * time.Millisecond
	)
	// The snapshots a stalled player will never get still count towards
	// its MaxWriteQueue (4 MiB by default: 4.3 s of these once its socket is
	// full, see README.md); 16 MiB keeps a slow test machine from turning
	// the stall into a drop.
	g, addr := startGame(t, arena.Config{MatchSize: 8, TickRate: tickHz, NPCs: npcs,
		Server: server.Config{Loops: 2, MaxWriteQueue: 16 << 20}})
	// First in: match-1, with 7 bots; 8 more bots fill match-2.
	slow := dialPlayer(t, addr, func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<10)
	})
	f := startBots(t, addr, bot.Config{Bots: 15, InputRate: 10})

	// It stops reading now. Once its socket is full, its snapshots wait in
	// megaws, and the game sees it lag.
	if !poll(30*time.Second, func() bool { return g.Stats().Lagging > 0 }) {
		t.Fatal("the player that stopped reading never lagged")
	}
	lagged := time.Now()
	r0 := f.Report()
	time.Sleep(stall)
	r1 := f.Report()
	sec := (r1.Elapsed - r0.Elapsed).Seconds()
	got0 := map[uint32]int{}
	for _, b := range r0.Bots {
		got0[b.Player] = b.Snapshots
	}
	minRate := 1.0
	for _, b := range r1.Bots {
		rate := float64(b.Snapshots-got0[b.Player]) / sec / tickHz
		minRate = min(minRate, rate)
		if rate < 0.5 {
			t.Errorf("player %d (match %d) got %.0f%% of the ticks while one player did not read", b.Player, b.Match, 100*rate)
		}
	}

	// It reads again: first the old snapshots its socket held, then the
	// newest one (the ones in between were replaced), then the live ones.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var ticks []uint32
	var backlog int
	var caughtUp bool
	for !caughtUp {
		_, msg, err := slow.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("the slow player, after %d snapshots: %v", len(ticks), err)
		}
		s, ok := arena.ParseSnapshot(msg)
		if !ok {
			continue // joins, chat
		}
		ticks = append(ticks, s.Tick)
		if age := time.Since(time.Unix(0, s.Stamp)); age < 200*time.Millisecond {
			caughtUp = true
		} else {
			backlog++
		}
	}
	skipped := int(ticks[len(ticks)-1]-ticks[0]) + 1 - len(ticks)
	if skipped <= 0 {
		t.Errorf("the slow player got every one of ticks %d..%d: no snapshot was replaced", ticks[0], ticks[len(ticks)-1])
	}
	st := g.Server().Stats()
	if st.QueueDrops != 0 || st.BudgetDrops != 0 {
		t.Errorf("%d players dropped for a full queue, %d for the budget", st.QueueDrops, st.BudgetDrops)
	}
	t.Logf("stalled %v after its socket filled: the others got ≥ %.0f%% of their ticks; then it read %d old snapshots (%d KB) from its socket, and caught up %v after it lagged, skipping %d snapshots megaws replaced",
		stall, 100*minRate, backlog, backlog*(arena.SnapshotHeaderLen+8*8+4*npcs)>>10, time.Since(lagged).Round(time.Millisecond), skipped)
}
