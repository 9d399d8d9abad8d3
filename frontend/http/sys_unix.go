//go:build unix

package http

import "syscall"

// The system calls on a socket's descriptor of the connections served
// without net.Conn (Linux), and of the RawConn callbacks.

func sysRead(fd int, p []byte) (int, error)  { return syscall.Read(fd, p) }
func sysWrite(fd int, p []byte) (int, error) { return syscall.Write(fd, p) }
func sysClose(fd int)                        { syscall.Close(fd) }
func sysShutdownWrite(fd int) error          { return syscall.Shutdown(fd, syscall.SHUT_WR) }
