package scenario

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"
)

// startTarget builds and starts name ("megaws" or a Go peer) in mode.
func startTarget(t *testing.T, name, mode string) *Server {
	t.Helper()
	env, err := NewEnv(".", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	env.Loops = 1
	targets, err := Targets([]string{name})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := env.Build(ctx, targets); err != nil {
		t.Fatal(err)
	}
	srv, err := env.Start(ctx, targets[0], mode)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv
}

// TestScenariosEndToEnd runs every scenario, tiny, against a real megaws
// process and a gorilla peer process: the load generator's verification
// must find nothing wrong and every figure must be plausible.
func TestScenariosEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts servers")
	}
	ctx := context.Background()
	for _, name := range []string{"megaws", "gorilla"} {
		t.Run(name, func(t *testing.T) {
			srv := startTarget(t, name, "echo")
			lo := Load{Sources: DefaultSources()[:4]}

			e, err := RunEcho(ctx, srv, EchoConfig{Conns: 10, Size: 1000, Inflight: 3, Duration: 300 * time.Millisecond, Warmup: 50 * time.Millisecond}, lo)
			if err != nil {
				t.Fatal(err)
			}
			if e.RoundTrips == 0 || e.Latency.Count == 0 || e.ServerCPUSeconds < 0 || e.Counters.Recv != e.Counters.Sent {
				t.Fatalf("echo: %+v", e)
			}

			i, err := RunIdle(ctx, srv, IdleConfig{Conns: 300, Checkpoints: []int{100}, Hold: 100 * time.Millisecond, Sample: 0.1}, IdleOptions{Load: lo})
			if err != nil {
				t.Fatal(err)
			}
			if len(i.Points) != 2 || i.Points[1].Conns != 300 || i.Sample.OK != 30 || i.AfterHold.ServerRSS <= 0 || i.Counters.Closed != 300 {
				t.Fatalf("idle: %+v", i)
			}

			c, err := RunConnect(ctx, srv, ConnectConfig{Conns: 200}, lo)
			if err != nil {
				t.Fatal(err)
			}
			if c.Established != 200 || c.Closed != 200 || c.HandshakesPerSec <= 0 {
				t.Fatalf("connect: %+v", c)
			}

			ch, err := RunChurn(ctx, srv, ChurnConfig{Conns: 100, Cycles: 2}, lo)
			if err != nil {
				t.Fatal(err)
			}
			if len(ch.Cycles) != 2 || ch.Counters.Closed != 200 {
				t.Fatalf("churn: %+v", ch)
			}

			b := startTarget(t, name, "broadcast")
			br, err := RunBroadcast(ctx, b, BroadcastConfig{Subscribers: 20, Size: 100, Rate: 100, Duration: 300 * time.Millisecond}, lo)
			if err != nil {
				t.Fatal(err)
			}
			if br.Published == 0 || br.Deliveries != br.Published*20 {
				t.Fatalf("broadcast: %+v", br)
			}
		})
	}
}

// TestAgentProtocol drives an in-process agent over its JSON-lines protocol.
func TestAgentProtocol(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts a server")
	}
	srv := startTarget(t, "megaws", "echo")
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- ServeAgent(inR, outW, srv.Addr, Load{}); _ = outW.Close() }()
	enc := json.NewEncoder(inW)
	sc := bufio.NewScanner(outR)
	next := func(typ string, until func(agentMsg) bool) agentMsg {
		t.Helper()
		for sc.Scan() {
			var m agentMsg
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatal(err)
			}
			if m.Type == typ && (until == nil || until(m)) {
				return m
			}
		}
		t.Fatalf("agent output ended before %s", typ)
		return agentMsg{}
	}
	_ = enc.Encode(agentMsg{Op: "dial", N: 50})
	next("status", func(m agentMsg) bool { return m.Counters.Open == 50 })
	_ = enc.Encode(agentMsg{Op: "sample", Fraction: 0.5, Timeout: 5 * time.Second})
	s := next("sample", nil)
	if s.Sample.Sampled != 25 || s.Sample.OK != 25 {
		t.Fatalf("sample: %+v", s.Sample)
	}
	_ = enc.Encode(agentMsg{Op: "close", Timeout: 5 * time.Second})
	st := next("status", func(m agentMsg) bool { return m.Counters.Open == 0 })
	if st.Counters.Closed != 50 || st.Counters.Errors() != 0 {
		t.Fatalf("after close: %+v", st.Counters)
	}
	next("closed", nil)
	_ = enc.Encode(agentMsg{Op: "exit"})
	go func() { _, _ = io.Copy(io.Discard, outR) }()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
