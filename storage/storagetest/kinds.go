package storagetest

import (
	"testing"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
)

// WebSocket returns p as a WebSocket peer: same ID and address, so that a
// test can show that the kinds are two peers even where they coincide.
func WebSocket(p bittorrent.Peer) bittorrent.Peer {
	p.Kind = bittorrent.WebSocketPeer
	return p
}

// needKinds skips the clauses of peer kinds for a store that does not
// claim them (storage.KindKeeper): the WebSocket frontend refuses such a
// store, so no WebSocket peer ever reaches it.
func needKinds(t *testing.T, s storage.PeerStore) {
	t.Helper()
	if _, ok := s.(storage.KindKeeper); !ok {
		t.Skip("the driver does not keep WebSocket peers apart (storage.KindKeeper)")
	}
}

// testKindsApart checks that WebSocket peers are only handed to WebSocket
// peers and native peers only to native ones, that a native and a
// WebSocket peer at one address are two peers, and that counts add up
// both kinds.
func testKindsApart(t *testing.T, s storage.PeerStore) {
	needKinds(t, s)
	ih := InfoHash(1)
	put(t, s, ih, true, Peer4(1), WebSocket(Peer4(2)))
	put(t, s, ih, false, Peer4(3), WebSocket(Peer4(3)), WebSocket(Peer4(4)))
	put(t, s, ih, false, WebSocket(Peer6(5)))

	both := storage.Counts{Seeders: 2, Leechers: 3}
	if c := scrape(t, s, ih, bittorrent.IPv4); c != both {
		t.Errorf("IPv4 scrape = %+v, want %+v (both kinds)", c, both)
	}
	if c := scrape(t, s, ih, bittorrent.IPv6); c != (storage.Counts{Leechers: 1}) {
		t.Errorf("IPv6 scrape = %+v, want the one IPv6 WebSocket leecher", c)
	}

	for _, tc := range []struct {
		name      string
		announcer bittorrent.Peer
		want      []string
		kind      bittorrent.PeerKind
		role      storage.Role
	}{
		{"native leecher", Peer4(3), []string{Peer4(1).AddrPort.String()}, bittorrent.NativePeer, storage.Leecher},
		{"WebSocket leecher", WebSocket(Peer4(3)), []string{Peer4(2).AddrPort.String(), Peer4(4).AddrPort.String()}, bittorrent.WebSocketPeer, storage.Leecher},
		{"new native peer", Peer4(9), []string{Peer4(1).AddrPort.String(), Peer4(3).AddrPort.String()}, bittorrent.NativePeer, storage.Absent},
		{"WebSocket seeder", WebSocket(Peer4(2)), []string{Peer4(3).AddrPort.String(), Peer4(4).AddrPort.String()}, bittorrent.WebSocketPeer, storage.Seeder},
	} {
		peers, c, role := announce(t, s, ih, false, 50, tc.announcer)
		if tc.name == "WebSocket seeder" {
			peers, c, role = announce(t, s, ih, true, 50, tc.announcer)
		}
		if got := addrs(peers); !sameSet(got, tc.want) {
			t.Errorf("%s: peers %v, want %v", tc.name, got, tc.want)
		}
		for _, p := range peers {
			if p.Kind != tc.kind {
				t.Errorf("%s: handed %v of kind %d, want kind %d", tc.name, p.AddrPort, p.Kind, tc.kind)
			}
		}
		if c != both {
			t.Errorf("%s: counts %+v, want %+v", tc.name, c, both)
		}
		if role != tc.role {
			t.Errorf("%s: role %v, want %v", tc.name, role, tc.role)
		}
	}
	if peers, _, _ := announce(t, s, ih, false, 50, WebSocket(Peer6(9))); len(peers) != 1 || peers[0].AddrPort != Peer6(5).AddrPort {
		t.Errorf("IPv6 WebSocket announcer got %v, want only the IPv6 WebSocket peer", addrs(peers))
	}
}

// testKindsDeleteAndGraduate checks that deleting or graduating a peer of
// one kind leaves the peer of the other kind at the same address alone,
// and that downloads of both kinds are counted.
func testKindsDeleteAndGraduate(t *testing.T, s storage.PeerStore) {
	needKinds(t, s)
	ih := InfoHash(2)
	native, web := Peer4(1), WebSocket(Peer4(1))
	put(t, s, ih, false, native, web)
	must(t, "GraduateLeecher", s.GraduateLeecher(ih, web))
	if c := scrape(t, s, ih, bittorrent.IPv4); c != (storage.Counts{Seeders: 1, Leechers: 1, Downloads: 1}) {
		t.Errorf("after the WebSocket peer graduated: %+v, want 1 seeder, 1 leecher, 1 download", c)
	}
	must(t, "GraduateLeecher", s.GraduateLeecher(ih, native))
	must(t, "DeletePeer", s.DeletePeer(ih, web))
	if c := scrape(t, s, ih, bittorrent.IPv4); c != (storage.Counts{Seeders: 1, Downloads: 2}) {
		t.Errorf("after the WebSocket peer left: %+v, want the native seeder and 2 downloads", c)
	}
	if _, _, role := announce(t, s, ih, true, 0, native); role != storage.Seeder {
		t.Errorf("the native peer is %v after the WebSocket peer at its address left, want seeder", role)
	}
	// A delete of a WebSocket peer in a store that never had one.
	must(t, "DeletePeer", s.DeletePeer(InfoHash(3), WebSocket(Peer4(7))))
}

// testKindsCollected checks that collection and Stats cover WebSocket
// peers too.
func testKindsCollected(t *testing.T, s storage.PeerStore) {
	needKinds(t, s)
	ih := InfoHash(4)
	put(t, s, ih, false, WebSocket(Peer4(1)), WebSocket(Peer6(2)), Peer4(3))
	st, err := s.Stats()
	must(t, "Stats", err)
	if st.Leechers[bittorrent.IPv4] != 2 || st.Leechers[bittorrent.IPv6] != 1 {
		t.Errorf("Stats leechers = %v, want [2 1] (both kinds)", st.Leechers)
	}
	// A swarm counts once per kind of peer it holds (docs/metrics.md,
	// chihaya_storage_swarms): every driver the same, without a lookup
	// of the other kind's swarm per change.
	if st.Swarms[bittorrent.IPv4] != 2 || st.Swarms[bittorrent.IPv6] != 1 {
		t.Errorf("Stats swarms = %v, want [2 1] (the IPv4 swarm holds both kinds)", st.Swarms)
	}
	must(t, "CollectGarbage", s.CollectGarbage(time.Now().Add(time.Hour)))
	for af := bittorrent.IPv4; af <= bittorrent.IPv6; af++ {
		if c := scrape(t, s, ih, af); c != (storage.Counts{}) {
			t.Errorf("%v after collecting everything: %+v, want zeros", af, c)
		}
	}
}
