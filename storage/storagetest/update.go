package storagetest

import (
	"testing"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
)

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
