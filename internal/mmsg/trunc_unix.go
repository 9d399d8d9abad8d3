//go:build unix && !linux

package mmsg

import "golang.org/x/sys/unix"

// msgTrunc is MSG_TRUNC: the datagram was longer than the buffer.
const msgTrunc = unix.MSG_TRUNC
