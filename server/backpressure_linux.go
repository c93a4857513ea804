package server

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// pauseRead stops the loop's epoll instance from reporting c readable while
// its outbound buffer drains, so that TCP flow control pushes back on a peer
// that sends faster than it reads. gnet re-arms EPOLLIN by itself once it has
// flushed the buffer (eventloop.write calls Poller.ModRead when the outbound
// buffer is empty, gnet v2.10.0), so reading resumes without a callback.
// It reports whether reading was paused.
func (l *Loop) pauseRead(c *Conn) bool {
	fd := c.gc.Fd()
	if l.epfd == 0 {
		l.epfd = findEpoll(fd)
		if l.epfd < 0 {
			l.s.log.Warn("backpressure disabled: epoll instance of the event loop not found")
		}
	}
	if l.epfd < 0 {
		return false
	}
	err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, fd, &unix.EpollEvent{Fd: int32(fd), Events: unix.EPOLLOUT})
	return err == nil
}

// findEpoll returns the epoll descriptor in which fd is registered, found
// through /proc/self/fdinfo (gnet does not expose its pollers), or -1.
func findEpoll(fd int) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	want := "tfd: " + strconv.Itoa(fd) + " "
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if link, err := os.Readlink("/proc/self/fd/" + e.Name()); err != nil || link != "anon_inode:[eventpoll]" {
			continue
		}
		info, err := os.ReadFile("/proc/self/fdinfo/" + e.Name())
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(info), "\n") {
			if strings.HasPrefix(strings.Join(strings.Fields(line), " ")+" ", want) {
				return n
			}
		}
	}
	return -1
}
