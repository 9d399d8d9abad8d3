package udp

import (
	"encoding/binary"
	"math"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
)

// errorHeaderLen is the size of an error packet without its message.
const errorHeaderLen = 8

// appendConnect appends a connect response.
func appendConnect(dst []byte, txID uint32, connID uint64) []byte {
	dst = binary.BigEndian.AppendUint32(dst, actionConnect)
	dst = binary.BigEndian.AppendUint32(dst, txID)
	return binary.BigEndian.AppendUint64(dst, connID)
}

// appendAnnounce appends an announce response. af is the family the request
// came over, which decides the peer format: 6 bytes per IPv4 peer, 18 per
// IPv6 peer (BEP 15). Peers of the other family, which a client could not
// tell apart from its own, are left out. resp.CompactPeers, of the
// request's family, are copied as they are.
func appendAnnounce(dst []byte, txID uint32, af bittorrent.AddressFamily, resp *bittorrent.AnnounceResponse) []byte {
	dst = binary.BigEndian.AppendUint32(dst, actionAnnounce)
	dst = binary.BigEndian.AppendUint32(dst, txID)
	dst = binary.BigEndian.AppendUint32(dst, seconds(resp.Interval))
	dst = binary.BigEndian.AppendUint32(dst, resp.Incomplete)
	dst = binary.BigEndian.AppendUint32(dst, resp.Complete)
	dst = append(dst, resp.CompactPeers...)
	for i := range resp.Peers {
		ap := resp.Peers[i].AddrPort
		addr := ap.Addr()
		switch {
		case af == bittorrent.IPv4 && addr.Is4():
			a := addr.As4()
			dst = append(dst, a[:]...)
		case af == bittorrent.IPv6 && addr.Is6() && !addr.Is4In6():
			a := addr.As16()
			dst = append(dst, a[:]...)
		default:
			continue
		}
		dst = binary.BigEndian.AppendUint16(dst, ap.Port())
	}
	return dst
}

// appendScrape appends a scrape response: seeders, completed, leechers for
// each file, in request order.
func appendScrape(dst []byte, txID uint32, resp *bittorrent.ScrapeResponse) []byte {
	dst = binary.BigEndian.AppendUint32(dst, actionScrape)
	dst = binary.BigEndian.AppendUint32(dst, txID)
	for i := range resp.Files {
		f := &resp.Files[i]
		dst = binary.BigEndian.AppendUint32(dst, f.Complete)
		dst = binary.BigEndian.AppendUint32(dst, f.Downloaded)
		dst = binary.BigEndian.AppendUint32(dst, f.Incomplete)
	}
	return dst
}

// appendError appends an error response carrying msg. BEP 15 gives the
// message no terminator: it runs to the end of the datagram.
func appendError(dst []byte, txID uint32, msg string) []byte {
	dst = binary.BigEndian.AppendUint32(dst, actionError)
	dst = binary.BigEndian.AppendUint32(dst, txID)
	return append(dst, msg...)
}

// seconds converts an interval to the int32 seconds of the wire, clamped.
func seconds(d time.Duration) uint32 {
	s := d / time.Second
	switch {
	case s < 0:
		return 0
	case s > math.MaxInt32:
		return math.MaxInt32
	}
	return uint32(s)
}
