// Package storagetest holds the storage.PeerStore contract as tests (Run)
// and the benchmarks every driver is measured with (RunBenchmarks). A
// driver's test file only calls them with a constructor for a fresh store.
package storagetest

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
)

// Run checks the PeerStore contract, one named subtest per clause. newStore
// is called once per subtest; Run stops each store when its subtest ends,
// so newStore need not (Stop may therefore be called twice).
func Run(t *testing.T, newStore func(t *testing.T) storage.PeerStore) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s storage.PeerStore)
	}{
		{"PutAndDelete", testPutAndDelete},
		{"SeederLeecherExclusive", testExclusive},
		{"GraduateLeecher", testGraduate},
		{"PeerIDReplaced", testPeerIDReplaced},
		{"AnnounceNeverReturnsAnnouncer", testAnnounceNotSelf},
		{"AnnounceRoles", testAnnounceRoles},
		{"AnnounceNumWant", testAnnounceNumWant},
		{"AnnounceFamiliesApart", testFamiliesApart},
		{"AnnounceCountsAndRole", testAnnounceCountsAndRole},
		{"AnnounceAppendsToDst", testAnnounceAppends},
		{"UnknownSwarm", testUnknownSwarm},
		{"ScrapeSwarms", testScrapeSwarms},
		{"CollectGarbage", testCollectGarbage},
		{"Stats", testStats},
		{"LargeSwarm", testLargeSwarm},
		{"MatchesModel", testMatchesModel},
		{"Concurrent", testConcurrent},
		{"ConcurrentCollection", testConcurrentCollection},
		{"ReadyAndStop", testReadyAndStop},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { stop(t, s) })
			tc.fn(t, s)
		})
	}
}

func stop(t testing.TB, s storage.PeerStore) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

// InfoHash returns a distinct info hash for n.
func InfoHash(n int) bittorrent.InfoHash {
	var ih bittorrent.InfoHash
	binary.BigEndian.PutUint64(ih[:8], uint64(n))
	copy(ih[8:], "storagetest!")
	return ih
}

// Peer4 returns a distinct IPv4 peer for n (n < 2^24), in 10.0.0.0/8, with
// a peer ID derived from n.
func Peer4(n int) bittorrent.Peer {
	a := netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)})
	return bittorrent.Peer{ID: peerID(n), AddrPort: netip.AddrPortFrom(a, 6881)}
}

// Peer6 returns a distinct IPv6 peer for n, in 2001:db8::/32.
func Peer6(n int) bittorrent.Peer {
	var b [16]byte
	b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
	binary.BigEndian.PutUint64(b[8:], uint64(n))
	return bittorrent.Peer{ID: peerID(n), AddrPort: netip.AddrPortFrom(netip.AddrFrom16(b), 6881)}
}

func peerID(n int) bittorrent.PeerID {
	var id bittorrent.PeerID
	copy(id[:], "-ST0001-")
	binary.BigEndian.PutUint64(id[12:], uint64(n))
	return id
}

