//go:build !linux

package server

import (
	"errors"
	"net"
)

// bindProbe is only needed with per-loop listeners, which megaws uses on
// Linux alone.
func bindProbe(*net.TCPAddr, bool) (int, int, error) {
	return -1, 0, errors.New("megaws: per-loop listeners are Linux only")
}
