package server_test

// Hostile and unlucky peers over the life of a connection: slowloris
// handshakes, frame bombs, ping floods, slow readers, abrupt disconnects,
// connection churn and a graceful Stop. Each test keeps a healthy connection
// echoing through the attack, and checks that what the attack cost (fds,
// heap, goroutines) is given back.

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

// longTests selects the long variants: go test ./server -run TestChurn -args -long
// (or MEGAWS_LONG=1).
var longTests = flag.Bool("long", false, "run the long variants of the lifecycle tests (100,000-connection churn)")

func isLong() bool { return *longTests || os.Getenv("MEGAWS_LONG") != "" }

// liveHeap returns the bytes of live heap objects after two collections (the
// second empties sync.Pool victim caches).
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func totalAlloc() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

// rss returns this process's resident set size in bytes after returning
// free memory to the OS, or 0 where /proc is missing. The test clients live
// in the same process, so it is logged, not asserted: live heap is.
func rss() uint64 {
	debug.FreeOSMemory()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb uint64
			_, _ = fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb)
			return kb << 10
		}
	}
	return 0
}

// openFDs counts this process's open file descriptors, or -1 where /proc is
// missing.
func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// heapSlack is how far above its baseline the live heap may stay once an
// attack is over: pools, gnet's per-loop buffers that grew, timers. It is far
// below what the attacks hold at their peak.
const heapSlack = 8 << 20

// checkBaseline waits until open fds, the live heap and goroutines are back
// to their baselines (plus a small slack), and fails if they do not come back.
func checkBaseline(t *testing.T, what string, fds int, heap, rssBefore uint64, goroutines int) {
	t.Helper()
	var nowFDs, nowG int
	var nowHeap uint64
	ok := waitFor(30*time.Second, func() bool {
		nowFDs, nowG = openFDs(), runtime.NumGoroutine()
		nowHeap = liveHeap()
		return nowFDs <= fds+4 && nowHeap <= heap+heapSlack && nowG <= goroutines+2
	})
	t.Logf("%s: fds %d -> %d, live heap %.1f -> %.1f MiB, RSS (test clients included) %.1f -> %.1f MiB, goroutines %d -> %d", what,
		fds, nowFDs, float64(heap)/(1<<20), float64(nowHeap)/(1<<20), float64(rssBefore)/(1<<20), float64(rss())/(1<<20), goroutines, nowG)
	if !ok {
		t.Fatalf("%s: resources did not return to baseline", what)
	}
}

// TestMain runs the package's tests and then checks for leaked goroutines:
// once every server is stopped (gnet's event loops end when Stop returns),
// every goroutine started during the tests must have ended, within a grace
// period for connections still being torn down. Goroutines that existed
// before (gnet's shared ants pool) are not counted.
func TestMain(m *testing.M) {
	flag.Parse()
	before := goroutines()
	code := m.Run()
	if code == 0 && !fuzzing() {
		var leaked map[string]string
		waitFor(10*time.Second, func() bool {
			leaked = goroutines()
			for id := range before {
				delete(leaked, id)
			}
			return len(leaked) == 0
		})
		if len(leaked) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: %d goroutines leaked by the tests:\n", len(leaked))
			for _, stack := range leaked {
				fmt.Fprintf(os.Stderr, "%s\n\n", stack)
			}
			code = 1
		}
	}
	os.Exit(code)
}

// fuzzing reports whether this process runs a fuzzing engine (coordinator
// or worker), whose goroutines outlive the fuzz target.
func fuzzing() bool {
	for _, name := range []string{"test.fuzz", "test.fuzzworker"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" && f.Value.String() != "false" {
			return true
		}
	}
	return false
}

// goroutines returns the stack of every goroutine but the caller's, by ID.
func goroutines() map[string]string {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	m := map[string]string{}
	for i, g := range strings.Split(string(buf), "\n\n") {
		id, _, ok := strings.Cut(strings.TrimPrefix(g, "goroutine "), " ")
		if i == 0 || !ok {
			continue // the first one is the caller's
		}
		m[id] = g
	}
	return m
}
