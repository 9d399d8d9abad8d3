package frontendtest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/internal/eventually"
)

// Run checks what a tracker must do for a client whatever the protocol,
// one named subtest per scenario and address family. newTracker starts a
// fresh tracker listening on the loopback address of af (Loopback) and
// returns how to reach it; it is called once per subtest, and the tracker
// must be stopped by the test's cleanup. Swarm updates may be applied
// just after a reply, as the real logic does, so the scenarios wait for
// what a second client should see.
func Run(t *testing.T, newTracker func(t *testing.T, af bittorrent.AddressFamily) Dialer) {
	t.Helper()
	scenarios := []struct {
		name string
		fn   func(t *testing.T, dial Dialer)
	}{
		{"AnnounceLifecycle", testAnnounceLifecycle},
		{"NumWant", testNumWant},
		{"ScrapeInRequestOrder", testScrapeOrder},
		{"InfoHashBytes", testInfoHashBytes},
	}
	for _, af := range []bittorrent.AddressFamily{bittorrent.IPv4, bittorrent.IPv6} {
		t.Run(af.String(), func(t *testing.T) {
			for _, sc := range scenarios {
				t.Run(sc.name, func(t *testing.T) {
					sc.fn(t, newTracker(t, af))
				})
			}
		})
	}
}

// Hash returns a distinct info hash for n whose bytes include '%' and '+',
// which a careless query decoder mangles.
func Hash(n byte) bittorrent.InfoHash {
	var h bittorrent.InfoHash
	for i := range h {
		h[i] = n ^ byte(i)
	}
	h[0], h[1] = '%', '+'
	return h
}

// ID returns a peer ID that starts with prefix (a client's "-TR3000-").
func ID(prefix string) bittorrent.PeerID {
	var p bittorrent.PeerID
	copy(p[:], prefix)
	copy(p[len(prefix):], "0123456789abcdefghij")
	return p
}

// MustAnnounce announces and fails the test on a transport error or a
// refusal.
func MustAnnounce(t testing.TB, c Client, a Announce) AnnounceReply {
	t.Helper()
	r, err := c.Announce(a)
	if err != nil {
		t.Fatalf("announce: %v", err)
	}
	if r.Failure != "" {
		t.Fatalf("announce refused: %q", r.Failure)
	}
	if r.Interval <= 0 {
		t.Fatalf("announce reply without an interval: %+v", r)
	}
	return r
}

// MustScrape scrapes and fails the test on a transport error or a refusal.
func MustScrape(t testing.TB, c Client, ihs ...bittorrent.InfoHash) []Counts {
	t.Helper()
	r, err := c.Scrape(ihs...)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	if r.Failure != "" {
		t.Fatalf("scrape refused: %q", r.Failure)
	}
	if len(r.Files) != len(ihs) {
		t.Fatalf("scrape of %d info hashes answered %d", len(ihs), len(r.Files))
	}
	return r.Files
}

// testAnnounceLifecycle: a seeder, then a leecher that gets it; the
// seeder gets the leecher and never itself; the leecher completes; the
// seeder stops. Counts and scrapes follow every step. Each peer announces
// once per step, and the test waits (scraping, which changes nothing) until
// the step's update is in: swarm updates are applied after the reply, so
// two quick announces of one peer could otherwise be applied out of order,
// which no real client's minutes-apart announces are.
func testAnnounceLifecycle(t *testing.T, dial Dialer) {
	ih, other := Hash(1), Hash(99)
	sc, lc := dial(t), dial(t)
	seeder := Announce{InfoHash: ih, PeerID: ID("-TR3000-seed"), Port: 50001, Left: 0, Event: bittorrent.Started}
	leecher := Announce{InfoHash: ih, PeerID: ID("-qB4520-leech"), Port: 50002, Left: 1000, Event: bittorrent.Started}
	scraped := func(what string, want ...Counts) {
		t.Helper()
		eventually.Holds(t, func() string {
			if got := MustScrape(t, lc, ih, other); !slices.Equal(got, want) {
				return fmt.Sprintf("scrape %s: %+v, want %+v", what, got, want)
			}
			return ""
		})
	}

	r := MustAnnounce(t, sc, seeder)
	if r.Seeders != 1 || r.Leechers != 0 || len(r.Peers) != 0 {
		t.Fatalf("first seeder's own announce: %+v, want 1 seeder (itself), no leechers, no peers", r)
	}
	scraped("after the seeder started", Counts{Seeders: 1}, Counts{})

	r = MustAnnounce(t, lc, leecher)
	if len(r.Peers) != 1 || !r.Peers[0].Is(sc, seeder) {
		t.Fatalf("leecher got peers %v, want the seeder alone", r.Peers)
	}
	if r.Seeders != 1 || r.Leechers != 1 {
		t.Fatalf("leecher's announce: %d seeders, %d leechers, want 1 and 1", r.Seeders, r.Leechers)
	}
	scraped("after the leecher started", Counts{Seeders: 1, Leechers: 1}, Counts{})

	seeder.Event = bittorrent.None
	r = MustAnnounce(t, sc, seeder)
	if len(r.Peers) != 1 || !r.Peers[0].Is(lc, leecher) {
		t.Fatalf("seeder got peers %v, want the leecher alone", r.Peers)
	}
	if r.Seeders != 1 || r.Leechers != 1 {
		t.Fatalf("seeder's second announce: %d seeders, %d leechers, want 1 and 1", r.Seeders, r.Leechers)
	}

	leecher.Left, leecher.Event = 0, bittorrent.Completed
	r = MustAnnounce(t, lc, leecher)
	if r.Seeders != 2 || r.Leechers != 0 {
		t.Fatalf("after completed: %d seeders, %d leechers, want 2 and 0", r.Seeders, r.Leechers)
	}
	scraped("after completed", Counts{Seeders: 2, Downloaded: 1}, Counts{})

	seeder.Event = bittorrent.Stopped
	r = MustAnnounce(t, sc, seeder)
	if r.Seeders != 1 || len(r.Peers) != 0 {
		t.Fatalf("a stopping seeder: %d seeders and peers %v, want 1 and none", r.Seeders, r.Peers)
	}
	// The seeder's previous update may still be on its way, and be
	// applied after the stop; a stop is idempotent, so the seeder repeats
	// it, as its next announce would repair it in a real swarm.
	want := []Counts{{Seeders: 1, Downloaded: 1}, {}}
	eventually.Holds(t, func() string {
		if got := MustScrape(t, lc, ih, other); !slices.Equal(got, want) {
			MustAnnounce(t, sc, seeder)
			return fmt.Sprintf("scrape after stopped: %+v, want %+v", got, want)
		}
		return ""
	})
}