func must(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func scrape(t testing.TB, s storage.PeerStore, ih bittorrent.InfoHash, af bittorrent.AddressFamily) storage.Counts {
	t.Helper()
	c, err := s.ScrapeSwarm(ih, af)
	must(t, "ScrapeSwarm", err)
	return c
}

// announce returns every peer the store gives p (numWant large).
func announce(t testing.TB, s storage.PeerStore, ih bittorrent.InfoHash, seeder bool, numWant int, p bittorrent.Peer) ([]bittorrent.Peer, storage.Counts, storage.Role) {
	t.Helper()
	peers, c, role, err := s.AnnouncePeers(nil, ih, seeder, numWant, p)
	must(t, "AnnouncePeers", err)
	return peers, c, role
}

func addrs(peers []bittorrent.Peer) []string {
	out := make([]string, len(peers))
	for i, p := range peers {
		out[i] = p.AddrPort.String()
	}
	sort.Strings(out)
	return out
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func put(t testing.TB, s storage.PeerStore, ih bittorrent.InfoHash, seeder bool, peers ...bittorrent.Peer) {
	t.Helper()
	for _, p := range peers {
		if seeder {
			must(t, "PutSeeder", s.PutSeeder(ih, p))
		} else {
			must(t, "PutLeecher", s.PutLeecher(ih, p))
		}
	}
}

func testPutAndDelete(t *testing.T, s storage.PeerStore) {
	ih := InfoHash(1)
	steps := []struct {
		name string
		do   func() error
		want storage.Counts
	}{
		{"put seeder", func() error { return s.PutSeeder(ih, Peer4(1)) }, storage.Counts{Seeders: 1}},
		{"put seeder again", func() error { return s.PutSeeder(ih, Peer4(1)) }, storage.Counts{Seeders: 1}},
		{"put leecher", func() error { return s.PutLeecher(ih, Peer4(2)) }, storage.Counts{Seeders: 1, Leechers: 1}},
		{"put second leecher", func() error { return s.PutLeecher(ih, Peer4(3)) }, storage.Counts{Seeders: 1, Leechers: 2}},
		{"delete seeder", func() error { return s.DeletePeer(ih, Peer4(1)) }, storage.Counts{Leechers: 2}},
		{"delete leecher", func() error { return s.DeletePeer(ih, Peer4(2)) }, storage.Counts{Leechers: 1}},
		{"delete absent peer", func() error { return s.DeletePeer(ih, Peer4(99)) }, storage.Counts{Leechers: 1}},
		{"delete in unknown swarm", func() error { return s.DeletePeer(InfoHash(2), Peer4(3)) }, storage.Counts{Leechers: 1}},
		{"delete last", func() error { return s.DeletePeer(ih, Peer4(3)) }, storage.Counts{}},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got := scrape(t, s, ih, bittorrent.IPv4); got != st.want {
			t.Fatalf("after %s: counts %+v, want %+v", st.name, got, st.want)
		}
	}
}

func testExclusive(t *testing.T, s storage.PeerStore) {
	tests := []struct {
		name  string
		first func(ih bittorrent.InfoHash, p bittorrent.Peer) error
		then  func(ih bittorrent.InfoHash, p bittorrent.Peer) error
		want  storage.Counts
		role  storage.Role
	}{
		{"leecher then seeder", s.PutLeecher, s.PutSeeder, storage.Counts{Seeders: 1}, storage.Seeder},
		{"seeder then leecher", s.PutSeeder, s.PutLeecher, storage.Counts{Leechers: 1}, storage.Leecher},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ih := InfoHash(100 + i)
			for _, p := range []bittorrent.Peer{Peer4(1), Peer6(1)} {
				must(t, "first put", tc.first(ih, p))
				must(t, "second put", tc.then(ih, p))
				if got := scrape(t, s, ih, p.AddressFamily()); got != tc.want {
					t.Errorf("%s: counts %+v, want %+v", p.AddressFamily(), got, tc.want)
				}
				if _, _, role := announce(t, s, ih, false, 10, p); role != tc.role {
					t.Errorf("%s: role %d, want %d", p.AddressFamily(), role, tc.role)
				}
			}
		})
	}
}

func testGraduate(t *testing.T, s storage.PeerStore) {
	ih := InfoHash(1)
	put(t, s, ih, false, Peer4(1), Peer4(2))
	must(t, "GraduateLeecher", s.GraduateLeecher(ih, Peer4(1)))
	if got, want := scrape(t, s, ih, bittorrent.IPv4), (storage.Counts{Seeders: 1, Leechers: 1, Downloads: 1}); got != want {
		t.Fatalf("after graduating a leecher: %+v, want %+v", got, want)
	}
	// A peer that was never seen as a leecher (e.g. its earlier announces
	// were lost) still completed a download.
	must(t, "GraduateLeecher", s.GraduateLeecher(ih, Peer4(3)))
	if got, want := scrape(t, s, ih, bittorrent.IPv4), (storage.Counts{Seeders: 2, Leechers: 1, Downloads: 2}); got != want {
		t.Fatalf("after graduating an absent peer: %+v, want %+v", got, want)
	}
	// Downloads count the torrent, not one family.
	must(t, "GraduateLeecher", s.GraduateLeecher(ih, Peer6(4)))
	if got, want := scrape(t, s, ih, bittorrent.IPv6), (storage.Counts{Seeders: 1, Downloads: 3}); got != want {
		t.Fatalf("IPv6 after graduating an IPv6 peer: %+v, want %+v", got, want)
	}
	if got := scrape(t, s, ih, bittorrent.IPv4).Downloads; got != 3 {
		t.Fatalf("IPv4 downloads = %d, want 3", got)
	}
}

