package udp

import (
	"encoding/binary"
	"net/netip"

	"github.com/chihaya/chihaya/bittorrent"
)

// protocolID is the magic constant a BEP 15 connect request carries in
// place of a connection ID.
const protocolID uint64 = 0x41727101980

// The actions of BEP 15.
const (
	actionConnect  uint32 = 0
	actionAnnounce uint32 = 1
	actionScrape   uint32 = 2
	actionError    uint32 = 3
)

// Packet sizes of BEP 15.
const (
	headerLen      = 16 // connection_id, action, transaction_id
	announceLen    = 98 // an announce without BEP 41 options
	infoHashLen    = 20
	connectRespLen = 16
)

// The BEP 41 option types.
const (
	optionEnd     = 0x0
	optionNOP     = 0x1
	optionURLData = 0x2
)

// parseHeader splits the 16 bytes every request starts with. It reports
// false for a packet too short to carry them, which cannot be answered at
// all since the transaction ID is missing.
func parseHeader(b []byte) (connID uint64, action, txID uint32, ok bool) {
	if len(b) < headerLen {
		return 0, 0, 0, false
	}
	return binary.BigEndian.Uint64(b[0:8]), binary.BigEndian.Uint32(b[8:12]), binary.BigEndian.Uint32(b[12:16]), true
}

// announceOptions are the configuration a parsed announce depends on.
type announceOptions struct {
	allowIPSpoofing bool
	maxNumWant      uint32
	defaultNumWant  uint32
}

// parseAnnounce fills req from an announce packet of at least announceLen
// bytes that came from src (already unmapped). It does not touch
// req.Params; the BEP 41 options after the fixed part are read by
// parseOptions.
func parseAnnounce(b []byte, src netip.AddrPort, o announceOptions, req *bittorrent.AnnounceRequest) error {
	if len(b) < announceLen {
		return bittorrent.ErrMalformedRequest
	}
	copy(req.InfoHash[:], b[16:36])
	copy(req.Peer.ID[:], b[36:56])

	downloaded := int64(binary.BigEndian.Uint64(b[56:64]))
	left := int64(binary.BigEndian.Uint64(b[64:72]))
	uploaded := int64(binary.BigEndian.Uint64(b[72:80]))
	switch {
	case downloaded < 0:
		return bittorrent.ErrInvalidDownloaded
	case left < 0:
		return bittorrent.ErrInvalidLeft
	case uploaded < 0:
		return bittorrent.ErrInvalidUploaded
	}
	req.Downloaded, req.Left, req.Uploaded = uint64(downloaded), uint64(left), uint64(uploaded)

	// BEP 15 numbers events differently from our bittorrent.Event.
	switch binary.BigEndian.Uint32(b[80:84]) {
	case 0:
		req.Event = bittorrent.None
	case 1:
		req.Event = bittorrent.Completed
	case 2:
		req.Event = bittorrent.Started
	case 3:
		req.Event = bittorrent.Stopped
	default:
		return bittorrent.ErrInvalidEvent
	}

	port := binary.BigEndian.Uint16(b[96:98])
	if port == 0 {
		return bittorrent.ErrInvalidPort
	}
	addr := src.Addr()
	// The ip field is an IPv4 address, so it may only replace an IPv4
	// source: an IPv6 client given an IPv4 identity would be answered with
	// peers it cannot reach, in a format it does not expect.
	if ip := binary.BigEndian.Uint32(b[84:88]); ip != 0 && o.allowIPSpoofing && addr.Is4() {
		addr = netip.AddrFrom4([4]byte(b[84:88]))
	}
	req.Peer.AddrPort = netip.AddrPortFrom(addr, port)
	req.RemoteAddr = src.Addr()

	// num_want is signed: -1 (0xFFFFFFFF) asks for the default, and so does
	// any other negative value.
	switch nw := int32(binary.BigEndian.Uint32(b[92:96])); {
	case nw < 0:
		req.NumWant = o.defaultNumWant
	case uint32(nw) > o.maxNumWant:
		req.NumWant = o.maxNumWant
	default:
		req.NumWant = uint32(nw)
	}

	req.Compact = true
	req.NoPeerID = true
	req.NoDownloads = true
	return nil
}

// parseOptions reads the BEP 41 options that follow the fixed part of an
// announce (opts is the packet from byte announceLen on) and appends the
// concatenated URL data to dst. Option parsing ends at an end-of-options
// option, at an unknown type, or at a truncated option (whose partial data
// is dropped); none of them fails the request.
func parseOptions(opts, dst []byte) []byte {
	for len(opts) > 0 {
		switch opts[0] {
		case optionEnd:
			return dst
		case optionNOP:
			opts = opts[1:]
		case optionURLData:
			if len(opts) < 2 {
				return dst
			}
			n := int(opts[1])
			if len(opts) < 2+n {
				return dst
			}
			dst = append(dst, opts[2:2+n]...)
			opts = opts[2+n:]
		default:
			return dst
		}
	}
	return dst
}

// splitURLData splits the URL data of BEP 41 into the path and the raw
// query, at the first '?'.
func splitURLData(s string) (path, rawQuery string) {
	for i := 0; i < len(s); i++ {
		if s[i] == '?' {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

// parseScrape appends to dst the info hashes of a scrape packet, at most
// max of them; extra hashes are ignored (a client reads the counts it is
// given, in request order), as are trailing bytes shorter than a hash. A
// scrape without any hash is malformed.
func parseScrape(b []byte, max int, dst []bittorrent.InfoHash) ([]bittorrent.InfoHash, error) {
	if len(b) < headerLen+infoHashLen {
		return dst, bittorrent.ErrMalformedRequest
	}
	b = b[headerLen:]
	for n := 0; len(b) >= infoHashLen && n < max; n++ {
		dst = append(dst, bittorrent.InfoHash(b[:infoHashLen]))
		b = b[infoHashLen:]
	}
	return dst, nil
}