// testNumWant: numwant caps the peers given, each a distinct peer of the
// swarm other than the announcer.
func testNumWant(t *testing.T, dial Dialer) {
	ih := Hash(2)
	c := dial(t)
	const seeders = 5
	var seeds []Announce
	for i := range seeders {
		a := Announce{InfoHash: ih, PeerID: ID(fmt.Sprintf("-TR3000-s%d", i)), Port: uint16(51000 + i), Event: bittorrent.Started}
		MustAnnounce(t, c, a)
		seeds = append(seeds, a)
	}
	leecher := Announce{InfoHash: ih, PeerID: ID("-TR3000-leech"), Port: 51100, Left: 1, Event: bittorrent.Started, NumWant: 3}
	var r AnnounceReply
	eventually.Holds(t, func() string {
		r = MustAnnounce(t, c, leecher)
		if r.Seeders != seeders {
			return fmt.Sprintf("%d seeders counted, want %d", r.Seeders, seeders)
		}
		return ""
	})
	if len(r.Peers) != 3 {
		t.Fatalf("numwant 3 gave %d peers: %v", len(r.Peers), r.Peers)
	}
	seen := map[int]bool{}
	for _, p := range r.Peers {
		i := slices.IndexFunc(seeds, func(a Announce) bool { return p.Is(c, a) })
		if i < 0 || seen[i] {
			t.Fatalf("numwant 3 gave %v: want 3 distinct seeders", r.Peers)
		}
		seen[i] = true
	}
}

// testScrapeOrder: a scrape of several torrents answers each, in request
// order, with zeros for those the tracker does not know.
func testScrapeOrder(t *testing.T, dial Dialer) {
	c := dial(t)
	a, b, unknown := Hash(3), Hash(4), Hash(5)
	MustAnnounce(t, c, Announce{InfoHash: a, PeerID: ID("-TR3000-a"), Port: 52001, Event: bittorrent.Started})
	MustAnnounce(t, c, Announce{InfoHash: b, PeerID: ID("-TR3000-b"), Port: 52002, Left: 1, Event: bittorrent.Started})
	want := []Counts{{Leechers: 1}, {}, {Seeders: 1}}
	eventually.Holds(t, func() string {
		if got := MustScrape(t, c, b, unknown, a); !slices.Equal(got, want) {
			return fmt.Sprintf("scrape of b, unknown, a: %+v, want %+v", got, want)
		}
		return ""
	})
}

// testInfoHashBytes: info hashes that differ only in bytes a query
// decoder treats specially stay apart.
func testInfoHashBytes(t *testing.T, dial Dialer) {
	c := dial(t)
	space, plus := Hash(6), Hash(6)
	space[1] = ' '
	MustAnnounce(t, c, Announce{InfoHash: plus, PeerID: ID("-TR3000-plus"), Port: 53001, Event: bittorrent.Started})
	eventually.Holds(t, func() string {
		if got := MustScrape(t, c, plus, space); got[0] != (Counts{Seeders: 1}) || got[1] != (Counts{}) {
			return fmt.Sprintf("scrape of the '+' and ' ' hashes: %+v, want one seeder in the first only", got)
		}
		return ""
	})
}
