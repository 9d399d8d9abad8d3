//go:build linux

package udp

import (
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchIO moves datagrams in batches with recvmmsg and sendmmsg, called
// directly rather than through golang.org/x/net's ReadBatch and WriteBatch,
// which allocate a net.IP and a *net.UDPAddr for every datagram read. Here
// every structure the kernel reads or fills is allocated once per socket:
// the message headers, their iovecs, the read buffers and one raw socket
// address per slot, which is decoded in place into a netip.AddrPort and
// handed back to the kernel, untouched, as the reply's destination (so a
// link-local client's scope survives the round trip).
//
// A batchIO belongs to one socket goroutine and is not safe for concurrent
// use.
type batchIO struct {
	rc syscall.RawConn

	in    []unix.Mmsghdr
	inIov []unix.Iovec
	names []unix.RawSockaddrInet6 // large enough for either family
	bufs  [][]byte
	nin   int // datagrams read by the last read

	out     []unix.Mmsghdr
	outIov  []unix.Iovec
	replies [][]byte // one reply buffer per out slot
	nout    int      // replies queued
	sent    int      // replies handed to the kernel or skipped

	// The system calls run inside closures built once, so that passing
	// them to RawConn.Read and Write allocates nothing; they leave their
	// result here.
	r      int
	errno  syscall.Errno
	recvFn func(fd uintptr) bool
	sendFn func(fd uintptr) bool
}

func newBatchIO(c *net.UDPConn, n, replyCap int) (*batchIO, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	b := &batchIO{
		rc:      rc,
		in:      make([]unix.Mmsghdr, n),
		inIov:   make([]unix.Iovec, n),
		names:   make([]unix.RawSockaddrInet6, n),
		bufs:    make([][]byte, n),
		out:     make([]unix.Mmsghdr, n),
		outIov:  make([]unix.Iovec, n),
		replies: make([][]byte, n),
	}
	for i := 0; i < n; i++ {
		b.bufs[i] = make([]byte, maxDatagram)
		b.inIov[i].Base = &b.bufs[i][0]
		b.inIov[i].SetLen(maxDatagram)
		h := &b.in[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Namelen = unix.SizeofSockaddrInet6
		h.Iov = &b.inIov[i]
		h.SetIovlen(1)

		b.replies[i] = make([]byte, 0, replyCap)
		b.out[i].Hdr.Iov = &b.outIov[i]
		b.out[i].Hdr.SetIovlen(1)
	}
	b.nin = n
	b.recvFn = func(fd uintptr) bool {
		return b.call(fd, unix.SYS_RECVMMSG, &b.in[0], len(b.in))
	}
	b.sendFn = func(fd uintptr) bool {
		return b.call(fd, unix.SYS_SENDMMSG, &b.out[b.sent], b.nout-b.sent)
	}
	return b, nil
}

// call runs one recvmmsg or sendmmsg on the non-blocking socket. It
// reports false, which makes the runtime wait for the socket to be ready
// and call it again, when the kernel has nothing to give or no room.
func (b *batchIO) call(fd, trap uintptr, hdrs *unix.Mmsghdr, n int) bool {
	r, _, e := unix.Syscall6(trap, fd, uintptr(unsafe.Pointer(hdrs)), uintptr(n), 0, 0, 0)
	if e == unix.EAGAIN || e == unix.EINTR {
		return false
	}
	b.r, b.errno = int(r), e
	return true
}

// read waits for at least one datagram and reads as many as are queued, up
// to the batch size. It also forgets the replies of the previous batch.
func (b *batchIO) read() (int, error) {
	// The kernel writes back each used slot's address length.
	for i := 0; i < b.nin; i++ {
		b.in[i].Hdr.Namelen = unix.SizeofSockaddrInet6
	}
	b.nin, b.nout, b.sent = 0, 0, 0
	if err := b.rc.Read(b.recvFn); err != nil {
		return 0, err
	}
	if b.errno != 0 {
		return 0, b.errno
	}
	b.nin = b.r
	return b.nin, nil
}

// packet returns datagram i of the last read and its source. truncated is
// set when it was longer than the read buffer; src is invalid when the
// source is not an IP address (which a UDP socket never reports).
func (b *batchIO) packet(i int) (p []byte, src netip.AddrPort, truncated bool) {
	m := &b.in[i]
	if m.Hdr.Flags&unix.MSG_TRUNC != 0 {
		return nil, netip.AddrPort{}, true
	}
	return b.bufs[i][:m.Len], sockaddrAddrPort(&b.names[i]), false
}

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

// replyBuf returns the empty buffer the next queued reply is appended to.
func (b *batchIO) replyBuf() []byte { return b.replies[b.nout][:0] }

// queue adds reply, built on replyBuf, to the outgoing batch, addressed to
// the source of datagram i.
func (b *batchIO) queue(i int, reply []byte) {
	j := b.nout
	if cap(reply) > cap(b.replies[j]) {
		b.replies[j] = reply[:0]
	}
	b.outIov[j].Base = unsafe.SliceData(reply)
	b.outIov[j].SetLen(len(reply))
	h := &b.out[j].Hdr
	h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
	h.Namelen = b.in[i].Hdr.Namelen
	b.nout++
}

// pending reports whether queued replies remain to be written.
func (b *batchIO) pending() bool { return b.sent < b.nout }

// write hands the queued replies to the kernel, as many as it takes in one
// call. A reply the kernel refuses is skipped and its error returned, so
// that one bad destination does not hold up the rest of the batch.
func (b *batchIO) write() error {
	if err := b.rc.Write(b.sendFn); err != nil {
		return err
	}
	if b.errno != 0 || b.r <= 0 {
		b.sent++
		if b.errno != 0 {
			return b.errno
		}
		return nil
	}
	b.sent += b.r
	return nil
}
