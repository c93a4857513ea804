package scenario

import (
	"context"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/megaws/megaws/codec"
)

func TestFrameScan(t *testing.T) {
	data := func(n int) []byte { return make([]byte, n) }
	var stream []byte
	for _, n := range []int{0, 1, 125, 126, 1000, 70_000} {
		stream = codec.AppendFrame(stream, ws.OpBinary, true, data(n))
	}
	withClose := codec.AppendClose(append([]byte(nil), stream...), ws.StatusPolicyViolation, "write queue full")
	emptyClose := codec.AppendFrame(append([]byte(nil), stream...), ws.OpClose, true, nil)
	for _, tc := range []struct {
		name   string
		stream []byte
		frames int64
		want   string
	}{
		{name: "no close frame", stream: stream, frames: 6, want: "eof"},
		{name: "close 1008", stream: withClose, frames: 7, want: "close 1008"},
		{name: "empty close", stream: emptyClose, frames: 7, want: "close 1005"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Whole, then split at every byte boundary of the tail (the
			// close frame and the header before it), then in small chunks.
			check := func(parts ...[]byte) {
				t.Helper()
				var s frameScan
				for _, p := range parts {
					s.feed(p)
				}
				if got := s.outcome("eof"); got != tc.want || s.frames != tc.frames || s.bad {
					t.Fatalf("split %d: outcome %q, %d frames (bad %v); want %q, %d frames", len(parts[0]), got, s.frames, s.bad, tc.want, tc.frames)
				}
			}
			check(tc.stream)
			for i := max(0, len(tc.stream)-200); i <= len(tc.stream); i++ {
				check(tc.stream[:i], tc.stream[i:])
			}
			for _, chunk := range []int{1, 3, 7, 100} {
				var parts [][]byte
				for b := tc.stream; len(b) > 0; {
					k := min(chunk, len(b))
					parts = append(parts, b[:k])
					b = b[k:]
				}
				check(parts...)
			}
		})
	}
}

func TestParseTCP(t *testing.T) {
	const table = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2710 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:2710 0200007F:A000 04 00010000:00000000 01:00000014 00000000     0        0 0 3 0000000000000000 20 4 0 10 -1
   2: 0200007F:A000 0100007F:2710 01 00000000:00002000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
   3: 0300007F:B000 0100007F:2711 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1
`
	server := netip.MustParseAddrPort("127.0.0.1:10000")
	client := netip.MustParseAddrPort("127.0.0.2:40960")
	v := parseTCP([]byte(table), server)
	if len(v.Server) != 1 || len(v.Client) != 1 {
		t.Fatalf("server %v, client %v", v.Server, v.Client)
	}
	s, c := v.Server[client], v.Client[client]
	if s.State != "FIN_WAIT1" || s.TxQueue != 0x10000 || s.Local != server {
		t.Errorf("server end: %+v", s)
	}
	if c.State != "ESTABLISHED" || c.RxQueue != 0x2000 || c.Remote != server {
		t.Errorf("client end: %+v", c)
	}
}

// TestSlowReadersEndToEnd runs the scenario, tiny, against megaws: once
// with the CI smoke settings (nothing may be lost), once with a 64 KiB write
// queue cap that every slow reader passes, so each must be seen dropped,
// and once with an RSS limit the server is already over.
func TestSlowReadersEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts servers")
	}
	ctx := context.Background()
	lo := Load{Sources: DefaultSources()[:4]}
	start := func(args ...string) *Server {
		t.Helper()
		env, err := NewEnv(".", t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		env.Loops, env.MegawsArgs = 1, args
		targets, _ := Targets([]string{"megaws"})
		if err := env.Build(ctx, targets); err != nil {
			t.Fatal(err)
		}
		srv, err := env.Start(ctx, targets[0], "broadcast")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Stop)
		return srv
	}

	srv := start()
	cfg := SlowReadersConfig{Fast: 4, Slow: 10, Size: 200, Rate: 100, Duration: 500 * time.Millisecond, Drain: 10 * time.Second, MaxRSS: 1 << 30, SlowRcvBuf: 4096, Strict: true}
	r, err := RunSlowReaders(ctx, srv, cfg, lo)
	if err != nil {
		t.Fatal(err)
	}
	if r.Published == 0 || r.Deliveries != r.Published*4 || r.Latency.Count != r.Deliveries || r.Slow.Readers != 10 || r.Slow.Disconnected != 0 ||
		r.ServerRSSPeak <= 0 || r.Publisher.Taken != r.Published || r.Vars == nil || r.Vars.Megaws == nil || r.Vars.Megaws.MessagesIn != uint64(r.Published) {
		t.Fatalf("smoke: %+v", r)
	}
	if srv.WaitConns(0, 5*time.Second) != 0 {
		t.Fatal("connections left open on the server")
	}

	// Each slow reader is sent half as much again as the kernel can buffer
	// for it (the server's largest send buffer, tcp_wmem's maximum, plus
	// the reader's receive buffer) and the 64 KiB queue cap.
	wmem := 4 << 20
	if b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_wmem"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 3 {
			wmem, _ = strconv.Atoi(f[2])
		}
	}
	perReader := float64(wmem+(1<<20)) * 1.5
	const size, rate = 4096, 1000
	d := time.Duration(perReader / (size * rate) * float64(time.Second))
	if d > 5*time.Second {
		t.Skipf("tcp_wmem maximum %d: filling it would take %s", wmem, d)
	}
	srv = start("--max-write-queue=65536")
	cfg = SlowReadersConfig{Fast: 3, Slow: 20, Size: size, Rate: rate, Duration: d, Drain: 10 * time.Second, MaxRSS: 1 << 30, SlowRcvBuf: 4096}
	r, err = RunSlowReaders(ctx, srv, cfg, lo)
	if err != nil {
		t.Fatal(err)
	}
	if r.Slow.Disconnected != 20 || r.Vars.Megaws.QueueDrops != 20 || r.Slow.ServerStates["ESTABLISHED"] != 0 || r.Slow.FirstAt < 0 ||
		r.Vars.Megaws.FirstDropAt < 0 || r.DeliveryRatio != 1 || r.FastLost != 0 {
		t.Fatalf("drops: %+v\nslow %+v\nvars %+v", r, r.Slow, r.Vars.Megaws)
	}

	cfg = SlowReadersConfig{Fast: 2, Slow: 2, Size: 100, Rate: 10, Duration: 5 * time.Second, Drain: time.Second, MaxRSS: 1 << 20}
	r, err = RunSlowReaders(ctx, srv, cfg, lo)
	if err != nil || !strings.Contains(r.StoppedEarly, "--max-rss") || r.Seconds > 2 {
		t.Fatalf("RSS limit: err %v, result %+v", err, r)
	}
	cfg.Strict = true
	if _, err := RunSlowReaders(ctx, srv, cfg, lo); err == nil || !strings.Contains(err.Error(), "stopped early") {
		t.Fatalf("strict RSS limit: err %v", err)
	}
}
