package storagetest

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/locality"
)

// RunLocality checks locality-aware peer selection (storage/locality),
// one named subtest per rule. newStore builds a fresh store with the given
// locality config (enabled, defaults applied); RunLocality stops it.
//
// Every case draws many answers, since selection is random, and checks
// what must hold for each: the own group first, the reserve of outside
// peers, seeders first for a leecher and leechers only for a seeder, the
// announcer never, each peer once.
func RunLocality(t *testing.T, newStore func(t *testing.T, cfg locality.Config) storage.PeerStore) {
	t.Helper()
	prefixes := locality.Config{Enabled: true}.WithDefaults()
	prefixes.MinOutsideShare = 0.1
	tests := []struct {
		name string
		cfg  func(t *testing.T) locality.Config
		fn   func(t *testing.T, s storage.PeerStore, cfg locality.Config)
	}{
		{"OwnGroupFirstWithReserve", fixed(prefixes), testOwnGroupFirst},
		{"SeedersFirstInEachPart", fixed(prefixes), testLocalSeedersFirst},
		{"SeederGetsLeechersOnly", fixed(prefixes), testLocalSeederGetsLeechers},
		{"OwnGroupShort", fixed(prefixes), testOwnGroupShort},
		{"NoOutsiders", fixed(prefixes), testNoOutsiders},
		{"ShareZero", func(*testing.T) locality.Config { c := prefixes; c.MinOutsideShare = 0; return c }, testShareZero},
		{"NeverSelf", fixed(prefixes), testLocalNeverSelf},
		{"IPv6", fixed(prefixes), testLocalIPv6},
		{"CountsAndRoles", fixed(prefixes), testLocalCounts},
		{"TopologyTiers", topologyConfig, testTopologyTiers},
		{"TopologyUnplaced", topologyConfig, testTopologyUnplaced},
		{"TopologyReload", topologyConfig, testTopologyReload},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg(t)
			s := newStore(t, cfg)
			t.Cleanup(func() { stop(t, s) })
			tc.fn(t, s, cfg)
		})
	}
}

func fixed(c locality.Config) func(*testing.T) locality.Config {
	return func(*testing.T) locality.Config { return c }
}

// draws is how many answers each case checks.
const draws = 30

// peerAt returns a peer at address a (port 6881), its ID derived from a.
func peerAt(a string) bittorrent.Peer {
	addr := netip.MustParseAddr(a)
	var id bittorrent.PeerID
	copy(id[:], "-LT0001-")
	b := addr.As16()
	copy(id[8:], b[4:])
	return bittorrent.Peer{ID: id, AddrPort: netip.AddrPortFrom(addr, 6881)}
}

// group returns n peers in the IPv4 /24 "10.a.b.0", hosts from first.
func group(a, b, first, n int) []bittorrent.Peer {
	out := make([]bittorrent.Peer, n)
	for i := range out {
		out[i] = peerAt(fmt.Sprintf("10.%d.%d.%d", a, b, first+i))
	}
	return out
}

// tally counts the peers of an answer by the name of their /24 ("10.a.b").
func tally(peers []bittorrent.Peer) map[string]int {
	m := map[string]int{}
	for _, p := range peers {
		m[groupOf(p)]++
	}
	return m
}

func groupOf(p bittorrent.Peer) string {
	s := p.AddrPort.Addr().String()
	if p.AddrPort.Addr().Is4() {
		return s[:strings.LastIndexByte(s, '.')]
	}
	b := p.AddrPort.Addr().As16()
	return fmt.Sprintf("%x", b[:8])
}

// checkAnswer fails on a repeated peer or the announcer in an answer.
func checkAnswer(t *testing.T, peers []bittorrent.Peer, announcer bittorrent.Peer) {
	t.Helper()
	seen := map[netip.AddrPort]bool{}
	for _, p := range peers {
		if p.AddrPort == announcer.AddrPort {
			t.Fatalf("the announcer %v is in its own answer", announcer.AddrPort)
		}
		if seen[p.AddrPort] {
			t.Fatalf("peer %v given twice: %v", p.AddrPort, addrs(peers))
		}
		seen[p.AddrPort] = true
	}
}

