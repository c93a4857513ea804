package main

import (
	"runtime/debug"
	"testing"
)

// TestServeGC checks that serve sets its GC target unless GOGC is set.
func TestServeGC(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)

	if !setServeGC(func(string) string { return "" }) {
		t.Fatal("without GOGC: not set")
	}
	if got := debug.SetGCPercent(100); got != serveGCPercent {
		t.Fatalf("without GOGC: GC percent %d, want %d", got, serveGCPercent)
	}
	env := map[string]string{"GOGC": "200"}
	if setServeGC(func(k string) string { return env[k] }) {
		t.Fatal("with GOGC=200: set anyway")
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("with GOGC=200: GC percent changed to %d", got)
	}
}
