// Package clientbench measures the publish paths of the two Redis clients
// broker/redis could use, go-redis v9 and rueidis, against a real local
// redis-server, to choose one. It is its own module so that go-redis stays out
// of megaws's go.mod.
//
//	cd broker/redis/clientbench && go test -bench . -benchmem -count 3
//
// It starts redis-server on a free loopback port (from $REDIS_SERVER, PATH or
// /usr/bin; scripts/setup.sh installs it), or uses $REDIS_ADDR.
package clientbench

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
)

var payload = make([]byte, 64)

const channel = "megaws.room.bench"

func addr(b *testing.B) string {
	if redisAddr == "" {
		b.Fatal("no redis-server (see TestMain)")
	}
	return redisAddr
}

var redisAddr = os.Getenv("REDIS_ADDR")

// TestMain starts redis-server unless $REDIS_ADDR names one.
func TestMain(m *testing.M) {
	if redisAddr != "" {
		os.Exit(m.Run())
	}
	bin := os.Getenv("REDIS_SERVER")
	if bin == "" {
		bin = "/usr/bin/redis-server"
		if p, err := exec.LookPath("redis-server"); err == nil {
			bin = p
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	dir, _ := os.MkdirTemp("", "clientbench")
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no", "--dir", dir)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "start %s (run scripts/setup.sh): %v\n", bin, err)
		os.Exit(1)
	}
	redisAddr = fmt.Sprintf("127.0.0.1:%d", port)
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", redisAddr); err == nil {
			_ = c.Close()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	code := m.Run()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// One PUBLISH per call, waiting for its reply (the naive path).
func BenchmarkGoRedisPublishSync(b *testing.B) {
	c := goredis.NewClient(&goredis.Options{Addr: addr(b), Protocol: 2})
	defer c.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Publish(ctx, channel, payload).Err(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRueidisPublishSync(b *testing.B) {
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr(b)}, DisableCache: true})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Do(ctx, c.B().Publish().Channel(channel).Message(rueidis.BinaryString(payload)).Build()).Error(); err != nil {
			b.Fatal(err)
		}
	}
}

// Batches from one writer goroutine, pipelined (what a broker's writer does
// with its queue).
func benchGoRedisBatch(b *testing.B, batch int) {
	c := goredis.NewClient(&goredis.Options{Addr: addr(b), Protocol: 2})
	defer c.Close()
	ctx := context.Background()
	b.ReportAllocs()
	pipe := c.Pipeline()
	n := 0
	for b.Loop() {
		pipe.Publish(ctx, channel, payload)
		n++
		if n == batch {
			if _, err := pipe.Exec(ctx); err != nil {
				b.Fatal(err)
			}
			n = 0
		}
	}
	if n > 0 {
		_, _ = pipe.Exec(ctx)
	}
}

func benchRueidisBatch(b *testing.B, batch int) {
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr(b)}, DisableCache: true})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	b.ReportAllocs()
	cmds := make(rueidis.Commands, 0, batch)
	for b.Loop() {
		cmds = append(cmds, c.B().Publish().Channel(channel).Message(rueidis.BinaryString(payload)).Build())
		if len(cmds) == batch {
			for _, r := range c.DoMulti(ctx, cmds...) {
				if r.Error() != nil {
					b.Fatal(r.Error())
				}
			}
			cmds = cmds[:0]
		}
	}
	if len(cmds) > 0 {
		c.DoMulti(ctx, cmds...)
	}
}

func BenchmarkGoRedisPipeline64(b *testing.B)  { benchGoRedisBatch(b, 64) }
func BenchmarkRueidisDoMulti64(b *testing.B)   { benchRueidisBatch(b, 64) }
func BenchmarkGoRedisPipeline256(b *testing.B) { benchGoRedisBatch(b, 256) }
func BenchmarkRueidisDoMulti256(b *testing.B)  { benchRueidisBatch(b, 256) }

// Concurrent callers, each waiting for its own reply: rueidis pipelines them
// automatically on one connection; go-redis takes a pooled connection each.
func BenchmarkGoRedisPublishParallel(b *testing.B) {
	c := goredis.NewClient(&goredis.Options{Addr: addr(b), Protocol: 2})
	defer c.Close()
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = c.Publish(ctx, channel, payload).Err()
		}
	})
}

func BenchmarkRueidisPublishParallel(b *testing.B) {
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr(b)}, DisableCache: true})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_ = c.Do(ctx, c.B().Publish().Channel(channel).Message(rueidis.BinaryString(payload)).Build()).Error()
		}
	})
}