func testOwnGroupFirst(t *testing.T, s storage.PeerStore, _ locality.Config) {
	ih := InfoHash(1)
	put(t, s, ih, false, group(1, 1, 1, 30)...)
	put(t, s, ih, false, group(1, 2, 1, 30)...)
	put(t, s, ih, false, group(2, 1, 1, 30)...)
	tests := []struct {
		name    string
		numWant int
		own     int // from 10.1.1.0/24
	}{
		// At least 10% from outside, rounded up.
		{"numwant 20", 20, 18},
		{"numwant 50", 50, 30}, // the group has only 30; the rest from outside
		{"numwant 5", 5, 4},
		{"numwant 1", 1, 0},
		{"numwant 30", 30, 27},
	}
	me := peerAt("10.1.1.200")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for range draws {
				peers, _, _ := announce(t, s, ih, false, tc.numWant, me)
				checkAnswer(t, peers, me)
				if len(peers) != tc.numWant {
					t.Fatalf("got %d peers, want %d", len(peers), tc.numWant)
				}
				got := tally(peers)
				if got["10.1.1"] != tc.own {
					t.Fatalf("got %d peers of the own /24, want %d: %v", got["10.1.1"], tc.own, got)
				}
				// The own group comes first.
				for i, p := range peers {
					if inOwn := groupOf(p) == "10.1.1"; inOwn != (i < tc.own) {
						t.Fatalf("peer %d (%v) out of order: the own group's %d first: %v", i, p.AddrPort, tc.own, addrs(peers))
					}
				}
			}
		})
	}
}

func testLocalSeedersFirst(t *testing.T, s storage.PeerStore, _ locality.Config) {
	ih := InfoHash(1)
	ownSeeders, outSeeders := group(1, 1, 1, 5), group(3, 3, 1, 5)
	put(t, s, ih, true, ownSeeders...)
	put(t, s, ih, false, group(1, 1, 100, 30)...)
	put(t, s, ih, true, outSeeders...)
	put(t, s, ih, false, group(3, 3, 100, 30)...)
	isSeeder := map[netip.AddrPort]bool{}
	for _, p := range append(append([]bittorrent.Peer{}, ownSeeders...), outSeeders...) {
		isSeeder[p.AddrPort] = true
	}
	me := peerAt("10.1.1.250")
	for range draws {
		peers, _, _ := announce(t, s, ih, false, 20, me)
		checkAnswer(t, peers, me)
		if len(peers) != 20 {
			t.Fatalf("got %d peers, want 20", len(peers))
		}
		// 18 of the own group, its 5 seeders first; then 2 from outside,
		// which are seeders since outside has 5.
		for i, p := range peers {
			wantGroup, wantSeeder := "10.1.1", i < 5
			if i >= 18 {
				wantGroup, wantSeeder = "10.3.3", true
			}
			if groupOf(p) != wantGroup || isSeeder[p.AddrPort] != wantSeeder {
				t.Fatalf("peer %d is %v (seeder %v), want one of %s (seeder %v): %v", i, p.AddrPort, isSeeder[p.AddrPort], wantGroup, wantSeeder, addrs(peers))
			}
		}
	}
}

