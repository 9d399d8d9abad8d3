//go:build !linux || 386

package http

import (
	"net"
	"syscall"
)

// Elsewhere than on Linux, plain TCP connections are served through
// net.Conn, and idle connections wait in goroutines.

type idlePoller struct{}

type pollState struct{}

func newIdlePoller(*server) *idlePoller    { return nil }
func (*idlePoller) park(*conn, int64) bool { return false }
func (*idlePoller) closeAll()              {}
func (*server) serveRaw(net.Listener) bool { return false }

func deferAccept(string, string, syscall.RawConn) error { return nil }

// Elsewhere the raw system calls are syscall's (never called: fd is -1).
func rawRead(fd int, p []byte) (int, error)  { return sysRead(fd, p) }
func rawWrite(fd int, p []byte) (int, error) { return sysWrite(fd, p) }
func rawClose(fd int)                        { sysClose(fd) }
