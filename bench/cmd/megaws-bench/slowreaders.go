package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/megaws/megaws/bench/scenario"
)

// registerSlowReaders adds the slowreaders flags, defaulting to
// scenario.DefaultSlowReadersConfig.
func registerSlowReaders(fs *flag.FlagSet, cfg *scenario.SlowReadersConfig) {
	*cfg = scenario.DefaultSlowReadersConfig()
	fs.Var(countFlag{&cfg.Fast}, "fast", "fast readers (read and verify everything), the publisher included")
	fs.Var(countFlag{&cfg.Slow}, "slow", "slow readers (handshake, then never read)")
	fs.Var(sizeFlag{&cfg.Size}, "size", "payload size in bytes (1k, 16KiB)")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "messages published per second")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "publishing time")
	fs.DurationVar(&cfg.Drain, "drain", cfg.Drain, "after publishing, time allowed for the fast readers to receive everything")
	fs.Var(byteFlag{&cfg.MaxRSS}, "max-rss", "stop early when the server's RSS passes this (4GiB, 512MiB)")
	fs.Var(sizeFlag{&cfg.SlowRcvBuf}, "slow-rcvbuf", "SO_RCVBUF of the slow readers (the kernel doubles it); 0: kernel default and autotuning")
}

// slowReadersQuick is the CI smoke variant: a few kilobytes per slow
// reader, which every server's socket buffers absorb, so only correctness is
// asserted.
func slowReadersQuick() scenario.SlowReadersConfig {
	return scenario.SlowReadersConfig{Fast: 5, Slow: 20, Size: 256, Rate: 50, Duration: time.Second, Drain: 10 * time.Second, MaxRSS: 4 << 30, SlowRcvBuf: 4096, Strict: true}
}

// sizeFlag is a flag.Value for byte counts that fit an int (64, 1k, 16KiB).
type sizeFlag struct{ n *int }

func (f sizeFlag) String() string {
	if f.n == nil {
		return "0"
	}
	return scenarioSize(int64(*f.n))
}

func (f sizeFlag) Set(s string) error {
	n, err := parseSize(s)
	if err == nil {
		*f.n = n
	}
	return err
}

// byteFlag is a flag.Value for large byte counts (4GiB, 512MiB, 1g).
type byteFlag struct{ n *int64 }

func (f byteFlag) String() string {
	if f.n == nil {
		return "0"
	}
	return scenarioSize(*f.n)
}

func (f byteFlag) Set(s string) error {
	n, err := parseBytes(s)
	if err == nil {
		*f.n = n
	}
	return err
}

// parseBytes reads 4GiB, 4g, 512MiB, 512m, 64k, 1000000 (binary multipliers).
func parseBytes(s string) (int64, error) {
	l := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), "_", ""))
	mult := int64(1)
	for _, suf := range []struct {
		s string
		m int64
	}{{"gib", 1 << 30}, {"mib", 1 << 20}, {"kib", 1 << 10}, {"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}} {
		if strings.HasSuffix(l, suf.s) {
			l, mult = strings.TrimSuffix(l, suf.s), suf.m
			break
		}
	}
	n, err := strconv.ParseInt(l, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

// scenarioSize formats a byte count the way parseBytes reads it.
func scenarioSize(n int64) string {
	for _, u := range []struct {
		s string
		m int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.m && n%u.m == 0 {
			return strconv.FormatInt(n/u.m, 10) + u.s
		}
	}
	return strconv.FormatInt(n, 10)
}
