package main

import (
	"io"
	"runtime"
	"strconv"
	"testing"
)

// TestServeLoopsWithWorkers checks the default of --loops: the CPUs for one
// process, divided among --workers processes, and what the command line
// says when it says it.
func TestServeLoopsWithWorkers(t *testing.T) {
	cpus := runtime.NumCPU()
	for _, tc := range []struct {
		args []string
		want int
	}{
		{args: nil, want: cpus},
		{args: []string{"--workers", "1"}, want: cpus},
		{args: []string{"--workers", strconv.Itoa(cpus)}, want: 1},
		{args: []string{"--workers", strconv.Itoa(4 * cpus)}, want: 1},
		{args: []string{"--workers", "2", "--loops", "3"}, want: 3},
		{args: []string{"--loops", "5"}, want: 5},
	} {
		f, err := parseServe(tc.args, io.Discard)
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if f.loops != tc.want {
			t.Errorf("%q: %d loops, want %d", tc.args, f.loops, tc.want)
		}
	}
	if cpus >= 4 {
		f, err := parseServe([]string{"--workers", "2"}, io.Discard)
		if err != nil || f.loops != cpus/2 {
			t.Errorf("--workers 2 on %d CPUs: %d loops (%v), want %d", cpus, f.loops, err, cpus/2)
		}
	}
}
