package websocket

import (
	"encoding/binary"
	"net/netip"

	"github.com/chihaya/chihaya/bittorrent"
)

// The messages one instance relays to another (frontend.Relay carries
// them as bytes), an offer for a peer whose socket the other holds or an
// answer to an offer one of its peers made. Binary, in this order:
//
//	version       1 byte, 1
//	kind          1 byte, 'o' (offer) or 'a' (answer)
//	from instance 2 bytes big-endian: the sender's number
//	from          the sending peer's connection address: 1 length byte (6
//	              or 18), then the address bytes and the port big-endian
//	to            the receiving peer's connection address, the same
//	info hash, from peer ID, to peer ID, offer ID: 20 bytes each
//	sdp           the rest: the offer or answer object as the browser sent it
//
// The to peer ID is checked by the receiving instance against the peer ID
// its connection announced in the swarm, as for a local relay.

// remoteVersion starts every message, so that instances of a later
// version can change the layout and older ones drop what they cannot read.
const remoteVersion = 1

type remoteKind byte

const (
	remoteOffer  remoteKind = 'o'
	remoteAnswer remoteKind = 'a'
)

// remoteMessage is a parsed relayed message; sdp points into the bytes
// it was parsed from.
type remoteMessage struct {
	kind         remoteKind
	fromInstance uint16
	from, to     netip.AddrPort
	ih           bittorrent.InfoHash
	fromID, toID bittorrent.PeerID
	offerID      [20]byte
	sdp          []byte
}

// appendRemote appends a relayed message to dst.
func appendRemote(dst []byte, kind remoteKind, instance uint16, from, to netip.AddrPort, ih *bittorrent.InfoHash, fromID, toID *bittorrent.PeerID, offerID *[20]byte, sdp []byte) []byte {
	dst = append(dst, remoteVersion, byte(kind))
	dst = binary.BigEndian.AppendUint16(dst, instance)
	dst = appendAddrPort(dst, from)
	dst = appendAddrPort(dst, to)
	dst = append(dst, ih[:]...)
	dst = append(dst, fromID[:]...)
	dst = append(dst, toID[:]...)
	dst = append(dst, offerID[:]...)
	return append(dst, sdp...)
}

func appendAddrPort(dst []byte, ap netip.AddrPort) []byte {
	a := ap.Addr()
	if a.Is4() {
		dst = append(dst, 6)
		b := a.As4()
		dst = append(dst, b[:]...)
	} else {
		dst = append(dst, 18)
		b := a.As16()
		dst = append(dst, b[:]...)
	}
	return binary.BigEndian.AppendUint16(dst, ap.Port())
}

// parse reads b into r; false if b is not a message of this version.
func (r *remoteMessage) parse(b []byte) bool {
	if len(b) < 4 || b[0] != remoteVersion || (b[1] != byte(remoteOffer) && b[1] != byte(remoteAnswer)) {
		return false
	}
	r.kind = remoteKind(b[1])
	r.fromInstance = binary.BigEndian.Uint16(b[2:])
	b = b[4:]
	var ok bool
	if r.from, b, ok = readAddrPort(b); !ok {
		return false
	}
	if r.to, b, ok = readAddrPort(b); !ok {
		return false
	}
	if len(b) < 80 {
		return false
	}
	copy(r.ih[:], b)
	copy(r.fromID[:], b[20:])
	copy(r.toID[:], b[40:])
	copy(r.offerID[:], b[60:])
	r.sdp = b[80:]
	// The sdp is written into a JSON message as it is: it must be what
	// the parser accepted from a browser, an object.
	return len(r.sdp) >= 2 && r.sdp[0] == '{' && r.sdp[len(r.sdp)-1] == '}'
}

func readAddrPort(b []byte) (netip.AddrPort, []byte, bool) {
	if len(b) < 1 {
		return netip.AddrPort{}, b, false
	}
	n := int(b[0])
	if (n != 6 && n != 18) || len(b) < 1+n {
		return netip.AddrPort{}, b, false
	}
	a := b[1 : 1+n]
	var ip netip.Addr
	if n == 6 {
		ip = netip.AddrFrom4([4]byte(a[:4]))
	} else {
		ip = netip.AddrFrom16([16]byte(a[:16]))
	}
	return netip.AddrPortFrom(ip, binary.BigEndian.Uint16(a[n-2:])), b[1+n:], true
}