func testLocalSeederGetsLeechers(t *testing.T, s storage.PeerStore, _ locality.Config) {
	ih := InfoHash(1)
	put(t, s, ih, true, group(1, 1, 1, 10)...)
	put(t, s, ih, false, group(1, 1, 100, 10)...)
	put(t, s, ih, true, group(4, 4, 1, 10)...)
	put(t, s, ih, false, group(4, 4, 100, 10)...)
	me := group(1, 1, 1, 1)[0] // a stored seeder
	for range draws {
		peers, _, role := announce(t, s, ih, true, 10, me)
		checkAnswer(t, peers, me)
		if role != storage.Seeder {
			t.Fatalf("role %d, want seeder", role)
		}
		if len(peers) != 10 {
			t.Fatalf("got %d peers, want 10", len(peers))
		}
		for i, p := range peers {
			host := p.AddrPort.Addr().As4()[3]
			if host < 100 {
				t.Fatalf("peer %d %v is a seeder; a seeder gets leechers only", i, p.AddrPort)
			}
		}
		if got := tally(peers); got["10.1.1"] != 9 || got["10.4.4"] != 1 {
			t.Fatalf("got %v, want 9 leechers of the own /24 and 1 from outside", got)
		}
	}
}

func testOwnGroupShort(t *testing.T, s storage.PeerStore, _ locality.Config) {
	ih := InfoHash(1)
	put(t, s, ih, false, group(1, 1, 1, 3)...)
	put(t, s, ih, false, group(9, 9, 1, 40)...)
	me := peerAt("10.1.1.77")
	for range draws {
		peers, _, _ := announce(t, s, ih, false, 20, me)
		checkAnswer(t, peers, me)
		if got := tally(peers); len(peers) != 20 || got["10.1.1"] != 3 || got["10.9.9"] != 17 {
			t.Fatalf("got %d peers %v, want the own group's 3 and 17 from outside", len(peers), got)
		}
	}
}

func testNoOutsiders(t *testing.T, s storage.PeerStore, _ locality.Config) {
	ih := InfoHash(1)
	put(t, s, ih, false, group(1, 1, 1, 30)...)
	me := peerAt("10.1.1.77")
	for range draws {
		peers, _, _ := announce(t, s, ih, false, 20, me)
		checkAnswer(t, peers, me)
		if got := tally(peers); len(peers) != 20 || got["10.1.1"] != 20 {
			t.Fatalf("got %v, want 20 of the own group: there is no outside to reserve room for", got)
		}
	}
	// An announcer of another group gets peers all the same.
	peers, _, _ := announce(t, s, ih, false, 20, peerAt("10.7.7.7"))
	if len(peers) != 20 {
		t.Fatalf("an announcer outside every stored group got %d peers, want 20", len(peers))
	}
}

func testShareZero(t *testing.T, s storage.PeerStore, _ locality.Config) {
	ih := InfoHash(1)
	put(t, s, ih, false, group(1, 1, 1, 30)...)
	put(t, s, ih, false, group(2, 2, 1, 30)...)
	me := peerAt("10.1.1.77")
	for range draws {
		peers, _, _ := announce(t, s, ih, false, 20, me)
		if got := tally(peers); got["10.1.1"] != 20 {
			t.Fatalf("min_outside_share 0: got %v, want all 20 from the own group", got)
		}
	}
}

func testLocalNeverSelf(t *testing.T, s storage.PeerStore, _ locality.Config) {
	ih := InfoHash(1)
	own := group(1, 1, 1, 6)
	put(t, s, ih, false, own...)
	put(t, s, ih, true, group(2, 2, 1, 6)...)
	for _, me := range own {
		for _, seeder := range []bool{false, true} {
			peers, _, _ := announce(t, s, ih, seeder, 100, me)
			checkAnswer(t, peers, me)
			want := 11
			if seeder {
				want = 5 // the other leechers
			}
			if len(peers) != want {
				t.Fatalf("seeder=%v: got %d peers, want %d", seeder, len(peers), want)
			}
		}
	}
}

