package server

import (
	"math"
	"runtime/debug"
)

// defaultQueuedBytes is the default of Config.MaxQueuedBytes: an eighth of
// the machine's memory, or a quarter of the Go memory limit if one is set,
// between 64 MiB and 1 GiB.
func defaultQueuedBytes() int {
	budget := int64(1 << 30)
	if ram := totalRAM(); ram > 0 {
		budget = min(budget, ram/8)
	}
	if lim := debug.SetMemoryLimit(-1); lim != math.MaxInt64 {
		budget = min(budget, lim/4)
	}
	return int(max(budget, 64<<20))
}
