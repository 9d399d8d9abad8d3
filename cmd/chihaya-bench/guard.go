package main

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// loopbackV4 is the only IPv4 block the generator may send to.
var loopbackV4 = netip.MustParsePrefix("127.0.0.0/8")

// loopbackTarget parses target (host:port) and refuses anything but a
// loopback address: the generator sends as fast as it can, which against
// another machine would be an attack rather than a measurement. Host names
// are refused too (except "localhost", taken as 127.0.0.1), since a name
// may resolve anywhere.
func loopbackTarget(target string) (netip.AddrPort, error) {
	host, portStr, err := net.SplitHostPort(target)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("--target: must be host:port, got %q", target)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return netip.AddrPort{}, fmt.Errorf("--target: port must be in 1..65535, got %q", portStr)
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("--target: refusing %q: only loopback IP addresses (127.0.0.0/8, ::1) may be targeted, not host names", target)
	}
	if addr.Zone() != "" {
		return netip.AddrPort{}, fmt.Errorf("--target: refusing %q: only loopback addresses (127.0.0.0/8, ::1) may be targeted, without a zone", target)
	}
	addr = addr.Unmap()
	if !loopbackV4.Contains(addr) && addr != netip.IPv6Loopback() {
		return netip.AddrPort{}, fmt.Errorf("--target: refusing %q: only loopback addresses (127.0.0.0/8, ::1) may be targeted", target)
	}
	return netip.AddrPortFrom(addr, uint16(port)), nil
}