func testLocalIPv6(t *testing.T, s storage.PeerStore, _ locality.Config) {
	ih := InfoHash(1)
	for i := range 30 {
		put(t, s, ih, false, peerAt(fmt.Sprintf("2001:db8:1:1::%x", i+1)), peerAt(fmt.Sprintf("2001:db8:1:2::%x", i+1)))
		put(t, s, ih, false, peerAt(fmt.Sprintf("10.1.1.%d", i+1)))
	}
	me := peerAt("2001:db8:1:1::ffff")
	for range draws {
		peers, c, _ := announce(t, s, ih, false, 20, me)
		checkAnswer(t, peers, me)
		if c.Leechers != 60 {
			t.Fatalf("counts %+v, want the 60 IPv6 leechers", c)
		}
		if got := tally(peers); len(peers) != 20 || got["20010db800010001"] != 18 || got["20010db800010002"] != 2 {
			t.Fatalf("got %v, want 18 of the own /64 and 2 of the other", got)
		}
	}
}

func testLocalCounts(t *testing.T, s storage.PeerStore, _ locality.Config) {
	ih := InfoHash(1)
	put(t, s, ih, true, group(1, 1, 1, 3)...)
	put(t, s, ih, false, group(2, 2, 1, 4)...)
	must(t, "GraduateLeecher", s.GraduateLeecher(ih, peerAt("10.2.2.1")))
	must(t, "DeletePeer", s.DeletePeer(ih, peerAt("10.1.1.1")))
	want := storage.Counts{Seeders: 3, Leechers: 3, Downloads: 1}
	if got := scrape(t, s, ih, bittorrent.IPv4); got != want {
		t.Fatalf("scrape %+v, want %+v", got, want)
	}
	_, c, role := announce(t, s, ih, false, 0, peerAt("10.2.2.1"))
	if c != want || role != storage.Seeder {
		t.Fatalf("announce: %+v role %d, want %+v and seeder", c, role, want)
	}
	st, err := s.Stats()
	must(t, "Stats", err)
	if st.Seeders[0] != 3 || st.Leechers[0] != 3 || st.Swarms[0] != 1 {
		t.Fatalf("stats %+v, want 3 seeders, 3 leechers, 1 swarm", st)
	}
}

// topology is a file of two tiers: racks within zones.
const topology = `tiers:
  - name: rack
    groups:
      - name: a1
        cidrs: [10.1.1.0/24, "2001:db8:a1::/48"]
      - name: a2
        cidrs: [10.1.2.0/24]
      - name: b1
        cidrs: [10.2.1.0/24]
  - name: zone
    groups:
      - name: a
        cidrs: [10.1.0.0/16]
      - name: b
        cidrs: [10.2.0.0/16]
`

