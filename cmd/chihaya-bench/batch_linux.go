//go:build linux

package main

import (
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchConn sends and receives many datagrams per system call
// (sendmmsg/recvmmsg) on a connected UDP socket. It calls the system calls
// itself rather than through golang.org/x/net/ipv4, whose ReadBatch
// allocates a source address per datagram: on a connected socket the
// address is known, and the generator must not allocate per request.
type batchConn struct {
	conn *net.UDPConn
	rc   syscall.RawConn

	hdrs []unix.Mmsghdr
	iovs []unix.Iovec

	// set up before, and read after, each call of the callbacks below,
	// which are built once so that passing them does not allocate.
	vlen   int
	n      int
	errno  syscall.Errno
	sendFn func(fd uintptr) bool
	recvFn func(fd uintptr) bool
}

func newBatchConn(conn *net.UDPConn, max int) (*batchConn, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	b := &batchConn{conn: conn, rc: rc, hdrs: make([]unix.Mmsghdr, max), iovs: make([]unix.Iovec, max)}
	b.sendFn = func(fd uintptr) bool { return b.call(fd, unix.SYS_SENDMMSG) }
	b.recvFn = func(fd uintptr) bool { return b.call(fd, unix.SYS_RECVMMSG) }
	return b, nil
}

// call runs one sendmmsg or recvmmsg; it reports false (wait, then call
// again) when the socket is not ready.
func (b *batchConn) call(fd uintptr, trap uintptr) bool {
	r, _, e := unix.Syscall6(trap, fd, uintptr(unsafe.Pointer(&b.hdrs[0])), uintptr(b.vlen), 0, 0, 0)
	if e == unix.EAGAIN {
		return false
	}
	b.n, b.errno = int(r), e
	return true
}

func (b *batchConn) prepare(bufs [][]byte) {
	for i, buf := range bufs {
		b.iovs[i].Base = &buf[0]
		b.iovs[i].SetLen(len(buf))
		h := &b.hdrs[i].Hdr
		*h = unix.Msghdr{Iov: &b.iovs[i]}
		h.SetIovlen(1)
		b.hdrs[i].Len = 0
	}
	b.vlen = len(bufs)
}

// send sends every buffer (each one datagram) and returns how many were
// sent before an error.
func (b *batchConn) send(bufs [][]byte) (int, error) {
	sent := 0
	for sent < len(bufs) {
		b.prepare(bufs[sent:])
		if err := b.rc.Write(b.sendFn); err != nil {
			return sent, err
		}
		if b.errno != 0 {
			return sent, b.errno
		}
		sent += b.n
	}
	return sent, nil
}

// recv waits for at least one datagram (or the read deadline) and reads as
// many as are ready, up to len(bufs); lens receives their lengths.
func (b *batchConn) recv(bufs [][]byte, lens []int) (int, error) {
	b.prepare(bufs)
	if err := b.rc.Read(b.recvFn); err != nil {
		return 0, err
	}
	if b.errno != 0 {
		return 0, b.errno
	}
	for i := 0; i < b.n; i++ {
		lens[i] = int(b.hdrs[i].Len)
	}
	return b.n, nil
}

// setBuffers sizes the socket's buffers so that a full window of replies
// is not dropped by the generator's own socket. As root it goes past
// net.core.rmem_max (SO_RCVBUFFORCE); otherwise the kernel caps it.
func setBuffers(conn *net.UDPConn, n int) {
	_ = conn.SetReadBuffer(n)
	_ = conn.SetWriteBuffer(n)
	if rc, err := conn.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n)
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, n)
		})
	}
}
