package server

import (
	"sync"
	"sync/atomic"
)

// Request paths are interned: a connection keeps a one-byte index into its
// server's table instead of a string of its own, which keeps Conn in the
// 96-byte size class (an idle connection's cost is mostly gnet's and this
// struct). Servers see a handful of distinct paths ("/", "/ws", "/game");
// once the table is full, or for a long path, the connection keeps its
// path in its rarely-used state instead (connExt.path).
const (
	maxInternedPaths   = 255 // index 0 means "not interned"
	maxInternedPathLen = 128
)

// pathTable is a server's interned request paths. Handshakes (on any loop)
// add to it under mu; Conn.Path reads it from any goroutine without a lock.
type pathTable struct {
	mu    sync.Mutex
	index map[string]uint8
	// list is the paths by index (list[0] is unused); it is replaced, never
	// modified, when a path is added.
	list atomic.Pointer[[]string]
}

// intern returns the index of p, adding it if there is room, or 0 when p
// is not interned.
func (t *pathTable) intern(p []byte) uint8 {
	if len(p) > maxInternedPathLen {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if i, ok := t.index[string(p)]; ok {
		return i
	}
	var old []string
	if l := t.list.Load(); l != nil {
		old = *l
	} else {
		old = []string{""}
	}
	if len(old) > maxInternedPaths {
		return 0
	}
	s := string(p)
	list := append(old[:len(old):len(old)], s)
	i := uint8(len(list) - 1)
	if t.index == nil {
		t.index = make(map[string]uint8)
	}
	t.index[s] = i
	t.list.Store(&list)
	return i
}

// get returns the path of index i (non-zero, from intern).
func (t *pathTable) get(i uint8) string { return (*t.list.Load())[i] }

// setPath records c's request path. Loop only, during the handshake,
// before OnOpen makes c visible to other goroutines.
func (c *Conn) setPath(p []byte) {
	if len(p) == 0 {
		return
	}
	if c.pathID = c.l.s.paths.intern(p); c.pathID == 0 {
		s := string(p)
		c.extState().path = &s
		c.opts |= optPath
	}
}
