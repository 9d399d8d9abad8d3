// Package bittorrent holds the protocol's types shared by every part of the
// tracker: info hashes, peer IDs, peers, announce and scrape requests and
// responses, events and the errors a client may read. It does no I/O.
package bittorrent

import (
	"encoding/hex"
	"net/netip"
	"time"
)

// InfoHash is the 20-byte identity of a torrent. A BitTorrent v2 client
// announces its SHA-256 info hash truncated to 20 bytes (BEP 52), so 20 bytes
// serve both versions.
type InfoHash [20]byte

// String returns the info hash as 40 lower-case hex digits.
func (ih InfoHash) String() string { return hex.EncodeToString(ih[:]) }

// PeerID is the 20-byte identity a client gives itself.
type PeerID [20]byte

// String returns the peer ID as 40 lower-case hex digits.
func (id PeerID) String() string { return hex.EncodeToString(id[:]) }

// AddressFamily tells IPv4 and IPv6 apart. Swarms keep the two families
// apart: a client is only given peers of the family it announced over.
type AddressFamily uint8

// The address families.
const (
	IPv4 AddressFamily = iota
	IPv6
)

// String returns "IPv4" or "IPv6"; it is used as a metric label value.
func (af AddressFamily) String() string {
	if af == IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// PeerKind tells apart the peers that reach each other directly, over TCP
// or uTP, from WebTorrent peers, browsers that announce over a WebSocket
// and reach each other through WebRTC offers and answers the tracker
// relays. Stores keep the kinds apart: a peer is only ever handed peers of
// its own kind, while counts and scrapes count both.
type PeerKind uint8

// The kinds of peers.
const (
	// NativePeer is a BitTorrent client announced over HTTP or UDP, found
	// at its AddrPort.
	NativePeer PeerKind = iota
	// WebSocketPeer is a WebTorrent client: its AddrPort is the remote
	// address of the WebSocket connection it announced on, which
	// identifies that connection, not a place other peers can connect to.
	WebSocketPeer
)

// Peer is one client in a swarm: its ID, its kind, and the address and
// port other peers reach it at (for a WebSocket peer, its connection's
// remote address). AddrPort never holds an IPv4-mapped IPv6 address:
// frontends unmap those so that an IPv4 client is an IPv4 peer.
type Peer struct {
	ID   PeerID
	Kind PeerKind
	// Instance is, for a WebSocket peer handed out by a store that several
	// tracker instances share, the number of the instance that holds the
	// peer's socket (its frontend relays offers there); 0 otherwise. It
	// sits in padding: a Peer is no larger for it.
	Instance uint16
	AddrPort netip.AddrPort
}

// AddressFamily returns the family of the peer's address.
func (p Peer) AddressFamily() AddressFamily {
	if p.AddrPort.Addr().Is4() {
		return IPv4
	}
	return IPv6
}

// Params gives hooks access to the parameters of a request: the query
// string of an HTTP request, or the BEP 41 URL data of a UDP request, both
// exposed the same way. Implementations may be reused between requests, so a
// hook must not keep a Params beyond the call it was given in.
type Params interface {
	// String returns the unescaped value of the first parameter named key.
	String(key string) (string, bool)
	// RawPath returns the request's path as it was received.
	RawPath() string
	// RawQuery returns the request's query string as it was received.
	RawQuery() string
	// RouteParam returns a named route parameter, such as "passkey" of the
	// route "/:passkey/announce". UDP requests have none.
	RouteParam(name string) (string, bool)
}

// AnnounceRequest is an announce, whichever frontend it came over. Frontends
// apply numwant defaults and caps before a request reaches the logic.
type AnnounceRequest struct {
	InfoHash InfoHash
	Peer     Peer
	Event    Event

	// Compact and NoPeerID choose the HTTP response form (BEP 23).
	Compact  bool
	NoPeerID bool
	// NoDownloads says the response has no download count (UDP's,
	// BEP 15), so that a store need not read it.
	NoDownloads bool

	NumWant    uint32
	Left       uint64
	Downloaded uint64
	Uploaded   uint64

	// RemoteAddr is the address the request came from (behind a trusted
	// reverse proxy, the client's address from the proxy's header), even
	// when the operator lets clients choose the address stored for them in
	// Peer (allow_ip_spoofing). Hooks that limit clients key on it.
	RemoteAddr netip.Addr

	// Params holds the request's query (HTTP) or URL data (UDP, BEP 41).
	// It is never nil.
	Params Params
}

// Seeder reports whether the announcing peer has the whole torrent.
func (r *AnnounceRequest) Seeder() bool { return r.Left == 0 }

// AnnounceResponse is the answer to an announce. Its Peers slice is owned by
// the frontend, which hands it in empty (with spare capacity) and reuses it.
type AnnounceResponse struct {
	// Complete and Incomplete count the seeders and leechers of the
	// announcer's address family, the announcer included.
	Complete   uint32
	Incomplete uint32
	// Downloaded counts the completed downloads of the torrent.
	Downloaded uint32

	Interval    time.Duration
	MinInterval time.Duration

	// Peers are of the announcer's address family and never include the
	// announcer itself.
	Peers []Peer
	// CompactPeers are more such peers in their compact form: the address
	// (4 or 16 bytes, the announcer's family) then the big-endian port,
	// as BEP 15 and BEP 23 write them. A frontend that can write them
	// sets it to an empty buffer before the logic runs (nil: it cannot),
	// and the logic may then hand out the peers, or some of them, here
	// instead of in Peers; the frontend writes both.
	CompactPeers []byte
}

// ScrapeRequest asks for the counts of one or more torrents. InfoHashes is
// owned by the frontend and reused between requests.
type ScrapeRequest struct {
	AddressFamily AddressFamily
	InfoHashes    []InfoHash
	// RemoteAddr is the address the request came from, as for announces.
	RemoteAddr netip.Addr
	Params     Params
}

// Scrape holds the counts of one torrent.
type Scrape struct {
	InfoHash   InfoHash
	Complete   uint32
	Incomplete uint32
	Downloaded uint32
}

// ScrapeResponse answers a scrape with one entry per requested info hash, in
// request order. Files is owned by the frontend and reused between requests.
type ScrapeResponse struct {
	Files []Scrape
}

// ParamsNone is a Params with no parameters, for requests that carry none.
var ParamsNone Params = noParams{}

type noParams struct{}

func (noParams) String(string) (string, bool)     { return "", false }
func (noParams) RawPath() string                  { return "" }
func (noParams) RawQuery() string                 { return "" }
func (noParams) RouteParam(string) (string, bool) { return "", false }
