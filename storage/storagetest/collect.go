package storagetest

import (
	"context"
	"testing"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
)

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
