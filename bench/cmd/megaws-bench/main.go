// Command megaws-bench measures megaws, and the servers people would pick
// instead, with an event-driven load generator.
//
//	megaws-bench echo --server megaws --conns 1000 --size 1024 --duration 10s
//	megaws-bench idle --server gorilla --conns 18000 --checkpoints 1000,5000
//	megaws-bench idle --conns 1000000 --workers 59 --hold 5m --teardown sigterm --heap-profile --out reports/c1m
//	megaws-bench compare --servers all --out reports/compare
//	megaws-bench slowreaders --fast 100 --slow 2000 --size 1k --rate 500 --max-rss 4GiB
//	megaws-bench quick --servers megaws,gorilla   # every scenario, tiny (CI)
//
// Scenarios start the server themselves (built from this repository or
// bench/peers), run, stop it, and exit non-zero on any failed connection,
// dropped connection, wrong byte or protocol error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `megaws-bench — WebSocket benchmark harness.

Usage:
  megaws-bench idle      hold N idle connections: server memory per connection, CPU and
                         keepalive over the hold, graceful stop (--teardown sigterm)
  megaws-bench echo      round trips/s, latency, server CPU per message
  megaws-bench broadcast one publisher, N subscribers: deliveries/s, latency
  megaws-bench connect   a burst of handshakes, then orderly close
  megaws-bench churn     repeated connect/close cycles; leaks
  megaws-bench slowreaders
                         broadcast while some clients never read: server memory,
                         fast readers' rate and latency, slow readers dropped
  megaws-bench compress  permessage-deflate: bytes on the wire and server CPU per message
                         for game-state and chat traffic echoed and per delivery of game
                         state broadcast, with and without context takeover
  megaws-bench cluster   N subscribers over 3 nodes joined by a broker, publishers on every
                         node, against one node and Centrifugo / Socket.IO clusters
  megaws-bench compare   the scenarios against megaws and peers; JSON + Markdown report
  megaws-bench quick     every scenario, tiny, against a few servers (CI)
  megaws-bench render    re-render report.md and charts from a report.json
  megaws-bench agent     internal: a load-generator process driven by idle

"megaws-bench CMD --help" lists the flags of CMD.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	var err error
	switch args[0] {
	case "idle", "echo", "broadcast", "connect", "churn", "slowreaders":
		err = runScenario(ctx, args[0], args[1:], stdout, stderr)
	case "compare":
		err = runCompare(ctx, args[1:], stdout, stderr)
	case "compress":
		err = runCompress(ctx, args[1:], stdout, stderr)
	case "cluster":
		err = runCluster(ctx, args[1:], stdout, stderr)
	case "quick":
		err = runQuick(ctx, args[1:], stdout, stderr)
	case "render":
		err = runRender(args[1:], stdout, stderr)
	case "agent":
		err = runAgent(args[1:], stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "megaws-bench: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(stderr, "megaws-bench:", err)
			return 2
		}
		fmt.Fprintln(stderr, "megaws-bench: FAIL:", err)
		return 1
	}
	return 0
}

type usageError struct{ error }