func testPeerIDReplaced(t *testing.T, s storage.PeerStore) {
	ih := InfoHash(1)
	for _, mk := range []func(int) bittorrent.Peer{Peer4, Peer6} {
		old := mk(1)
		put(t, s, ih, false, old)
		renamed := old
		copy(renamed.ID[:], "-XX9999-new-identity")
		put(t, s, ih, true, renamed)
		other := mk(2)
		peers, c, _ := announce(t, s, ih, false, 10, other)
		if c.Seeders != 1 || c.Leechers != 0 {
			t.Fatalf("%s: counts %+v after the same address+port announced with a new ID, want one seeder", old.AddressFamily(), c)
		}
		if len(peers) != 1 || peers[0] != renamed {
			t.Fatalf("%s: peers %v, want only %v with its new ID", old.AddressFamily(), peers, renamed)
		}
	}
}

func testAnnounceNotSelf(t *testing.T, s storage.PeerStore) {
	ih := InfoHash(1)
	me := Peer4(1)
	samePortOtherHost := Peer4(2)
	sameHostOtherPort := me
	sameHostOtherPort.AddrPort = netip.AddrPortFrom(me.AddrPort.Addr(), me.AddrPort.Port()+1)
	sameHostOtherPort.ID = peerID(3)
	put(t, s, ih, false, me, samePortOtherHost, sameHostOtherPort)

	// The announcer is matched by address and port, whatever ID it sends.
	asked := me
	asked.ID = peerID(42)
	for _, seeder := range []bool{false, true} {
		peers, _, _ := announce(t, s, ih, seeder, 50, asked)
		want := addrs([]bittorrent.Peer{samePortOtherHost, sameHostOtherPort})
		if got := addrs(peers); !sameSet(got, want) {
			t.Errorf("seeder=%v: peers %v, want %v", seeder, got, want)
		}
	}
}

func testAnnounceRoles(t *testing.T, s storage.PeerStore) {
	ih := InfoHash(1)
	seeders := []bittorrent.Peer{Peer4(1), Peer4(2), Peer4(3)}
	leechers := []bittorrent.Peer{Peer4(4), Peer4(5), Peer4(6)}
	put(t, s, ih, true, seeders...)
	put(t, s, ih, false, leechers...)
	isSeeder := map[netip.AddrPort]bool{}
	for _, p := range seeders {
		isSeeder[p.AddrPort] = true
	}

	t.Run("seeder gets only leechers", func(t *testing.T) {
		peers, _, _ := announce(t, s, ih, true, 50, seeders[0])
		if got, want := addrs(peers), addrs(leechers); !sameSet(got, want) {
			t.Fatalf("peers %v, want the leechers %v", got, want)
		}
	})
	t.Run("leecher gets seeders then leechers", func(t *testing.T) {
		peers, _, _ := announce(t, s, ih, false, 50, leechers[0])
		if got, want := addrs(peers), addrs(append(append([]bittorrent.Peer{}, seeders...), leechers[1:]...)); !sameSet(got, want) {
			t.Fatalf("peers %v, want %v", got, want)
		}
		for i, p := range peers {
			if want := i < len(seeders); isSeeder[p.AddrPort] != want {
				t.Fatalf("peer %d (%v): seeder=%v, want seeders first: %v", i, p.AddrPort, !want, addrs(peers))
			}
		}
	})
	t.Run("leecher short of numWant gets seeders only", func(t *testing.T) {
		for range 20 { // the start of the walk is random
			peers, _, _ := announce(t, s, ih, false, 2, Peer4(100))
			if len(peers) != 2 || !isSeeder[peers[0].AddrPort] || !isSeeder[peers[1].AddrPort] {
				t.Fatalf("peers %v, want 2 seeders", addrs(peers))
			}
		}
	})
	t.Run("seeder in a swarm of seeders gets none", func(t *testing.T) {
		ih := InfoHash(2)
		put(t, s, ih, true, seeders...)
		if peers, _, _ := announce(t, s, ih, true, 50, seeders[0]); len(peers) != 0 {
			t.Fatalf("peers %v, want none", addrs(peers))
		}
	})
}

