package scenario

import (
	"context"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/gobwas/ws"

	"github.com/megaws/megaws/codec"
)

// runCompressBroadcast is RunCompress for kind "broadcast": cfg.Conns
// connections to a broadcast server, the first also publishing game ticks,
// at most cfg.Inflight of them on their way to some connection at once.
// Every connection reads every message in order, inflates it as agreed and
// compares it with what was published.
func runCompressBroadcast(ctx context.Context, srv *Server, cfg CompressConfig, progress io.Writer) (*CompressResult, error) {
	if cfg.Inflight <= 0 {
		cfg.Inflight = 4
	}
	p := newProgress(progress)
	label := fmt.Sprintf("compress %s %s broadcast n=%d", srv.Target.Name, WindowLabel(cfg.Window), cfg.Conns)
	var wire zWire
	clients := make([]*zClient, cfg.Conns)
	closeAll := func() {
		for _, c := range clients {
			if c != nil {
				c.close()
			}
		}
	}
	for i := range clients {
		c, err := dialZ(ctx, srv.Addr, i, &wire)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("%s: connection %d: %w", label, i, err)
		}
		clients[i] = c
	}
	res := &CompressResult{Config: cfg, Extensions: clients[0].ext}
	if cfg.Window != CompressionOff && !clients[0].deflate {
		closeAll()
		return res, fmt.Errorf("%s: the server did not accept %q (Sec-WebSocket-Extensions %q)", label, CompressOffer, clients[0].ext)
	}
	// Some servers subscribe a connection a moment after its handshake.
	if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
		closeAll()
		return nil, err
	}

	// ring holds the messages in flight: message k in slot k % Inflight,
	// overwritten only once every connection has received k. acks counts
	// the connections that did; the one that completes k reports it.
	var (
		mu       sync.Mutex
		ring     = make([][]byte, cfg.Inflight)
		sentAt   = make([]time.Time, cfg.Inflight)
		acks     = make([]atomic.Int32, cfg.Inflight)
		complete = make(chan int64, cfg.Inflight)
		running  atomic.Bool
		record   atomic.Bool
		stop     = make(chan struct{})
		errOnce  sync.Once
		runErr   error
		hist     = hdrhistogram.New(1, 60_000_000, 3)
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		errOnce.Do(func() {
			runErr = err
			close(stop)
		})
	}
	n := int32(len(clients))
	for i, c := range clients {
		wg.Go(func() {
			for k := int64(0); ; k++ {
				got, err := c.recv()
				if err != nil {
					if running.Load() {
						fail(fmt.Errorf("connection %d, message %d: %w", i, k, err))
					}
					return
				}
				slot := k % int64(cfg.Inflight)
				mu.Lock()
				want := ring[slot]
				mu.Unlock()
				if string(got) != string(want) {
					fail(fmt.Errorf("connection %d, message %d: verify: not the message published", i, k))
					return
				}
				if record.Load() {
					wire.msgs.Add(1)
					wire.payload.Add(int64(len(got)))
				}
				if acks[slot].Add(1) == n {
					complete <- k
				}
			}
		})
	}

	var published, pubBytes, firstRecorded atomic.Int64
	firstRecorded.Store(-1)
	pubDone := make(chan struct{})
	running.Store(true)
	go func() {
		defer close(pubDone)
		r := mrand.New(mrand.NewPCG(1, 7))
		next := int64(0) // the next message expected to complete
		for k := int64(0); ; k++ {
			if k >= int64(cfg.Inflight) {
				select {
				case done := <-complete:
					if done != next {
						fail(fmt.Errorf("message %d completed before %d", done, next))
						return
					}
					mu.Lock()
					at := sentAt[done%int64(cfg.Inflight)]
					mu.Unlock()
					if firstRecorded.Load() >= 0 && done >= firstRecorded.Load() {
						_ = hist.RecordValue(time.Since(at).Microseconds())
					}
					next++
				case <-stop:
					return
				case <-time.After(10 * time.Second):
					fail(fmt.Errorf("message %d did not reach every connection within 10 s", next))
					return
				}
			}
			if !running.Load() {
				return
			}
			msg := gameTick(r, int(k))
			slot := k % int64(cfg.Inflight)
			acks[slot].Store(0)
			mu.Lock()
			ring[slot], sentAt[slot] = msg, time.Now()
			mu.Unlock()
			if record.Load() {
				if firstRecorded.Load() < 0 {
					firstRecorded.Store(k)
				}
				published.Add(1)
				pubBytes.Add(int64(len(msg)))
			}
			if err := clients[0].send(msg); err != nil {
				fail(fmt.Errorf("publish message %d: %w", k, err))
				return
			}
		}
	}()

	// finish stops the publisher, lets the readers take what is in flight
	// and the server's answer to a close frame (or give up after 2 s),
	// then closes the sockets.
	finish := func() {
		running.Store(false)
		<-pubDone
		for _, c := range clients {
			_ = c.c.SetDeadline(time.Now().Add(2 * time.Second))
			c.wmu.Lock()
			_, _ = c.c.Write(codec.AppendFrameMasked(nil, ws.OpClose, true, []byte{0x03, 0xe8}, [4]byte{1, 2, 3, 4}))
			c.wmu.Unlock()
		}
		wg.Wait()
		for _, c := range clients {
			_ = c.c.Close()
		}
	}
	if err := sleepCtx(ctx, cfg.Warmup); err != nil {
		finish()
		return nil, err
	}
	record.Store(true)
	up0, down0, z0, n0 := wire.up.Load(), wire.down.Load(), wire.zdown.Load(), wire.framesDown.Load()
	cpu0, self0, t0 := srv.CPU(), SelfCPU(), time.Now()
	peak := srv.RSS()
