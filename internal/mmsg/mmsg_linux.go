//go:build linux

package mmsg

import (
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Conn batches the datagrams of one UDP socket. It is not safe for
// concurrent use: each socket goroutine has its own.
type Conn struct {
	rc syscall.RawConn

	in     []unix.Mmsghdr
	inIov  []unix.Iovec
	names  []unix.RawSockaddrInet6 // large enough for either family
	out    []unix.Mmsghdr
	outIov []unix.Iovec

	// The system calls run inside closures built once, so that passing
	// them to RawConn.Read and Write allocates nothing; vlen is set before
	// each call, and the result is left in r and errno.
	vlen   int
	r      int
	errno  syscall.Errno
	recvFn func(fd uintptr) bool
	sendFn func(fd uintptr) bool
}

// New returns a Conn that moves up to n datagrams per system call on c.
func New(c *net.UDPConn, n int) (*Conn, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	b := &Conn{
		rc:     rc,
		in:     make([]unix.Mmsghdr, n),
		inIov:  make([]unix.Iovec, n),
		names:  make([]unix.RawSockaddrInet6, n),
		out:    make([]unix.Mmsghdr, n),
		outIov: make([]unix.Iovec, n),
	}
	for i := 0; i < n; i++ {
		h := &b.in[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Iov = &b.inIov[i]
		h.SetIovlen(1)
		b.out[i].Hdr.Iov = &b.outIov[i]
		b.out[i].Hdr.SetIovlen(1)
	}
	b.recvFn = func(fd uintptr) bool { return b.call(fd, unix.SYS_RECVMMSG, &b.in[0]) }
	b.sendFn = func(fd uintptr) bool { return b.call(fd, unix.SYS_SENDMMSG, &b.out[0]) }
	return b, nil
}

// call runs one recvmmsg or sendmmsg on the non-blocking socket. It
// reports false, which makes the runtime wait for the socket to be ready
// and call it again, when the kernel has nothing to give or no room.
//
// recvmmsg is a raw system call, without the scheduler's entersyscall and
// exitsyscall: the socket is non-blocking (every net.UDPConn is), so it
// returns at once, and through Syscall6 the runtime's monitor, waking every
// 20 µs while system calls keep it busy, took the P away from a read that
// outlasted its tick. sendmmsg stays an ordinary system call: made raw as
// well, it left the tracker's thread holding its P through the loopback
// delivery of a whole batch, and with another process sharing the CPU the
// generator's p90 latency went from 0.35 to 2.6-3.7 ms and the rate fell by
// four fifths (docs/performance.md, UDP pass).
func (b *Conn) call(fd, trap uintptr, hdrs *unix.Mmsghdr) bool {
	var r uintptr
	var e syscall.Errno
	if trap == unix.SYS_RECVMMSG {
		r, _, e = unix.RawSyscall6(trap, fd, uintptr(unsafe.Pointer(hdrs)), uintptr(b.vlen), 0, 0, 0)
	} else {
		r, _, e = unix.Syscall6(trap, fd, uintptr(unsafe.Pointer(hdrs)), uintptr(b.vlen), 0, 0, 0)
	}
	if e == unix.EAGAIN || e == unix.EINTR {
		return false
	}
	b.r, b.errno = int(r), e
	return true
}

// Read waits for at least one datagram (or the socket's read deadline)
// and reads as many as are queued, one into each of bufs (each non-empty),
// up to the batch size. Len, Truncated and Source then describe them.
func (b *Conn) Read(bufs [][]byte) (int, error) {
	n := min(len(bufs), len(b.in))
	for i := 0; i < n; i++ {
		b.inIov[i].Base = &bufs[i][0]
		b.inIov[i].SetLen(len(bufs[i]))
		// The kernel writes back each used slot's address length.
		b.in[i].Hdr.Namelen = unix.SizeofSockaddrInet6
	}
	b.vlen = n
	if err := b.rc.Read(b.recvFn); err != nil {
		return 0, err
	}
	if b.errno != 0 {
		return 0, b.errno
	}
	return b.r, nil
}

// Len returns the length of datagram i of the last Read.
func (b *Conn) Len(i int) int { return int(b.in[i].Len) }

// Truncated reports whether datagram i of the last Read was longer than
// its buffer.
func (b *Conn) Truncated(i int) bool { return b.in[i].Hdr.Flags&unix.MSG_TRUNC != 0 }

// Source returns the sender of datagram i of the last Read; it is invalid
// when the source is not an IP address (which a UDP socket never reports).
func (b *Conn) Source(i int) netip.AddrPort { return sockaddrAddrPort(&b.names[i]) }

// sockaddrAddrPort decodes a sockaddr_in or sockaddr_in6 in place. The port
// is in network byte order, the family in the machine's.
func sockaddrAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	pb := (*[2]byte)(unsafe.Pointer(&sa.Port))
	port := uint16(pb[0])<<8 | uint16(pb[1])
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), port)
	}
	return netip.AddrPort{}
}

// Write hands bufs (at most the batch size), each one datagram, to the
// kernel in one call: bufs[k] goes to the source of datagram to[k] of the
// last Read, or, when to is nil, to a connected socket's peer. It returns
// how many datagrams were taken; when err is set, bufs[n] was refused.
func (b *Conn) Write(bufs [][]byte, to []int) (n int, err error) {
	n = min(len(bufs), len(b.out))
	if n == 0 {
		return 0, nil
	}
	for k := 0; k < n; k++ {
		b.outIov[k].Base = unsafe.SliceData(bufs[k])
		b.outIov[k].SetLen(len(bufs[k]))
		h := &b.out[k].Hdr
		if to != nil {
			h.Name = (*byte)(unsafe.Pointer(&b.names[to[k]]))
			h.Namelen = b.in[to[k]].Hdr.Namelen
		} else {
			h.Name, h.Namelen = nil, 0
		}
	}
	b.vlen = n
	if err := b.rc.Write(b.sendFn); err != nil {
		return 0, err
	}
	switch {
	case b.errno != 0:
		return 0, b.errno
	case b.r <= 0:
		return 0, errNothingSent
	}
	return b.r, nil
}

// SetBuffers sizes c's socket buffers to n bytes. As root it goes past
// net.core.rmem_max and wmem_max (SO_RCVBUFFORCE, SO_SNDBUFFORCE);
// otherwise the kernel caps it.
func SetBuffers(c *net.UDPConn, n int) {
	_ = c.SetReadBuffer(n)
	_ = c.SetWriteBuffer(n)
	if rc, err := c.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n)
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, n)
		})
	}
}
