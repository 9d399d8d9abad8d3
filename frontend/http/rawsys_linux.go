//go:build linux && !386

package http

import (
	"net/netip"
	"syscall"
	"unsafe"
)

// The system calls of a plain TCP connection that is not registered with
// the runtime's poller: accept4, read, write and close on non-blocking
// sockets, which return at once (EAGAIN rather than wait). They are made
// with RawSyscall, without telling the runtime that the thread enters a
// system call (entersyscall): the thread keeps its P through a few
// microseconds in the kernel, and the runtime's monitor thread (sysmon),
// which entersyscall wakes when it sleeps, stays asleep. With a new
// connection per request that wake-up, and the handing of the P to
// another thread that sysmon then does, cost the tracker a sixth of its
// CPU in thread switches on a tracker pinned to one CPU.

// rawAccept accepts a connection on the non-blocking listening socket lfd,
// non-blocking and close-on-exec itself, and returns it and its peer's
// address.
func rawAccept(lfd int) (int, netip.AddrPort, syscall.Errno) {
	var sa syscall.RawSockaddrAny
	l := uint32(syscall.SizeofSockaddrAny)
	for {
		r, _, e := syscall.RawSyscall6(syscall.SYS_ACCEPT4, uintptr(lfd),
			uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&l)),
			syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0, 0)
		if e == syscall.EINTR || e == syscall.ECONNABORTED {
			l = uint32(syscall.SizeofSockaddrAny)
			continue
		}
		if e != 0 {
			return -1, netip.AddrPort{}, e
		}
		return int(r), sockaddrAddrPort(&sa), 0
	}
}

// sockaddrAddrPort is the address and port of an IPv4 or IPv6 socket
// address, without the allocation of syscall's Sockaddr.
func sockaddrAddrPort(sa *syscall.RawSockaddrAny) netip.AddrPort {
	switch sa.Addr.Family {
	case syscall.AF_INET:
		p := (*syscall.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(p.Addr), ntohs(p.Port))
	case syscall.AF_INET6:
		p := (*syscall.RawSockaddrInet6)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom16(p.Addr), ntohs(p.Port))
	}
	return netip.AddrPort{}
}

// ntohs turns a port in network order, as the kernel stores it, into its
// value.
func ntohs(p uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&p))
	return uint16(b[0])<<8 | uint16(b[1])
}

// rawRead reads from the non-blocking socket fd into p.
func rawRead(fd int, p []byte) (int, error) { return rawIO(syscall.SYS_READ, fd, p) }

// rawWrite writes p to the non-blocking socket fd, as much as it takes.
func rawWrite(fd int, p []byte) (int, error) { return rawIO(syscall.SYS_WRITE, fd, p) }

// rawIO runs read or write (trap) of p on the non-blocking socket fd,
// again when a signal interrupted it.
func rawIO(trap uintptr, fd int, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		r, _, e := syscall.RawSyscall(trap, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(r), nil
	}
}

// rawClose closes fd. Closing a socket without SO_LINGER does not wait:
// the kernel sends what is left and the FIN on its own.
func rawClose(fd int) {
	syscall.RawSyscall(syscall.SYS_CLOSE, uintptr(fd), 0, 0) //nolint:errcheck // nothing to do about it
}
