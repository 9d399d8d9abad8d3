package storagetest

import (
	"net/netip"
	"testing"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
)

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
