package arena

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/megaws/megaws/metrics"
)

// Register registers the game's metrics with reg: megaws's own (megaws_*,
// package metrics: connections, handshakes refused by status, messages,
// rate-limited messages, slow readers dropped, loop lag ...) and the game's
// (game_*). Everything is read from counters at scrape time; nothing is
// counted for Prometheus on the event loops but one histogram observation
// per tick.
func (g *Game) Register(reg prometheus.Registerer) error {
	gauge := func(name, help string, f func(Stats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(g.Stats()) })
	}
	counter := func(name, help string, f func(Stats) float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return f(g.Stats()) })
	}
	for _, c := range []prometheus.Collector{
		metrics.NewCollector(g.s),
		g.tickSeconds,
		gauge("game_players", "Players connected, all of them in a match.", func(s Stats) float64 { return float64(s.Players) }),
		gauge("game_matches", "Matches with players.", func(s Stats) float64 { return float64(s.Matches) }),
		gauge("game_lagging_players", "Players whose output waited in megaws's queue at the last tick (their socket is full).", func(s Stats) float64 { return float64(s.Lagging) }),
		counter("game_inputs_total", "Player inputs applied.", func(s Stats) float64 { return float64(s.Inputs) }),
		counter("game_chats_total", "Chat lines relayed to a match.", func(s Stats) float64 { return float64(s.Chats) }),
		counter("game_snapshots_total", "Match snapshots published.", func(s Stats) float64 { return float64(s.Snapshots) }),
		counter("game_auth_refused_total", "Upgrades refused with 401 for a missing, bad or expired token.", func(s Stats) float64 { return float64(s.AuthRefused) }),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