func testAnnounceNumWant(t *testing.T, s storage.PeerStore) {
	ih := InfoHash(1)
	for i := range 10 {
		put(t, s, ih, i < 4, Peer4(i))
	}
	announcer := Peer4(3) // a stored seeder
	tests := []struct {
		name    string
		seeder  bool
		numWant int
		want    int
	}{
		{"zero", false, 0, 0},
		{"negative", false, -1, 0},
		{"one", false, 1, 1},
		{"fewer than the seeders", false, 2, 2},
		{"across seeders and leechers", false, 5, 5},
		{"all but the announcer", false, 9, 9},
		{"more than the swarm", false, 100, 9},
		{"seeder, fewer than the leechers", true, 4, 4},
		{"seeder, more than the leechers", true, 100, 6},
		{"seeder, zero", true, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			peers, c, _ := announce(t, s, ih, tc.seeder, tc.numWant, announcer)
			if len(peers) != tc.want {
				t.Errorf("got %d peers, want %d", len(peers), tc.want)
			}
			if got := addrs(peers); len(got) > 0 {
				for i := 1; i < len(got); i++ {
					if got[i] == got[i-1] {
						t.Errorf("peer %s returned twice", got[i])
					}
				}
			}
			if c.Seeders != 4 || c.Leechers != 6 {
				t.Errorf("counts %+v, want 4 seeders and 6 leechers whatever numWant", c)
			}
		})
	}
}

func testFamiliesApart(t *testing.T, s storage.PeerStore) {
	ih := InfoHash(1)
	v4 := []bittorrent.Peer{Peer4(1), Peer4(2), Peer4(3)}
	v6 := []bittorrent.Peer{Peer6(1), Peer6(2)}
	put(t, s, ih, true, v4[0], v6[0])
	put(t, s, ih, false, v4[1], v4[2], v6[1])
	tests := []struct {
		name      string
		announcer bittorrent.Peer
		seeder    bool
		want      []bittorrent.Peer
		counts    storage.Counts
	}{
		{"IPv4 leecher", Peer4(50), false, v4, storage.Counts{Seeders: 1, Leechers: 2}},
		{"IPv6 leecher", Peer6(50), false, v6, storage.Counts{Seeders: 1, Leechers: 1}},
		{"IPv4 seeder", Peer4(50), true, v4[1:], storage.Counts{Seeders: 1, Leechers: 2}},
		{"IPv6 seeder", Peer6(50), true, v6[1:], storage.Counts{Seeders: 1, Leechers: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			peers, c, _ := announce(t, s, ih, tc.seeder, 50, tc.announcer)
			if got, want := addrs(peers), addrs(tc.want); !sameSet(got, want) {
				t.Errorf("peers %v, want %v", got, want)
			}
			if c != tc.counts {
				t.Errorf("counts %+v, want %+v", c, tc.counts)
			}
			if got := scrape(t, s, ih, tc.announcer.AddressFamily()); got != tc.counts {
				t.Errorf("scrape %+v, want %+v", got, tc.counts)
			}
		})
	}
	// An IPv4 peer and an IPv6 peer never collide, even with equal IDs.
	must(t, "DeletePeer", s.DeletePeer(ih, Peer6(1)))
	if got := scrape(t, s, ih, bittorrent.IPv4); got.Seeders != 1 {
		t.Errorf("deleting the IPv6 seeder changed the IPv4 seeders: %+v", got)
	}
}

