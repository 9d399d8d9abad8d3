// Package realip finds a client's address behind a reverse proxy: the
// connection's remote address, unless a trusted proxy named the client in
// a configured header (X-Real-IP, X-Forwarded-For). The HTTP and WebSocket
// frontends share it.
package realip

import (
	"errors"
	"net/netip"
	"net/textproto"
	"strings"
)

// ErrUnknown is returned when the client's address cannot be determined:
// a remote address that does not parse, or a header from a trusted proxy
// that names no usable address.
var ErrUnknown = errors.New("realip: cannot determine the client's address")

// Resolver holds the configuration; one serves every request.
type Resolver struct {
	// header is the canonical form of the configured header name, so that
	// it indexes an http.Header directly.
	header  string
	trusted []netip.Prefix
}

// New returns a Resolver honouring header (empty: none) from the
// addresses in trusted (CIDRs or single addresses; empty: any sender).
func New(header string, trusted []string) (*Resolver, error) {
	r := &Resolver{}
	if header != "" {
		r.header = textproto.CanonicalMIMEHeaderKey(header)
	}
	for _, s := range trusted {
		pfx, err := ParsePrefix(s)
		if err != nil {
			return nil, err
		}
		r.trusted = append(r.trusted, pfx)
	}
	return r, nil
}

// ClientAddr returns the address a request came from: the connection's
// remote address, unless a trusted proxy named the client in the header.
// An IPv4-mapped IPv6 address is unmapped, so that a client reaching a
// dual-stack listener over IPv4 is an IPv4 client.
//
// With X-Forwarded-For the last entry is used: it is the one the proxy in
// front of us appended, while earlier entries come from the client and can
// be forged. A trusted proxy that sends no header is taken at its word,
// the connection's address is used (a client on the proxy's host).
func (r *Resolver) ClientAddr(remoteAddr string, header map[string][]string) (netip.Addr, error) {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return netip.Addr{}, ErrUnknown
	}
	vals := header[r.header]
	if r.header == "" || len(vals) == 0 {
		return r.Resolve(ap, "", false)
	}
	return r.Resolve(ap, vals[len(vals)-1], true)
}

// Resolve is ClientAddr for a caller that parsed the request itself:
// remote is the connection's address, and value the last value of the
// configured header when present is set. It allocates nothing.
func (r *Resolver) Resolve(remote netip.AddrPort, value string, present bool) (netip.Addr, error) {
	if !remote.IsValid() {
		return netip.Addr{}, ErrUnknown
	}
	addr := remote.Addr().Unmap().WithZone("")
	if r.header == "" || !present || !r.isTrusted(addr) {
		return addr, nil
	}
	v := value
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	v = strings.TrimSpace(v)
	a, err := netip.ParseAddr(v)
	if err != nil {
		// Some proxies append the client's port: "1.2.3.4:5678", "[::1]:80".
		ap, err2 := netip.ParseAddrPort(v)
		if err2 != nil {
			return netip.Addr{}, ErrUnknown
		}
		a = ap.Addr()
	}
	if a.IsUnspecified() {
		return netip.Addr{}, ErrUnknown
	}
	return a.Unmap().WithZone(""), nil
}

// isTrusted reports whether the header is honoured from addr. An empty
// list trusts everyone, as upstream Chihaya does for HTTP.
func (r *Resolver) isTrusted(addr netip.Addr) bool {
	if len(r.trusted) == 0 {
		return true
	}
	for _, pfx := range r.trusted {
		if pfx.Contains(addr) {
			return true
		}
	}
	return false
}

// ParsePrefix reads a CIDR, or a single address as a one-address prefix.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
