package redis

import (
	"testing"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/locality"
)

// TestWebCountsAcrossInstances: a tracker that never stored a WebSocket
// peer itself (an HTTP-only instance sharing the Redis) counts the ones
// another tracker stored, once its reporting has found the marker.
func TestWebCountsAcrossInstances(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	ws := newStore(t, srv)
	native := newStore(t, srv, func(c *Config) { c.KeyPrefix = ws.cfg.KeyPrefix })
	browser := peer4(1)
	browser.Kind = bittorrent.WebSocketPeer
	must(t, "PutSeeder", ws.PutSeeder(ih(1), browser))
	must(t, "PutLeecher", native.PutLeecher(ih(1), peer4(2)))

	c, err := native.ScrapeSwarm(ih(1), bittorrent.IPv4)
	must(t, "ScrapeSwarm", err)
	if c != (storage.Counts{Leechers: 1}) {
		t.Fatalf("before the marker is found: %+v, want the native leecher only (no read of WebSocket swarms yet)", c)
	}
	native.lookForWeb()
	want := storage.Counts{Seeders: 1, Leechers: 1}
	if c, err = native.ScrapeSwarm(ih(1), bittorrent.IPv4); err != nil || c != want {
		t.Fatalf("scrape after the marker is found: %+v, %v; want %+v", c, err, want)
	}
	_, c, _, err = native.Announce(nil, ih(1), storage.UpdateLeecher, 10, peer4(2))
	if err != nil || c != want {
		t.Fatalf("native announce: counts %+v, %v; want %+v", c, err, want)
	}
}

// TestWebPeerCarriesInstance: a WebSocket peer handed out names the
// instance whose store stored it, so that offers go there.
func TestWebPeerCarriesInstance(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	a := newStore(t, srv)
	b := newStore(t, srv, func(c *Config) { c.KeyPrefix = a.cfg.KeyPrefix })
	a.web.instance.Store(7)
	b.web.instance.Store(9)
	p1, p2 := peer4(1), peer4(2)
	p1.Kind, p2.Kind = bittorrent.WebSocketPeer, bittorrent.WebSocketPeer
	must(t, "PutSeeder", a.PutSeeder(ih(1), p1))
	peers, _, _, err := b.Announce(nil, ih(1), storage.UpdateLeecher, 5, p2)
	must(t, "Announce", err)
	if len(peers) != 1 || peers[0].Instance != 7 || peers[0].Kind != bittorrent.WebSocketPeer || peers[0].ID != p1.ID {
		t.Fatalf("b's announce got %+v, want the seeder stored by instance 7", peers)
	}
	peers, _, _, err = a.Announce(nil, ih(1), storage.UpdateSeeder, 5, p1)
	must(t, "Announce", err)
	if len(peers) != 1 || peers[0].Instance != 9 {
		t.Fatalf("a's announce got %+v, want the leecher stored by instance 9", peers)
	}
}

// TestWebAnnounceApplies: Announce of a WebSocket peer applies its update
// with the answer, as for a native peer (on a fresh Redis, whose first
// EVALSHA finds no script).
func TestWebAnnounceApplies(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	s := newStore(t, srv)
	p := peer4(1)
	p.Kind = bittorrent.WebSocketPeer
	if _, c, role, err := s.Announce(nil, ih(1), storage.UpdateLeecher, 5, p); err != nil || role != storage.Absent || c != (storage.Counts{}) {
		t.Fatalf("first announce: %+v %v %v, want zero counts, absent", c, role, err)
	}
	if _, c, role, err := s.Announce(nil, ih(1), storage.UpdateGraduate, 5, p); err != nil || role != storage.Leecher || c != (storage.Counts{Leechers: 1}) {
		t.Fatalf("second announce: %+v %v %v, want the leecher it was", c, role, err)
	}
	if c, err := s.ScrapeSwarm(ih(1), bittorrent.IPv4); err != nil || c != (storage.Counts{Seeders: 1, Downloads: 1}) {
		t.Fatalf("scrape: %+v %v, want the graduated seeder and its download", c, err)
	}
	if _, _, _, err := s.Announce(nil, ih(1), storage.UpdateDelete, 0, p); err != nil {
		t.Fatal(err)
	}
	if c, err := s.ScrapeSwarm(ih(1), bittorrent.IPv4); err != nil || c != (storage.Counts{Downloads: 1}) {
		t.Fatalf("scrape after stopped: %+v %v", c, err)
	}
}

// BenchmarkNativeAnnounceWebSeen is the cost for native announces of
// WebSocket peers under the prefix: their counts, two HLENs more in the
// announce's own pipeline.
func BenchmarkNativeAnnounceWebSeen(b *testing.B) {
	srv := startRedis(b)
	for _, seen := range []bool{false, true} {
		name := "no WebSocket peers"
		if seen {
			name = "WebSocket peers exist"
		}
		b.Run(name, func(b *testing.B) {
			s := newStore(b, srv)
			if seen {
				browser := peer4(999)
				browser.Kind = bittorrent.WebSocketPeer
				must(b, "PutLeecher", s.PutLeecher(ih(1), browser))
			}
			for i := range 50 {
				must(b, "PutSeeder", s.PutSeeder(ih(1), peer4(i)))
			}
			dst := make([]bittorrent.Peer, 0, 50)
			b.ReportAllocs()
			for b.Loop() {
				if _, _, _, err := s.Announce(dst[:0], ih(1), storage.UpdateLeecher, 30, peer4(100)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestWebCountsWithLocality: with locality on (select.lua), a native
// announce and a native peer list count the WebSocket peers too.
func TestWebCountsWithLocality(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	s := newStore(t, srv, func(c *Config) { c.Locality = locality.Config{Enabled: true}.WithDefaults() })
	browser := peer4(1)
	browser.Kind = bittorrent.WebSocketPeer
	must(t, "PutSeeder", s.PutSeeder(ih(1), browser))
	must(t, "PutSeeder", s.PutSeeder(ih(1), peer4(2)))
	want := storage.Counts{Seeders: 2, Leechers: 1}
	for _, eval := range []string{"first (scripts loaded)", "again"} {
		_, c, _, err := s.Announce(nil, ih(1), storage.UpdateLeecher, 10, peer4(3))
		if err != nil || c.Seeders != 2 {
			t.Fatalf("%s announce: %+v, %v; want both seeders", eval, c, err)
		}
		_, c, _, err = s.AnnouncePeers(nil, ih(1), false, 10, peer4(3))
		if err != nil || c != want {
			t.Fatalf("%s peer list: %+v, %v; want %+v", eval, c, err, want)
		}
	}
}
