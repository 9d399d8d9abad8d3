//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package udp

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// reusePort sets SO_REUSEPORT before bind, so that several sockets share
// one address and the kernel spreads clients over them.
func reusePort(network, address string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("udp: set SO_REUSEPORT on %s: %w", address, serr)
	}
	return nil
}

// msgTrunc is MSG_TRUNC: the datagram was longer than the buffer.
const msgTrunc = unix.MSG_TRUNC
