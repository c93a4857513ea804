package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/megaws/megaws/examples/game/arena"
	"github.com/megaws/megaws/server"
)

// serve runs the game server until SIGINT or SIGTERM.
func serve(args []string) error {
	fs := flag.NewFlagSet("game [serve]", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8090", "listen address (WebSocket endpoint ws://ADDR/play?token=...)")
	size := fs.Int("match", 8, "players per match (at most 255)")
	tick := fs.Int("tick", 20, "ticks (world steps and snapshots) per second, at most 100")
	npcs := fs.Int("npcs", 0, "NPCs per match (4 bytes each in every snapshot)")
	loops := fs.Int("loops", 0, "event loops (0: one per CPU)")
	rate := fs.Float64("rate", arena.DefaultRateLimit.Messages, "messages per second a player may send (beyond: dropped)")
	admin := fs.String("admin", "", "admin listener for Prometheus /metrics, e.g. 127.0.0.1:9090 (off when empty)")
	secret := secretFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *rate < 1 {
		return errors.New("-rate: at least 1 message a second")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	// A 32 KiB send buffer keeps what a lagging player is sent fresh: the
	// snapshots behind it wait in megaws's queue, where newer ones replace
	// them, instead of in megabytes of kernel buffer.
	scfg := server.Config{Loops: *loops, Logger: log, RateLimit: arena.DefaultRateLimit, SendBuffer: 32 << 10}
	scfg.RateLimit.Messages, scfg.RateLimit.MessageBurst = *rate, int(*rate)
	g := arena.New(arena.Config{Secret: secret(), MatchSize: *size, TickRate: *tick, NPCs: *npcs, Server: scfg})

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	return run(ctx, g, *addr, *admin, log, nil)
}

// run serves g on addr (and its metrics on admin, unless empty) until ctx
// is done, then stops gracefully: the players are told, get close 1001, and
// their close handshakes are awaited for at most 5 s. ready, when set, is
// called with the game's and the admin listener's addresses once both
// listen.
func run(ctx context.Context, g *arena.Game, addr, admin string, log *slog.Logger, ready func(game, admin string)) error {
	s := g.Server()
	adminAddr := ""
	if admin != "" {
		stop, a, err := startAdmin(admin, g, log)
		if err != nil {
			return err
		}
		defer stop()
		adminAddr = a
	}
	served := make(chan error, 1)
	go func() { served <- s.ListenAndServe(addr) }()
	select {
	case <-s.Ready():
		cfg := g.Config()
		log.Info("game: listening", "url", "ws://"+s.Addr().String()+cfg.Path+"?token=...",
			"match", cfg.MatchSize, "tick_hz", cfg.TickRate, "npcs", cfg.NPCs, "loops", cfg.Server.Loops)
		if ready != nil {
			ready(s.Addr().String(), adminAddr)
		}
	case err := <-served:
		return err
	}
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("game: stopping", "players", g.Stats().Players)
	_ = s.Broadcast(ws.OpBinary, arena.AppendChatFrom(nil, 0, []byte(shutdownNotice)))
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if err := s.Stop(sctx); err != nil {
		log.Warn("game: stop", "err", err)
	}
	if err := <-served; err != nil {
		return err
	}
	log.Info("game: stopped")
	return nil
}

// shutdownNotice is the chat line from the server (player 0) that players
// get before the close frame when the server stops.
const shutdownNotice = "server shutting down"

// startAdmin serves /metrics (megaws_*, game_*, Go runtime and process) on
// addr. Keep it on loopback.
func startAdmin(addr string, g *arena.Game, log *slog.Logger) (stop func(), bound string, err error) {
	reg := prometheus.NewRegistry()
	if err := g.Register(reg); err != nil {
		return nil, "", err
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("game: admin listener", "err", err)
		}
	}()
	log.Info("game: metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
	}, ln.Addr().String(), nil
}
