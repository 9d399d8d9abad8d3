package redis

import (
	"testing"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
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