measure:
	for end := t0.Add(cfg.Duration); time.Now().Before(end); {
		select {
		case <-stop:
			break measure
		case <-ctx.Done():
			break measure
		case <-time.After(min(100*time.Millisecond, time.Until(end))):
		}
		peak = max(peak, srv.RSS())
		el := time.Since(t0).Seconds()
		p.show(false, "%s: %.0f deliveries/s, %.1fs", label, float64(wire.msgs.Load())/el, el)
	}
	record.Store(false)
	up1, down1, z1, n1 := wire.up.Load(), wire.down.Load(), wire.zdown.Load(), wire.framesDown.Load()
	cpu1, self1, t1 := srv.CPU(), SelfCPU(), time.Now()
	p.done()
	finish()

	secs := t1.Sub(t0).Seconds()
	res.Seconds = secs
	res.Published = published.Load()
	res.Deliveries = wire.msgs.Load()
	res.PerSec = float64(res.Published) / secs
	res.DeliveriesPerSec = float64(res.Deliveries) / secs
	res.PayloadBytes = wire.payload.Load()
	res.WireUp, res.WireDown = up1-up0, down1-down0
	res.Latency = LatencyOf(hist)
	res.ServerCPUSeconds = (cpu1 - cpu0).Seconds()
	res.ClientCPUSeconds = (self1 - self0).Seconds()
	res.PeakRSS = peak
	if res.Deliveries > 0 {
		res.MeanSize = float64(res.PayloadBytes) / float64(res.Deliveries)
		res.RatioDown = float64(res.WireDown) / float64(res.PayloadBytes)
		res.ServerCPUPerDelivery = res.ServerCPUSeconds * 1e6 / float64(res.Deliveries)
		res.ServerCPUPerMsg = res.ServerCPUPerDelivery
		res.ClientCPUPerMsg = res.ClientCPUSeconds * 1e6 / float64(res.Deliveries)
	}
	if b := pubBytes.Load(); b > 0 {
		res.RatioUp = float64(res.WireUp) / float64(b)
	}
	if d := n1 - n0; d > 0 {
		res.CompressedDown = float64(z1-z0) / float64(d)
	}
	switch {
	case ctx.Err() != nil:
		return res, ctx.Err()
	case runErr != nil:
		res.Errors = map[string]int64{runErr.Error(): 1}
		return res, fmt.Errorf("%s: %w", label, runErr)
	case res.Deliveries == 0:
		return res, fmt.Errorf("%s: no message delivered in %v", label, cfg.Duration)
	case res.Deliveries < res.Published*int64(n)-int64(cfg.Inflight)*int64(n):
		return res, fmt.Errorf("%s: %d deliveries of %d messages to %d connections", label, res.Deliveries, res.Published, n)
	}
	return res, nil
}
