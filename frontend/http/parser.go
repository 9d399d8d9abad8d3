package http

import (
	"bytes"
	"net/netip"
	"slices"
	"unsafe"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/pkg/query"
	"github.com/chihaya/chihaya/pkg/realip"
)

// parser turns a parsed query and the connection's address into requests.
// It holds only configuration, so one parser serves every request.
type parser struct {
	maxNumWant     uint32
	defaultNumWant uint32
	maxScrape      int
	allowSpoofing  bool

	// real finds the client's address behind a trusted proxy.
	real *realip.Resolver
}

func newParser(cfg Config) (*parser, error) {
	p := &parser{
		maxNumWant:     uint32(cfg.MaxNumWant),
		defaultNumWant: uint32(cfg.DefaultNumWant),
		maxScrape:      cfg.MaxScrapeInfoHashes,
		allowSpoofing:  cfg.AllowIPSpoofing,
	}
	real, err := realip.New(cfg.RealIPHeader, cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	p.real = real
	return p, nil
}

// clientAddr returns the address a request came from (see
// realip.Resolver.Resolve: the connection's, or the one a trusted proxy
// names in http.real_ip_header, whose last value is realIP when present).
func (p *parser) clientAddr(remote netip.AddrPort, realIP []byte, present bool) (netip.Addr, error) {
	a, err := p.real.Resolve(remote, unsafe.String(unsafe.SliceData(realIP), len(realIP)), present)
	if err != nil {
		return a, bittorrent.ErrUnknownAddress
	}
	return a, nil
}

// spoofedAddr returns the address named by the ip, ipv4 or ipv6 parameter
// when spoofing is allowed, or src. "ip" comes first; then the parameter of
// src's family, so that a dual-stack client sending both stays in the
// family it connected over; then the other one.
func (p *parser) spoofedAddr(v *query.Values, src netip.Addr) (netip.Addr, error) {
	if !p.allowSpoofing {
		return src, nil
	}
	ip, ip4, ip6 := -1, -1, -1
	for i := 0; i < v.Len(); i++ {
		switch {
		case ip < 0 && v.KeyIs(i, "ip"):
			ip = i
		case ip4 < 0 && v.KeyIs(i, "ipv4"):
			ip4 = i
		case ip6 < 0 && v.KeyIs(i, "ipv6"):
			ip6 = i
		}
	}
	order := [3]int{ip, ip4, ip6}
	if src.Is6() {
		order[1], order[2] = ip6, ip4
	}
	for _, i := range order {
		if i < 0 {
			continue
		}
		a, err := netip.ParseAddr(v.Value(i))
		if err != nil || a.IsUnspecified() || a.Zone() != "" {
			return netip.Addr{}, bittorrent.ErrInvalidIP
		}
		a = a.Unmap()
		if (i == ip4 && !a.Is4()) || (i == ip6 && !a.Is6()) {
			return netip.Addr{}, bittorrent.ErrInvalidIP
		}
		return a, nil
	}
	return src, nil
}

// parseAnnounce fills req from the query v of an announce that came from
// src. req must be zeroed, except for Params, which is left alone.
//
// Required: info_hash and peer_id (20 bytes each once unescaped), port
// (1-65535) and left, which decides whether the peer is a seeder.
// uploaded and downloaded default to 0. numwant defaults to
// default_numwant and is capped at max_numwant. The reply is compact
// unless compact=0 (BEP 23). When a key is repeated, the first one counts.
func (p *parser) parseAnnounce(v *query.Values, src netip.Addr, req *bittorrent.AnnounceRequest) error {
	var haveIH, havePeerID, havePort, haveLeft, haveUp, haveDown, haveNumWant, haveEvent, haveCompact, haveNoPeerID bool
	var port uint16
	req.Compact = true
	req.NumWant = p.defaultNumWant
	for i := 0; i < v.Len(); i++ {
		switch v.Key(i) {
		case "info_hash":
			if haveIH {
				continue
			}
			ih, ok := v.Value20(i)
			if !ok {
				return bittorrent.ErrInvalidInfoHash
			}
			req.InfoHash, haveIH = ih, true
		case "peer_id":
			if havePeerID {
				continue
			}
			id, ok := v.Value20(i)
			if !ok {
				return bittorrent.ErrInvalidPeerID
			}
			req.Peer.ID, havePeerID = id, true
		case "port":
			if havePort {
				continue
			}
			n, ok := v.Uint(i, 16)
			if !ok || n == 0 {
				return bittorrent.ErrInvalidPort
			}
			port, havePort = uint16(n), true
		case "left":
			if haveLeft {
				continue
			}
			n, ok := v.Uint(i, 64)
			if !ok {
				return bittorrent.ErrInvalidLeft
			}
			req.Left, haveLeft = n, true
		case "uploaded":
			if haveUp {
				continue
			}
			n, ok := v.Uint(i, 64)
			if !ok {
				return bittorrent.ErrInvalidUploaded
			}
			req.Uploaded, haveUp = n, true
		case "downloaded":
			if haveDown {
				continue
			}
			n, ok := v.Uint(i, 64)
			if !ok {
				return bittorrent.ErrInvalidDownloaded
			}
			req.Downloaded, haveDown = n, true
		case "numwant":
			if haveNumWant {
				continue
			}
			n, ok := v.UintClamp(i, uint64(p.maxNumWant))
			if !ok {
				return bittorrent.ErrInvalidNumWant
			}
			req.NumWant, haveNumWant = uint32(n), true
		case "event":
			if haveEvent {
				continue
			}
			e, err := bittorrent.ParseEvent(v.Value(i))
			if err != nil {
				return err
			}
			req.Event, haveEvent = e, true
		case "compact":
			if !haveCompact {
				req.Compact, haveCompact = !v.ValueIs(i, "0"), true
			}
		case "no_peer_id":
			if !haveNoPeerID {
				req.NoPeerID, haveNoPeerID = !v.ValueIs(i, "0"), true
			}
		}
	}
	switch {
	case !haveIH:
		return bittorrent.ErrMissingInfoHash
	case !havePeerID:
		return bittorrent.ErrMissingPeerID
	case !havePort:
		return bittorrent.ErrMissingPort
	case !haveLeft:
		return bittorrent.ErrMissingLeft
	}
	addr, err := p.spoofedAddr(v, src)
	if err != nil {
		return err
	}
	req.Peer.AddrPort = netip.AddrPortFrom(addr, port)
	req.RemoteAddr = src
	return nil
}

// parseScrape fills req from the query v of a scrape that came from src.
// The info hashes come out sorted and without duplicates, because the
// reply's `files` dictionary needs its keys sorted and unique; the cap
// counts them as sent, duplicates included.
func (p *parser) parseScrape(v *query.Values, src netip.Addr, req *bittorrent.ScrapeRequest) error {
	req.InfoHashes = req.InfoHashes[:0]
	for i := 0; i < v.Len(); i++ {
		if !v.KeyIs(i, "info_hash") {
			continue
		}
		if len(req.InfoHashes) >= p.maxScrape {
			return bittorrent.ErrTooManyInfoHashes
		}
		ih, ok := v.Value20(i)
		if !ok {
			return bittorrent.ErrInvalidInfoHash
		}
		req.InfoHashes = append(req.InfoHashes, ih)
	}
	if len(req.InfoHashes) == 0 {
		return bittorrent.ErrFullScrapeDisabled
	}
	slices.SortFunc(req.InfoHashes, compareInfoHash)
	req.InfoHashes = slices.Compact(req.InfoHashes)

	addr, err := p.spoofedAddr(v, src)
	if err != nil {
		return err
	}
	req.AddressFamily = bittorrent.IPv4
	if addr.Is6() {
		req.AddressFamily = bittorrent.IPv6
	}
	req.RemoteAddr = src
	return nil
}

func compareInfoHash(a, b bittorrent.InfoHash) int { return bytes.Compare(a[:], b[:]) }
