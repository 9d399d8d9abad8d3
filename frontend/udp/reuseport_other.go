//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package udp

import (
	"errors"
	"syscall"
)

// reusePort fails where SO_REUSEPORT is not available: set udp.sockets to 1.
func reusePort(network, address string, c syscall.RawConn) error {
	return errors.New("udp: SO_REUSEPORT is not supported on this system: set udp.sockets to 1")
}

// msgTrunc is unknown here: oversized datagrams arrive cut and fail to parse.
const msgTrunc = 0
