package scenario

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/megaws/megaws/client/loop"
)

// Load configures the load generator of a scenario.
type Load struct {
	Loops      int           // event loops in this process (default 1)
	Sources    []netip.Addr  // source addresses (default 127.0.0.2-127.0.0.250)
	MaxPending int           // dials in flight per loop (default 256)
	Progress   io.Writer     // live status; nil for none
	Tick       time.Duration // event-loop wake-up interval (default 2 ms)
	// CloseTimeout bounds the wait for the server's answer to a close
	// frame (default 5 s).
	CloseTimeout time.Duration
	// HandshakeTimeout bounds connect plus handshake (default 10 s).
	HandshakeTimeout time.Duration
}

func (lo Load) config(addr string) loop.Config {
	src := lo.Sources
	if src == nil {
		src = DefaultSources()
	}
	return loop.Config{Addr: addr, Loops: lo.Loops, SourceIPs: src, MaxPending: lo.MaxPending, Tick: lo.Tick, CloseTimeout: lo.CloseTimeout, HandshakeTimeout: lo.HandshakeTimeout}
}

// Failure is the error a run returns when the load generator counted errors.
type Failure struct {
	Counters loop.Counters
	Errors   map[string]int64
}

func (f *Failure) Error() string {
	return fmt.Sprintf("%d errors (failed %d, dropped %d, verify %d, protocol %d): %s",
		f.Counters.Errors(), f.Counters.Failed, f.Counters.Dropped, f.Counters.Aborted, f.Counters.ProtocolErrors, FormatErrors(f.Errors))
}

// FormatErrors renders error messages with counts, most frequent first.
func FormatErrors(m map[string]int64) string {
	type kv struct {
		k string
		v int64
	}
	var s []kv
	for k, v := range m {
		s = append(s, kv{k, v})
	}
	sort.Slice(s, func(i, j int) bool { return s[i].v > s[j].v })
	var b strings.Builder
	for i, e := range s {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%d× %s", e.v, e.k)
	}
	return b.String()
}

func check(c loop.Counters, errs map[string]int64) error {
	if c.Errors() > 0 {
		return &Failure{Counters: c, Errors: errs}
	}
	return nil
}

// progress prints a live status line: rewritten in place on a terminal,
// one line every few seconds otherwise.
type progress struct {
	w     io.Writer
	tty   bool
	last  time.Time
	shown bool
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
	}
	return p
}

func (p *progress) show(force bool, format string, args ...any) {
	if p == nil || p.w == nil {
		return
	}
	every := 3 * time.Second
	if p.tty {
		every = 200 * time.Millisecond
	}
	if !force && time.Since(p.last) < every {
		return
	}
	p.last = time.Now()
	line := fmt.Sprintf(format, args...)
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.shown = true
	} else {
		fmt.Fprintln(p.w, line)
	}
}

func (p *progress) done() {
	if p != nil && p.w != nil && p.tty && p.shown {
		fmt.Fprintln(p.w)
		p.shown = false
	}
}

// counterSource is a load generator whose counters can be polled: an
// in-process Pool or a fleet of agent processes.
type counterSource interface {
	Counters() loop.Counters
}

// waitEstablished waits until target dials have completed (established or
// failed), showing progress, for at most timeout. It returns the time taken.
// openAll dials n connections and waits up to a minute until all are
// established with nothing wrong on the way.
func openAll(ctx context.Context, cl *loop.Pool, n int, p *progress, label string) error {
	cl.Dial(n)
	if _, err := waitEstablished(ctx, cl, int64(n), 60*time.Second, p, label); err != nil {
		return err
	}
	return check(cl.Counters(), cl.Errors())
}

func waitEstablished(ctx context.Context, src counterSource, target int64, timeout time.Duration, p *progress, label string) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(timeout)
	var prev loop.Counters
	prevT := start
	rate := 0.0
	for {
		c := src.Counters()
		now := time.Now()
		if dt := now.Sub(prevT); dt >= 500*time.Millisecond {
			rate = float64(c.Established-prev.Established) / dt.Seconds()
			prev, prevT = c, now
		}
		doneN := c.Established + c.Failed
		finished := doneN >= target
		p.show(finished, "%s: %s/%s established (%.1f%%), %d failed, %d dropped, %.0f conn/s, %.1fs",
			label, commas(c.Established), commas(target), 100*float64(c.Established)/float64(max(target, 1)), c.Failed, c.Dropped, rate, now.Sub(start).Seconds())
		if finished {
			p.done()
			return now.Sub(start), nil
		}
		if now.After(deadline) {
			p.done()
			return now.Sub(start), fmt.Errorf("%s: only %d of %d connections after %s", label, doneN, target, timeout)
		}
		select {
		case <-ctx.Done():
			p.done()
			return now.Sub(start), ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// closeClient closes every connection of cl in order and waits for them.
func closeClient(cl *loop.Pool, timeout time.Duration) time.Duration {
	start := time.Now()
	cl.CloseAll()
	deadline := start.Add(timeout)
	for cl.Counters().Open > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// Closes in progress (our frame sent, theirs not yet here) finish or
	// time out within the client's CloseTimeout.
	for pendingCloses(cl) > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

func pendingCloses(cl *loop.Pool) int64 {
	c := cl.Counters()
	return c.Established - c.Closed - c.Dropped - c.Aborted - c.CloseTimeouts - c.Open
}

func commas(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// sleepCtx sleeps for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