func testAnnounceCountsAndRole(t *testing.T, s storage.PeerStore) {
	ih := InfoHash(1)
	put(t, s, ih, true, Peer4(1))
	put(t, s, ih, false, Peer4(2), Peer4(3))
	must(t, "GraduateLeecher", s.GraduateLeecher(ih, Peer4(4)))
	tests := []struct {
		name      string
		announcer bittorrent.Peer
		role      storage.Role
	}{
		{"seeder", Peer4(1), storage.Seeder},
		{"graduated", Peer4(4), storage.Seeder},
		{"leecher", Peer4(2), storage.Leecher},
		{"absent", Peer4(9), storage.Absent},
		{"absent IPv6", Peer6(1), storage.Absent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, c, role := announce(t, s, ih, false, 0, tc.announcer)
			want := storage.Counts{Seeders: 2, Leechers: 2, Downloads: 1}
			if tc.announcer.AddressFamily() == bittorrent.IPv6 {
				want = storage.Counts{Downloads: 1}
			}
			if c != want {
				t.Errorf("counts %+v, want %+v", c, want)
			}
			if role != tc.role {
				t.Errorf("role %d, want %d", role, tc.role)
			}
		})
	}
}

func testAnnounceAppends(t *testing.T, s storage.PeerStore) {
	ih := InfoHash(1)
	put(t, s, ih, false, Peer4(1), Peer4(2))
	sentinel := Peer4(1000)
	dst := make([]bittorrent.Peer, 1, 8)
	dst[0] = sentinel
	peers, _, _, err := s.AnnouncePeers(dst, ih, false, 10, Peer4(3))
	must(t, "AnnouncePeers", err)
	if len(peers) != 3 || peers[0] != sentinel {
		t.Fatalf("got %v, want the sentinel followed by 2 peers", addrs(peers))
	}
	for _, p := range peers[1:] {
		if want := map[netip.AddrPort]bittorrent.Peer{Peer4(1).AddrPort: Peer4(1), Peer4(2).AddrPort: Peer4(2)}[p.AddrPort]; p != want {
			t.Errorf("got peer %+v, want %+v (address, port and ID as stored)", p, want)
		}
	}
}

func testUnknownSwarm(t *testing.T, s storage.PeerStore) {
	put(t, s, InfoHash(1), true, Peer4(1))
	for _, af := range []bittorrent.AddressFamily{bittorrent.IPv4, bittorrent.IPv6} {
		if got := scrape(t, s, InfoHash(2), af); got != (storage.Counts{}) {
			t.Errorf("scrape %s of an unknown swarm: %+v, want zeros", af, got)
		}
	}
	dst := make([]bittorrent.Peer, 0, 4)
	peers, c, role, err := s.AnnouncePeers(dst, InfoHash(2), false, 50, Peer4(2))
	if err != nil || len(peers) != 0 || c != (storage.Counts{}) || role != storage.Absent {
		t.Errorf("announce to an unknown swarm: %v %+v %d %v, want no peers, zero counts, absent, no error", peers, c, role, err)
	}
}

