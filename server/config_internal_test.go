package server

import "testing"

// TestMemoryReleaseOffByDefault: a library must not force its host's garbage
// collections unless asked to (megaws serve asks, with --memory-release).
func TestMemoryReleaseOffByDefault(t *testing.T) {
	s := New(BaseHandler{}, Config{})
	if d := s.cfg.MemoryReleaseInterval; d != 0 {
		t.Fatalf("default MemoryReleaseInterval %v, want 0 (off)", d)
	}
}
