//go:build !linux

package server

// pauseRead is not implemented outside Linux: reading continues and the write
// queue limit alone bounds a slow reader.
func (l *Loop) pauseRead(*Conn) bool { return false }