func testCollectGarbage(t *testing.T, s storage.PeerStore) {
	fill := func() {
		t.Helper()
		put(t, s, InfoHash(1), true, Peer4(1), Peer6(1))
		put(t, s, InfoHash(1), false, Peer4(2), Peer6(2))
		put(t, s, InfoHash(2), false, Peer4(3))
		must(t, "GraduateLeecher", s.GraduateLeecher(InfoHash(3), Peer4(4)))
	}
	fill()
	before, err := s.Stats()
	must(t, "Stats", err)

	must(t, "CollectGarbage", s.CollectGarbage(time.Now().Add(-time.Hour)))
	after, err := s.Stats()
	must(t, "Stats", err)
	if after != before {
		t.Fatalf("cutoff in the past: stats %+v, want unchanged %+v", after, before)
	}
	if got := scrape(t, s, InfoHash(1), bittorrent.IPv6); got != (storage.Counts{Seeders: 1, Leechers: 1}) {
		t.Fatalf("cutoff in the past: IPv6 counts %+v, want 1 seeder and 1 leecher", got)
	}

	must(t, "CollectGarbage", s.CollectGarbage(time.Now().Add(time.Hour)))
	after, err = s.Stats()
	must(t, "Stats", err)
	if after != (storage.Stats{}) {
		t.Fatalf("cutoff in the future: stats %+v, want all zero", after)
	}
	tests := []struct {
		ih   bittorrent.InfoHash
		af   bittorrent.AddressFamily
		want storage.Counts
	}{
		{InfoHash(1), bittorrent.IPv4, storage.Counts{}},
		{InfoHash(1), bittorrent.IPv6, storage.Counts{}},
		{InfoHash(2), bittorrent.IPv4, storage.Counts{}},
		// A swarm keeps its completed downloads when its peers go.
		{InfoHash(3), bittorrent.IPv4, storage.Counts{Downloads: 1}},
	}
	for _, tc := range tests {
		if got := scrape(t, s, tc.ih, tc.af); got != tc.want {
			t.Errorf("after collecting everything, %x %s: %+v, want %+v", tc.ih[:2], tc.af, got, tc.want)
		}
	}
	if peers, _, _ := announce(t, s, InfoHash(1), false, 50, Peer4(9)); len(peers) != 0 {
		t.Errorf("after collecting everything, announce gave %v", addrs(peers))
	}

	// The emptied swarms work as new ones.
	fill()
	again, err := s.Stats()
	must(t, "Stats", err)
	if again != before {
		t.Errorf("refilled: stats %+v, want %+v", again, before)
	}
}

func testStats(t *testing.T, s storage.PeerStore) {
	put(t, s, InfoHash(1), true, Peer4(1), Peer4(2), Peer6(1))
	put(t, s, InfoHash(1), false, Peer4(3))
	put(t, s, InfoHash(2), false, Peer4(1), Peer4(4))
	put(t, s, InfoHash(3), false, Peer6(7))
	put(t, s, InfoHash(4), true, Peer4(5))
	must(t, "DeletePeer", s.DeletePeer(InfoHash(4), Peer4(5)))
	must(t, "GraduateLeecher", s.GraduateLeecher(InfoHash(2), Peer4(4)))
	got, err := s.Stats()
	must(t, "Stats", err)
	want := storage.Stats{
		Swarms:   [2]uint64{2, 2},
		Seeders:  [2]uint64{3, 1},
		Leechers: [2]uint64{2, 1},
	}
	if got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
}

// testLargeSwarm exercises what only large swarms reach (indexes, growth
// and shrinking) through the contract.
func testLargeSwarm(t *testing.T, s storage.PeerStore) {
	ih := InfoHash(1)
	const n = 600
	for i := range n {
		put(t, s, ih, false, Peer4(i))
	}
	for i := 0; i < n; i += 3 {
		must(t, "GraduateLeecher", s.GraduateLeecher(ih, Peer4(i)))
	}
	for i := 0; i < n; i += 2 {
		must(t, "DeletePeer", s.DeletePeer(ih, Peer4(i)))
	}
	want := map[string]bool{}
	var seeders, leechers uint32
	for i := 1; i < n; i += 2 {
		want[Peer4(i).AddrPort.String()] = i%3 == 0
		if i%3 == 0 {
			seeders++
		} else {
			leechers++
		}
	}
	peers, c, role := announce(t, s, ih, false, 2*n, Peer4(3))
	if c != (storage.Counts{Seeders: seeders, Leechers: leechers, Downloads: n / 3}) {
		t.Fatalf("counts %+v, want %d seeders, %d leechers, %d downloads", c, seeders, leechers, n/3)
	}
	if role != storage.Seeder {
		t.Fatalf("role of a graduated peer %d, want seeder", role)
	}
	delete(want, Peer4(3).AddrPort.String())
	got := map[string]bool{}
	for _, p := range peers {
		got[p.AddrPort.String()] = true
	}
	if len(peers) != len(want) || len(got) != len(want) {
		t.Fatalf("got %d peers (%d distinct), want the %d others", len(peers), len(got), len(want))
	}
	for a := range want {
		if !got[a] {
			t.Fatalf("peer %s missing", a)
		}
	}
	// Shrink back to a few peers; the survivors must still be found.
	for i := 1; i < n-4; i += 2 {
		must(t, "DeletePeer", s.DeletePeer(ih, Peer4(i)))
	}
	peers, c, _ = announce(t, s, ih, false, 50, Peer4(0))
	if len(peers) != 2 || c.Seeders+c.Leechers != 2 {
		t.Fatalf("after shrinking: %v %+v, want the 2 last peers", addrs(peers), c)
	}
}

