package main_test

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestWorkers runs megaws serve --workers 3: three processes share the port
// with SO_REUSEPORT, connections spread over them and every one echoes;
// SIGTERM to the parent (at cleanup) stops them all, which startMegaws checks.
func TestWorkers(t *testing.T) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	got := startMegaws(t, "--addr", addr, "--workers", "3", "--loops", "1", "--log-level", "warn")
	if got != addr {
		t.Fatalf("listening on %s, want %s", got, addr)
	}
	conns := dialIdle(t, addr, 90)
	defer closeAll(conns)
	for i, c := range conns {
		echoOnce(t, c, []byte("worker echo "+strconv.Itoa(i)))
	}
	workers := workerProcs(addr)
	if len(workers) != 3 {
		t.Fatalf("found %d worker processes for %s, want 3", len(workers), addr)
	}
	serving := 0
	for _, pid := range workers {
		// Each worker holds its listener plus the connections it accepted.
		if tcpSockets(pid) > 1 {
			serving++
		}
	}
	if serving < 2 {
		t.Fatalf("90 connections landed on %d of 3 workers; SO_REUSEPORT should spread them", serving)
	}
	t.Logf("workers %v, %d of them serving connections", workers, serving)
}

// workerProcs returns the PIDs of megaws worker processes serving addr.
func workerProcs(addr string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if contains(args, "--worker-index") && contains(args, addr) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func tcpSockets(pid int) int {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd/"
	ents, _ := os.ReadDir(dir)
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink(dir + e.Name()); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
