//go:build linux

package loop

import "golang.org/x/sys/unix"

// Backlog returns the bytes sent on c that have not left this host's side
// yet: buffered are queued in c because the socket would not take them,
// unsent sit in the kernel's send queue not yet transmitted (SIOCOUTQNSD),
// which on loopback means the server's receive window is shut: it is not
// reading. Bytes transmitted and awaiting an acknowledgement are not
// counted, so a delayed ACK does not look like a stall. Call it on c's loop
// goroutine.
func (c *Conn) Backlog() (buffered, unsent int) {
	if c.fd < 0 {
		return len(c.wbuf), 0
	}
	n, err := unix.IoctlGetInt(c.fd, unix.SIOCOUTQNSD)
	if err != nil {
		n = 0
	}
	return len(c.wbuf), n
}