// testMatchesModel runs a random sequence of operations and compares the
// store with a plain map as it goes. Swarms grow and shrink in phases, so
// that their sizes cross whatever thresholds a driver switches layouts at,
// and some peers share an address behind different ports (as behind a NAT).
func testMatchesModel(t *testing.T, s storage.PeerStore) {
	type key struct {
		ih   int
		addr netip.AddrPort
	}
	model := map[key]bool{} // true: seeder
	downloads := map[int]uint32{}
	rng := rand.New(rand.NewPCG(1, 2))
	const swarms, population, steps, phase = 2, 400, 24000, 3000
	pick := func() (int, bittorrent.Peer) {
		n := rng.IntN(population)
		p := Peer4(n)
		switch n % 5 {
		case 0:
			p = Peer6(n)
		case 1:
			p = Peer4(n % 3)
			p.AddrPort = netip.AddrPortFrom(p.AddrPort.Addr(), uint16(7000+n))
		}
		return rng.IntN(swarms), p
	}
	check := func(step int) {
		t.Helper()
		for ih := range swarms {
			for _, af := range []bittorrent.AddressFamily{bittorrent.IPv4, bittorrent.IPv6} {
				var want storage.Counts
				want.Downloads = downloads[ih]
				var all []string
				for k, seeder := range model {
					if k.ih != ih || (k.addr.Addr().Is4() != (af == bittorrent.IPv4)) {
						continue
					}
					all = append(all, k.addr.String())
					if seeder {
						want.Seeders++
					} else {
						want.Leechers++
					}
				}
				sort.Strings(all)
				outsider := Peer4(1 << 20)
				if af == bittorrent.IPv6 {
					outsider = Peer6(1 << 20)
				}
				peers, c, _ := announce(t, s, InfoHash(ih), false, population, outsider)
				if c != want {
					t.Fatalf("step %d, swarm %d %s: counts %+v, want %+v", step, ih, af, c, want)
				}
				if got := addrs(peers); !sameSet(got, all) {
					t.Fatalf("step %d, swarm %d %s: peers %v, want %v", step, ih, af, got, all)
				}
			}
		}
	}
	for step := range steps {
		ih, p := pick()
		k := key{ih, p.AddrPort}
		op := rng.IntN(10)
		if (step/phase)%2 == 1 && rng.IntN(10) < 6 {
			op = 9 // a shrinking phase
		}
		switch {
		case op < 4:
			must(t, "PutLeecher", s.PutLeecher(InfoHash(ih), p))
			model[k] = false
		case op < 7:
			must(t, "PutSeeder", s.PutSeeder(InfoHash(ih), p))
			model[k] = true
		case op < 8:
			must(t, "GraduateLeecher", s.GraduateLeecher(InfoHash(ih), p))
			model[k] = true
			downloads[ih]++
		default:
			must(t, "DeletePeer", s.DeletePeer(InfoHash(ih), p))
			delete(model, k)
		}
		if step%101 == 0 || step == steps-1 {
			check(step)
		}
	}
}