// TopologyFile writes the suite's topology (two tiers: racks a1, a2, b1
// within zones a, b) to a file of the test's and returns its path.
func TopologyFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "topology.yaml")
	if err := os.WriteFile(path, []byte(topology), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func topologyConfig(t *testing.T) locality.Config {
	t.Helper()
	c := locality.Config{Enabled: true, TopologyFile: TopologyFile(t)}.WithDefaults()
	c.MinOutsideShare = 0.1
	return c
}

func testTopologyTiers(t *testing.T, s storage.PeerStore, _ locality.Config) {
	ih := InfoHash(1)
	put(t, s, ih, false, group(1, 1, 1, 4)...)  // rack a1
	put(t, s, ih, false, group(1, 2, 1, 30)...) // rack a2, zone a
	put(t, s, ih, false, group(2, 1, 1, 30)...) // rack b1, zone b
	me := peerAt("10.1.1.99")
	for range draws {
		peers, _, _ := announce(t, s, ih, false, 20, me)
		checkAnswer(t, peers, me)
		got := tally(peers)
		// The rack's 4, 2 reserved for anywhere outside it, the other 14
		// (at least) from the own zone before the other zone.
		if len(peers) != 20 || got["10.1.1"] != 4 || got["10.1.2"] < 14 || got["10.1.2"]+got["10.2.1"] != 16 {
			t.Fatalf("got %d peers %v, want the rack's 4, then at least 14 of the zone's other rack", len(peers), got)
		}
	}
	// A big rack: 18 of its own, the 2 reserved from outside it.
	put(t, s, ih, false, group(1, 1, 100, 30)...)
	for range draws {
		peers, _, _ := announce(t, s, ih, false, 20, me)
		checkAnswer(t, peers, me)
		if got := tally(peers); got["10.1.1"] != 18 || got["10.1.2"]+got["10.2.1"] != 2 {
			t.Fatalf("got %v, want 18 of the rack and 2 from outside it", got)
		}
	}
}

func testTopologyUnplaced(t *testing.T, s storage.PeerStore, _ locality.Config) {
	ih := InfoHash(1)
	put(t, s, ih, false, group(1, 1, 1, 10)...) // rack a1
	put(t, s, ih, false, group(1, 2, 1, 10)...) // rack a2
	put(t, s, ih, false, group(1, 9, 1, 10)...) // zone a, no rack
	put(t, s, ih, false, group(2, 1, 1, 40)...) // zone b
	// In zone a but in no rack: no own group, so 2 reserved for anywhere
	// and the rest from zone a (30 there) before zone b.
	me := peerAt("10.1.9.99")
	for range draws {
		peers, _, _ := announce(t, s, ih, false, 20, me)
		checkAnswer(t, peers, me)
		got := tally(peers)
		if len(peers) != 20 || got["10.1.1"]+got["10.1.2"]+got["10.1.9"] < 18 {
			t.Fatalf("got %v, want at least 18 from zone a", got)
		}
	}
	// In no group of any tier: every peer is as near as any other.
	for range draws {
		peers, _, _ := announce(t, s, ih, false, 20, peerAt("10.77.0.1"))
		if len(peers) != 20 {
			t.Fatalf("an announcer in no group got %d peers, want 20", len(peers))
		}
	}
}

func testTopologyReload(t *testing.T, s storage.PeerStore, cfg locality.Config) {
	r, ok := s.(storage.Reloader)
	if !ok {
		t.Fatalf("%T has no Reload method", s)
	}
	ih := InfoHash(1)
	a1, a2 := group(1, 1, 1, 20), group(1, 2, 1, 20)
	all := append(append([]bittorrent.Peer{}, a1...), a2...)
	put(t, s, ih, false, all...)
	me := peerAt("10.1.2.99") // rack a2
	if got := tally(first(t, s, ih, me)); got["10.1.2"] != 18 {
		t.Fatalf("before reload: %v, want 18 of rack a2", got)
	}
	// Move 10.1.2.0/24 into rack a1: the two racks become one.
	path := cfg.TopologyFile
	moved := strings.Replace(topology, "cidrs: [10.1.2.0/24]", "cidrs: [10.1.3.0/24]", 1)
	moved = strings.Replace(moved, `cidrs: [10.1.1.0/24, "2001:db8:a1::/48"]`, `cidrs: [10.1.1.0/24, 10.1.2.0/24]`, 1)
	if err := os.WriteFile(path, []byte(moved), 0o644); err != nil {
		t.Fatal(err)
	}
	must(t, "Reload", r.Reload())
	// Peers move as they announce again.
	put(t, s, ih, false, all...)
	if got := tally(first(t, s, ih, me)); got["10.1.1"]+got["10.1.2"] != 20 {
		t.Fatalf("after reload: %v, want all 20 from the merged rack", got)
	}
	// A broken file is an error, and the running topology stays.
	if err := os.WriteFile(path, []byte("tiers: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(); err == nil {
		t.Fatal("Reload of a broken topology file: no error")
	}
	put(t, s, ih, false, all...)
	if got := tally(first(t, s, ih, me)); got["10.1.1"]+got["10.1.2"] != 20 {
		t.Fatalf("after a failed reload: %v, want the previous topology kept", got)
	}
}

func first(t *testing.T, s storage.PeerStore, ih bittorrent.InfoHash, me bittorrent.Peer) []bittorrent.Peer {
	t.Helper()
	peers, _, _ := announce(t, s, ih, false, 20, me)
	checkAnswer(t, peers, me)
	return peers
}
