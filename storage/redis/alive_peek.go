//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package redis

import "syscall"

// peekAlive reports whether the socket fd has nothing to read and no end
// of file, peeked without blocking.
func peekAlive(fd uintptr) bool {
	var b [1]byte
	n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return n < 0 && (err == syscall.EAGAIN || err == syscall.EWOULDBLOCK)
}
