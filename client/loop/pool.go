//go:build linux

package loop

import (
	"sync"

	"golang.org/x/sys/unix"
)

// Pool is a set of loops dialing one server.
type Pool struct {
	loops []*Loop
}

// New starts cfg.Loops event loops, each with the Handler handler makes for
// it (called once per loop, before any loop runs). Stop them with Close.
func New(cfg Config, handler func(l *Loop) Handler) (*Pool, error) {
	cfg = cfg.withDefaults()
	p := &Pool{}
	for i := 0; i < cfg.Loops; i++ {
		c := cfg
		c.SourceOffset = cfg.SourceOffset + i*7
		l, err := newLoop(i, c)
		if err != nil {
			for _, l := range p.loops {
				_ = unix.Close(l.epfd)
				_ = unix.Close(l.evfd)
			}
			return nil, err
		}
		l.h = handler(l)
		p.loops = append(p.loops, l)
	}
	for _, l := range p.loops {
		go l.run()
	}
	return p, nil
}

// Loops returns the pool's loops, in Index order.
func (p *Pool) Loops() []*Loop { return p.loops }

// Dial opens n connections spread evenly over the loops.
func (p *Pool) Dial(n int) {
	k := len(p.loops)
	for i, l := range p.loops {
		share := n / k
		if i < n%k {
			share++
		}
		if share > 0 {
			l.Dial(share)
		}
	}
}

// Each runs fn on every loop's goroutine and waits for all of them.
func (p *Pool) Each(fn func(l *Loop)) {
	var wg sync.WaitGroup
	for _, l := range p.loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.Do(func() { fn(l) })
		}()
	}
	wg.Wait()
}

// Counters sums the counters of every loop; safe from any goroutine.
func (p *Pool) Counters() Counters {
	var c Counters
	for _, l := range p.loops {
		c.Add(l.Counters())
	}
	return c
}

// Errors returns the distinct error messages seen, with counts (at most 16
// kinds per loop, the rest counted as "(other errors)").
func (p *Pool) Errors() map[string]int64 {
	m := map[string]int64{}
	for _, l := range p.loops {
		l.Errors(m)
	}
	return m
}

// CloseAll starts an orderly close of every connection on every loop and
// waits until each loop has queued its close frames, not for the server's
// answers: watch Counters (Open, Closed, CloseTimeouts) for those.
func (p *Pool) CloseAll() { p.Each(func(l *Loop) { l.CloseAll() }) }

// Close stops every loop and closes every socket without a close handshake.
func (p *Pool) Close() {
	for _, l := range p.loops {
		l.Post(func() { l.stop = true })
	}
	for _, l := range p.loops {
		<-l.done
	}
}
