// Package frontendtest holds what every frontend is tested with: the
// end-to-end scenarios a tracker must pass whatever protocol carries them
// (Run), a Client interface with HTTP, UDP and WebSocket implementations
// that speak the wire as real clients do, a fake TrackerLogic for a
// frontend's own tests (Logic), and the tests' independent bencode reader.
//
// Run is to frontends what storagetest.Run is to storage drivers, in the
// style of golang.org/x/net/nettest's TestConn(t, MakePipe): the frontend
// package, or the daemon's end-to-end tests, say how to start a tracker and
// reach it, and the suite does the rest:
//
//	frontendtest.Run(t, func(t *testing.T, af bittorrent.AddressFamily) frontendtest.Dialer {
//		f := start(t, frontendtest.Loopback(af)+":0")
//		return func(t *testing.T) frontendtest.Client {
//			return frontendtest.HTTP(t, "http://"+f.Addr()+"/announce")
//		}
//	})
//
// A new protocol plugs in by implementing Client, nothing else: the
// WebSocket (WebTorrent) client announces in JSON and names the peers it
// is put in touch with (those that answer its offers) by peer ID
// (Peer.ID), where HTTP and UDP name them by address; the scenarios
// compare peers with Peer.Is, which takes either.
package frontendtest

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
)

// Announce is an announce as a client sends it, whatever the protocol.
type Announce struct {
	InfoHash bittorrent.InfoHash
	PeerID   bittorrent.PeerID
	Port     uint16
	Left     uint64
	Event    bittorrent.Event
	// NumWant is how many peers the client asks for; 0 leaves it to the
	// tracker's default.
	NumWant int
	// Params are extra request parameters in query form ("jwt=…&k=v"):
	// appended to the HTTP query, sent as BEP 41 URL data over UDP.
	Params string
	// Path is the path of the BEP 41 URL data over UDP ("/KEY/announce"
	// for a client given udp://tracker/KEY/announce); empty means
	// /announce. An HTTP client's path is its announce URL's.
	Path string
}

// AnnounceReply is the tracker's answer to an announce.
type AnnounceReply struct {
	// Failure is the tracker's refusal ("failure reason", a UDP error);
	// the other fields are zero when it is set.
	Failure string
	// Interval is the re-announce interval.
	Interval time.Duration
	// Seeders and Leechers count the swarm in the announcer's address
	// family, the announcer included.
	Seeders, Leechers uint32
	Peers             []Peer
}

// Peer is a peer as a tracker's answer names it: by address and port
// (HTTP, UDP), or by peer ID where the protocol hands out IDs instead
// (WebTorrent); the other field is zero.
type Peer struct {
	Addr netip.AddrPort
	ID   bittorrent.PeerID
}

// Is reports whether p is the peer that client c announced as a, by
// whichever of address and ID p carries.
func (p Peer) Is(c Client, a Announce) bool {
	if p.Addr.IsValid() {
		return p.Addr == netip.AddrPortFrom(c.Addr(), a.Port)
	}
	return p.ID == a.PeerID
}

func (p Peer) String() string {
	if p.Addr.IsValid() {
		return p.Addr.String()
	}
	return fmt.Sprintf("%q", p.ID[:])
}

// addrPeers names peers by address.
func addrPeers(addrs []netip.AddrPort) []Peer {
	var out []Peer
	for _, a := range addrs {
		out = append(out, Peer{Addr: a})
	}
	return out
}

// Counts are one torrent's numbers in a scrape.
type Counts struct {
	Seeders, Leechers, Downloaded uint32
}

// ScrapeReply is the tracker's answer to a scrape.
type ScrapeReply struct {
	// Failure is the tracker's refusal; Files is empty when it is set.
	Failure string
	// Files are the counts of the requested torrents, in request order
	// (zeros for one the tracker does not know).
	Files []Counts
}

// Client speaks one tracker protocol to one tracker address, from one
// local address. A refusal is an answer (Failure), not an error: errors
// are transport failures. A Client is closed when its test ends.
type Client interface {
	// Connect does what the protocol needs before a request (the BEP 15
	// handshake over UDP); Announce and Scrape connect when needed.
	Connect() error
	Announce(a Announce) (AnnounceReply, error)
	Scrape(infoHashes ...bittorrent.InfoHash) (ScrapeReply, error)
	// Addr is the client's address as the tracker sees it; with the
	// announce's Port, it is the peer the tracker stores.
	Addr() netip.Addr
}

// Dialer returns a new client of one tracker.
type Dialer func(t *testing.T) Client

// Loopback returns the loopback host of af as it goes into a host:port
// string: "127.0.0.1" or "[::1]".
func Loopback(af bittorrent.AddressFamily) string {
	if af == bittorrent.IPv6 {
		return "[::1]"
	}
	return "127.0.0.1"
}

// timeout bounds one request; a tracker that does not answer fails the
// test instead of hanging it.
const timeout = 10 * time.Second
