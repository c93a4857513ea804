package scenario

import (
	"bytes"
	"context"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseStopLine(t *testing.T) {
	l, err := ParseStopLine(`time=2026-11-22T10:00:00.250Z level=INFO msg=stopped conns=17000 close_handshakes_answered=16990 close_timeouts=10 seconds=2.531`)
	if err != nil {
		t.Fatal(err)
	}
	if l != (StopLine{Conns: 17000, Answered: 16990, Timeouts: 10, Seconds: 2.531, At: time.Date(2026, 11, 22, 10, 0, 0, 250e6, time.UTC)}) {
		t.Fatalf("got %+v", l)
	}
	// Quoted values elsewhere on the line do not confuse the parser.
	l, err = ParseStopLine(`time=x level=INFO msg=stopped note="a b=c \"d\"" conns=3 close_handshakes_answered=3 close_timeouts=0 seconds=0.01`)
	if err != nil || l.Conns != 3 || l.Answered != 3 || l.Seconds != 0.01 {
		t.Fatalf("quoted: %+v, %v", l, err)
	}
	for _, bad := range []string{
		`time=x level=INFO msg=stopping signal=terminated conns=5`,
		`time=x level=INFO msg=stopped conns=5 close_handshakes_answered=x close_timeouts=0 seconds=1`,
		`time=x level=INFO msg=stopped conns=5 close_handshakes_answered=5 close_timeouts=0`,
	} {
		if _, err := ParseStopLine(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func i64(v int64) *int64 { return &v }

func megawsVars(pings, pongs, answered, timeouts, conns int64) *rawVars {
	r := &rawVars{Connections: i64(conns)}
	r.Megaws = &struct {
		PingsSent      *int64 `json:"PingsSent"`
		PongsIn        *int64 `json:"PongsIn"`
		ClosesAnswered *int64 `json:"ClosesAnswered"`
		CloseTimeouts  *int64 `json:"CloseTimeouts"`
	}{i64(pings), i64(pongs), i64(answered), i64(timeouts)}
	return r
}

func TestKeepaliveOf(t *testing.T) {
	v0 := []*rawVars{megawsVars(100, 90, 0, 0, 50), megawsVars(10, 10, 0, 0, 50), nil}
	v1 := []*rawVars{megawsVars(300, 280, 0, 0, 50), megawsVars(210, 200, 0, 0, 50), megawsVars(1, 1, 0, 0, 1)}
	k := keepaliveOf(v0, v1, 385, 100, 2*time.Millisecond, 4*time.Millisecond)
	if k.Processes != 2 || k.PingsSent != 400 || k.PongsReceived != 380 || k.PingsPerConn != 4 || k.PingsSentTotal != 510 || k.PongsReceivedTotal != 480 {
		t.Fatalf("keepalive %+v", k)
	}
	if k.ServerCPUPerPing != 5 || k.ClientCPUPerPong != 4000.0/385 {
		t.Fatalf("per ping: server %v, client %v", k.ServerCPUPerPing, k.ClientCPUPerPong)
	}
	if keepaliveOf([]*rawVars{{}}, []*rawVars{{}}, 0, 10, 0, 0) != nil {
		t.Fatal("keepalive figures from a server that publishes none")
	}
	// Pongs still on their way at the end of the hold; a process that no
	// longer answers counts as it stood.
	if n := missingPongs(v1, v1); n != 20+10 {
		t.Fatalf("missing at the end: %d", n)
	}
	later := []*rawVars{megawsVars(320, 300, 0, 0, 50), nil, megawsVars(2, 2, 0, 0, 1)}
	if n := missingPongs(v1, later); n != 10 {
		t.Fatalf("missing later: %d", n)
	}
}

func TestStopOutcome(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	// A line logged secs after t0 (its stop took as long: the signal is
	// forwarded at once).
	line := func(conns, answered, timeouts int64, secs string) string {
		d, _ := time.ParseDuration(secs + "s")
		return "time=" + t0.Add(d).Format(time.RFC3339Nano) + " level=INFO msg=stopped conns=" + itoa(conns) + " close_handshakes_answered=" + itoa(answered) + " close_timeouts=" + itoa(timeouts) + " seconds=" + secs
	}
	base := []*rawVars{megawsVars(0, 0, 5, 0, 100), megawsVars(0, 0, 0, 0, 100)}
	w := newStopWatch(base)
	w.update([]*rawVars{megawsVars(0, 0, 55, 0, 50), megawsVars(0, 0, 40, 0, 60)}, true)
	w.update([]*rawVars{megawsVars(0, 0, 95, 0, 10), nil}, false)

	// Every process logged its stop, all within the mark.
	td := &Teardown{Conns: 200, Within: 30 * time.Second, Seconds: 3}
	stopOutcome(td, t0, []string{line(100, 100, 0, "2.5"), line(100, 99, 1, "2.9")}, w, 2)
	if td.CloseHandshakesCompleted != 199 || td.WithinCount != 199 || td.CloseTimeouts != 1 || td.Source != "server log" || td.SlowestStop != 2.9 {
		t.Fatalf("in time: %+v", td)
	}
	// One process took longer than the mark: the counters read before it
	// bound the count within it.
	td = &Teardown{Conns: 200, Within: 30 * time.Second, Seconds: 41}
	stopOutcome(td, t0, []string{line(100, 100, 0, "12"), line(100, 100, 0, "40")}, w, 2)
	if td.CloseHandshakesCompleted != 200 || td.WithinCount != 50+40 {
		t.Fatalf("late: %+v", td)
	}
	// A stop that took 29.5 s of its own but ended 30.5 s after t0 (the
	// signal reached that process a second late) is not within the mark.
	td = &Teardown{Conns: 200, Within: 30 * time.Second, Seconds: 31}
	late := strings.Replace(line(100, 100, 0, "30.5"), "seconds=30.5", "seconds=29.5", 1)
	stopOutcome(td, t0, []string{line(100, 100, 0, "12"), late}, w, 2)
	if td.CloseHandshakesCompleted != 200 || td.WithinCount != 90 {
		t.Fatalf("signal late: %+v", td)
	}
	// Lines without a time: their own lengths.
	td = &Teardown{Conns: 200, Within: 30 * time.Second, Seconds: 31}
	stopOutcome(td, t0, []string{"level=INFO msg=stopped conns=100 close_handshakes_answered=100 close_timeouts=0 seconds=29.5", "msg=stopped conns=100 close_handshakes_answered=100 close_timeouts=0 seconds=3"}, w, 2)
	if td.WithinCount != 200 {
		t.Fatalf("no time field: %+v", td)
	}
	// A line missing: the counters as last read.
	td = &Teardown{Conns: 200, Within: 30 * time.Second, Seconds: 41}
	stopOutcome(td, t0, []string{line(100, 100, 0, "12")}, w, 2)
	if td.Source != "server vars" || td.CloseHandshakesCompleted != 90+40 || td.WithinCount != 90 {
		t.Fatalf("from vars: %+v", td)
	}
	// Nothing from the server: the clients' count.
	td = &Teardown{Conns: 200, Within: 30 * time.Second, Seconds: 5, ClientAnswered: 180}
	stopOutcome(td, t0, nil, nil, 1)
	if td.Source != "client" || td.CloseHandshakesCompleted != 180 || td.WithinCount != 180 {
		t.Fatalf("from the clients: %+v", td)
	}
	if f := (&Teardown{Conns: 200, WithinCount: 198}).WithinFraction(); f != 0.99 {
		t.Fatalf("fraction %v", f)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

var heapSink [][]byte

// TestHeapProfile parses this process's own heap profile in the format
// /debug/pprof/heap?debug=1 serves and finds an allocation made here.
func TestHeapProfile(t *testing.T) {
	old := runtime.MemProfileRate
	runtime.MemProfileRate = 512
	defer func() { runtime.MemProfileRate = old }()
	profile := func() *heapProfile {
		t.Helper()
		runtime.GC()
		var b bytes.Buffer
		if err := pprof.Lookup("heap").WriteTo(&b, 1); err != nil {
			t.Fatal(err)
		}
		p, err := parseHeapProfile(b.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	base := profile()
	for range 2000 {
		heapSink = append(heapSink, make([]byte, 600))
	}
	runtime.GC() // the profile shows allocations as of the last GC
	hold := profile()
	if hold.rate != 512 || len(hold.records) == 0 {
		t.Fatalf("rate %d, %d records", hold.rate, len(hold.records))
	}
	hb := newHeapBreakdown([]*heapProfile{base}, []*heapProfile{hold}, 2000)
	i := slices.IndexFunc(hb.Top, func(f HeapFunc) bool { return strings.HasSuffix(f.Function, ".TestHeapProfile") })
	if i < 0 {
		t.Fatalf("no TestHeapProfile among %+v", hb.Top)
	}
	// 2,000 × 640 B (600 B rounded up to a size class), within sampling error.
	if got := hb.Top[i].PerConn; got < 450 || got > 850 {
		t.Fatalf("TestHeapProfile: %.0f B per conn, want ~640", got)
	}
	if hb.PerConn <= 0 || len(hb.Sites) == 0 || hb.Samples == 0 {
		t.Fatalf("breakdown %+v", hb)
	}
	if HeapSiteOf([]string{"runtime.mallocgc", "runtime.newobject", "github.com/panjf2000/gnet/v2.newStreamConn"}) != "gnet conn" ||
		HeapSiteOf([]string{"runtime.mapassign_fast64", "github.com/megaws/megaws/server.(*Server).onOpen"}) != "megaws Conn" ||
		HeapSiteOf([]string{"main.f"}) != "others" {
		t.Fatal("HeapSiteOf")
	}
	heapSink = nil
}

// TestIdleSIGTERM runs an idle scenario against two megaws worker
// processes with 1 s keepalive pings, held for a few ping rounds, ended
// by SIGTERM: every ping must be counted and answered, every connection
// must complete the server's close handshake, and the figures of the
// report must be there.
func TestIdleSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts servers")
	}
	env, err := NewEnv(".", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	env.Loops, env.GOMAXPROCS, env.Workers = 1, 1, 2
	env.LogLevel, env.MemProfileRate = "info", 4096
	env.MegawsArgs = []string{"--ping-interval=1s", "--stop-timeout=20s"}
	targets, err := Targets([]string{"megaws"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := env.Build(ctx, targets); err != nil {
		t.Fatal(err)
	}
	srv, err := env.Start(ctx, targets[0], "echo")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	const n = 400
	cfg := IdleConfig{
		Conns: n, Hold: 3500 * time.Millisecond, Settle: 200 * time.Millisecond, Sample: 0.1,
		Teardown: TeardownSIGTERM, SampleEvery: 250 * time.Millisecond, HeapProfile: true,
		MinCloseHandshakes: 0.99, MinPingRounds: 1,
	}
	r, err := RunIdle(ctx, srv, cfg, IdleOptions{Load: Load{Sources: DefaultSources()[:4]}})
	if err != nil {
		t.Fatalf("%v\nserver: %s", err, srv.Stderr())
	}
	t.Logf("hold %v: server %.3f cores, keepalive %+v", r.Hold, r.HoldServerCPUCores, *r.Keepalive)
	t.Logf("teardown %+v", *r.Teardown)
	k := r.Keepalive
	if r.Hold < cfg.Hold || k == nil || k.Processes != 2 || k.PingsSent < n || k.PongsReceived < n || k.Unanswered != 0 || k.ClientPongsSent < n || k.PingsPerConn < 1 {
		t.Fatalf("keepalive: hold %v, %+v", r.Hold, k)
	}
	td := r.Teardown
	if td.Mode != TeardownSIGTERM || td.Conns != n || td.ServerConns != n || td.CloseHandshakesCompleted != n || td.WithinCount != n ||
		td.ClientAnswered != n || td.ServerExit != 0 || td.Source != "server log" || len(td.ServerLog) != 2 || td.Seconds <= 0 || td.Unclean != 0 {
		t.Fatalf("teardown: %+v", td)
	}
	if r.Failures != 0 || r.Sample == nil || r.Sample.OK != n/10 || r.Counters.Open != 0 {
		t.Fatalf("failures %d, sample %+v, counters %+v", r.Failures, r.Sample, r.Counters)
	}
	if r.Fixed == nil || r.Fixed.Processes != 2 || r.Fixed.PSS <= 0 || r.Fixed.Parent == nil || r.AfterHold.ServerMem.PSS <= r.Base.ServerMem.PSS {
		t.Fatalf("memory: fixed %+v, base %+v, after hold %+v", r.Fixed, r.Base.ServerMem, r.AfterHold.ServerMem)
	}
	if h := r.Heap; h == nil || h.Processes != 2 || h.Conns != n || h.SampleRate != 4096 || len(h.Sites) == 0 || h.Error != "" {
		t.Fatalf("heap: %+v", h)
	}
	var names []string
	for _, ph := range r.Phases {
		names = append(names, ph.Name)
	}
	if !slices.Equal(names, []string{PhaseRamp, PhaseHold, PhaseSample, PhaseTeardown, PhaseServerExit}) {
		t.Fatalf("phases %q", names)
	}
	peak := slices.MaxFunc(r.Resources, func(a, b ResourceSample) int { return int(a.Conns - b.Conns) })
	if len(r.Resources) < 10 || peak.Conns != n || peak.ServerPSS <= 0 || peak.ServerProcesses != 3 {
		t.Fatalf("%d samples, peak %+v", len(r.Resources), peak)
	}
	if last := r.Resources[len(r.Resources)-1]; last.Conns != 0 || last.ServerProcesses != 0 {
		t.Fatalf("last sample %+v", last)
	}
}
