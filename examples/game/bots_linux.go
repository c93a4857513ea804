package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/megaws/megaws/examples/game/arena"
	"github.com/megaws/megaws/examples/game/bot"
)

// bots connects bots to a game server and prints what they see every few
// seconds until -d has passed or SIGINT/SIGTERM.
func bots(args []string) error {
	fs := flag.NewFlagSet("game bots", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8090", "game server, IPv4 host:port")
	n := fs.Int("n", 100, "bots")
	loops := fs.Int("loops", 1, "client event loops")
	input := fs.Float64("input", 10, "inputs per second per bot")
	chat := fs.Duration("chat", 10*time.Second, "mean time between a bot's chat lines (0: none)")
	dur := fs.Duration("d", 0, "run this long (0: until Ctrl-C)")
	every := fs.Duration("every", 5*time.Second, "report interval")
	name := fs.String("name", "bot", "player name in the bots' token")
	secret := secretFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	tok, err := arena.MintToken(secret(), *name, 24*time.Hour)
	if err != nil {
		return err
	}
	f, err := bot.Start(bot.Config{
		Addr: *addr, Path: "/play?token=" + tok, Bots: *n, Loops: *loops,
		InputRate: *input, ChatInterval: *chat,
	})
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Printf("bots: %d bots to ws://%s/play, %g inputs/s each, a chat line every %v\n", *n, *addr, *input, *chat)

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	if *dur > 0 {
		var c2 context.CancelFunc
		ctx, c2 = context.WithTimeout(ctx, *dur)
		defer c2()
	}
	t := time.NewTicker(*every)
	defer t.Stop()
	prev := f.Report()
	for {
		select {
		case <-ctx.Done():
			r := f.Report()
			printReport(os.Stdout, "total", r, bot.Report{}, r.Elapsed)
			return nil
		case <-t.C:
			r := f.Report()
			printReport(os.Stdout, "last "+(r.Elapsed-prev.Elapsed).Round(time.Second).String(), r, prev, r.Elapsed-prev.Elapsed)
			prev = r
		}
	}
}

func printReport(w *os.File, label string, r, prev bot.Report, d time.Duration) {
	sec := d.Seconds()
	lat := r.Window
	if prev.Elapsed == 0 {
		lat = r.Latency
	}
	fmt.Fprintf(w, "%s: open %d, in a match %d, failed %d, dropped %d | received %.0f/s (snapshots %.0f/s, chat %.0f/s), sent %.0f/s | snapshot age p50 %v p99 %v max %v\n",
		label, r.Counters.Open, r.Welcomed(), r.Counters.Failed, r.Counters.Dropped,
		float64(r.Counters.Recv-prev.Counters.Recv)/sec,
		float64(r.Snapshots-prev.Snapshots)/sec, float64(r.Chats-prev.Chats)/sec,
		float64(r.Counters.Sent-prev.Counters.Sent)/sec,
		lat.P50.Round(time.Microsecond), lat.P99.Round(time.Microsecond), lat.Max.Round(time.Microsecond))
	for e, k := range r.Errors {
		fmt.Fprintf(w, "  %d × %s\n", k, e)
	}
}
