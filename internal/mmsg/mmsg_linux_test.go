//go:build linux

package mmsg

import (
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestSockaddrAddrPort(t *testing.T) {
	v4 := func(a [4]byte, port uint16) unix.RawSockaddrInet6 {
		var sa unix.RawSockaddrInet6
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa))
		sa4.Family = unix.AF_INET
		pb := (*[2]byte)(unsafe.Pointer(&sa4.Port))
		pb[0], pb[1] = byte(port>>8), byte(port)
		sa4.Addr = a
		return sa
	}
	v6 := func(a string, port uint16, scope uint32) unix.RawSockaddrInet6 {
		sa := unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: netip.MustParseAddr(a).As16(), Scope_id: scope}
		pb := (*[2]byte)(unsafe.Pointer(&sa.Port))
		pb[0], pb[1] = byte(port>>8), byte(port)
		return sa
	}
	for _, tc := range []struct {
		name string
		sa   unix.RawSockaddrInet6
		want netip.AddrPort
	}{
		{"IPv4", v4([4]byte{127, 0, 0, 1}, 6881), netip.MustParseAddrPort("127.0.0.1:6881")},
		{"IPv4, high port", v4([4]byte{10, 1, 2, 3}, 65535), netip.MustParseAddrPort("10.1.2.3:65535")},
		{"IPv6", v6("2001:db8::1", 443, 0), netip.MustParseAddrPort("[2001:db8::1]:443")},
		{"IPv4-mapped IPv6 (dual-stack socket), left for the handler to unmap", v6("::ffff:192.0.2.1", 1, 0), netip.MustParseAddrPort("[::ffff:192.0.2.1]:1")},
		{"link-local: the scope stays in the raw address for the reply", v6("fe80::1", 6969, 2), netip.MustParseAddrPort("[fe80::1]:6969")},
		{"unknown family", unix.RawSockaddrInet6{Family: unix.AF_UNIX}, netip.AddrPort{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sockaddrAddrPort(&tc.sa); got != tc.want {
				t.Errorf("sockaddrAddrPort = %v, want %v", got, tc.want)
			}
		})
	}
}

const isLinux = true
