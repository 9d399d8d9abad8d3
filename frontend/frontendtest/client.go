// Package frontendtest holds what every frontend is tested with: the
// end-to-end scenarios a tracker must pass whatever protocol carries them
// (Run), a Client interface with an HTTP and a UDP implementation that
// speak the wire as real BitTorrent clients do, a fake TrackerLogic for a
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
// A new protocol (WebSocket) plugs in by implementing Client.
package frontendtest

import (
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
	Peers             []netip.AddrPort
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