func testConcurrent(t *testing.T, s storage.PeerStore) {
	const workers, opsPerWorker, swarms = 16, 400, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := make([]bittorrent.Peer, 0, 50)
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range opsPerWorker {
				ih := InfoHash(rng.IntN(swarms))
				// Each worker owns its peers, so the end state is known.
				n := w*opsPerWorker + i%40
				p := Peer4(n)
				if n%3 == 0 {
					p = Peer6(n)
				}
				var err error
				switch rng.IntN(6) {
				case 0:
					err = s.PutSeeder(ih, p)
				case 1:
					err = s.PutLeecher(ih, p)
				case 2:
					err = s.GraduateLeecher(ih, p)
				case 3:
					err = s.DeletePeer(ih, p)
				case 4:
					_, err = s.ScrapeSwarm(ih, p.AddressFamily())
				default:
					_, _, _, err = s.AnnouncePeers(dst[:0], ih, rng.IntN(2) == 0, 50, p)
				}
				if err == nil && i%100 == 0 {
					_, err = s.Stats()
				}
				if err == nil && i%150 == 0 {
					err = s.CollectGarbage(time.Now().Add(-time.Hour))
				}
				if err == nil && i == opsPerWorker/2 && w%4 == 0 {
					err = s.CollectGarbage(time.Now().Add(time.Hour))
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	checkTotals(t, s, swarms)
}

// checkTotals checks that the store's totals agree with its swarms 0 to
// swarms-1, the only ones used.
func checkTotals(t *testing.T, s storage.PeerStore, swarms int) {
	t.Helper()
	var want storage.Stats
	for ih := range swarms {
		for _, af := range []bittorrent.AddressFamily{bittorrent.IPv4, bittorrent.IPv6} {
			c := scrape(t, s, InfoHash(ih), af)
			want.Seeders[af] += uint64(c.Seeders)
			want.Leechers[af] += uint64(c.Leechers)
			if c.Seeders+c.Leechers > 0 {
				want.Swarms[af]++
			}
		}
	}
	got, err := s.Stats()
	must(t, "Stats", err)
	if got != want {
		t.Errorf("stats %+v, but the swarms add up to %+v", got, want)
	}
}

// testConcurrentCollection collects a large swarm while its peers come and
// go, which is when a driver that releases its locks part-way through
// collection must get its bookkeeping right.
func testConcurrentCollection(t *testing.T, s storage.PeerStore) {
	const peers, workers, ops = 6000, 4, 1500
	ih := InfoHash(0)
	for i := range peers {
		put(t, s, ih, i%3 == 0, Peer4(i))
		if i%4 == 0 {
			put(t, s, InfoHash(1+i%5), false, Peer6(i))
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers+1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		errs <- s.CollectGarbage(time.Now().Add(time.Hour))
	}()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 11))
			for range ops {
				p := Peer4(rng.IntN(peers + 100))
				var err error
				switch rng.IntN(3) {
				case 0:
					err = s.PutSeeder(ih, p)
				case 1:
					err = s.PutLeecher(ih, p)
				default:
					err = s.DeletePeer(ih, p)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	checkTotals(t, s, 6)
	// Whatever survived is still a consistent swarm.
	peersGot, c, _ := announce(t, s, ih, false, 2*peers, Peer4(1<<20))
	if n := uint32(len(peersGot)); n != c.Seeders+c.Leechers {
		t.Errorf("announce gave %d peers, counts say %+v", n, c)
	}
	if got := addrs(peersGot); len(got) > 1 {
		for i := 1; i < len(got); i++ {
			if got[i] == got[i-1] {
				t.Fatalf("peer %s stored twice", got[i])
			}
		}
	}
}

func testReadyAndStop(t *testing.T, s storage.PeerStore) {
	if err := s.Ready(context.Background()); err != nil {
		t.Fatalf("Ready on a new store: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}
