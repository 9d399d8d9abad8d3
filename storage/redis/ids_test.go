package redis

import (
	"context"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/locality"
)

// The storage contract checks the peer IDs it gets back, so the suites
// run with keep_peer_ids on (testConfig). These tests check the driver's
// default, keep_peer_ids off: peers stored as their address and stamp
// alone, answered with zero IDs, and everything else as with IDs.

// noIDs turns keep_peer_ids off.
func noIDs(c *Config) { c.KeepPeerIDs = false }

func TestKeepPeerIDsDefault(t *testing.T) {
	if (Config{}).WithDefaults().KeepPeerIDs {
		t.Fatal("keep_peer_ids is on by default; the driver's default is off, as the memory driver's")
	}
}

// checkPeers fails unless got are exactly the peers of want (by address),
// each with a zero ID.
func checkPeers(t *testing.T, what string, got []bittorrent.Peer, want map[netip.AddrPort]bool) {
	t.Helper()
	seen := map[netip.AddrPort]bool{}
	for _, p := range got {
		if p.ID != (bittorrent.PeerID{}) {
			t.Errorf("%s: peer %v came back with ID %q from a store that keeps none", what, p.AddrPort, p.ID[:])
		}
		if !want[p.AddrPort] || seen[p.AddrPort] {
			t.Errorf("%s: peer %v not expected (or twice)", what, p.AddrPort)
		}
		seen[p.AddrPort] = true
	}
	if len(seen) != len(want) {
		t.Errorf("%s: %d peers, want %d", what, len(seen), len(want))
	}
}

// TestNoPeerIDs drives a swarm through the daemon's path (Announce, and
// AnnounceAddrs as UDP does) and the other operations with keep_peer_ids
// off, then collection, and a tracker that keeps IDs on the same prefix.
// TestPeerStoreCluster runs the same on a Cluster.
func TestNoPeerIDs(t *testing.T) {
	srv := startRedis(t)
	s := newStore(t, srv, noIDs)
	keep := newStore(t, srv, func(c *Config) { c.KeyPrefix = s.cfg.KeyPrefix })
	testNoPeerIDs(t, s, keep, srv.Conn(t))
}

// testNoPeerIDs is TestNoPeerIDs on a store s without IDs and a store
// keep with them on the same prefix, both reaching Redis as c does.
func testNoPeerIDs(t *testing.T, s, keep *PeerStore, c redis.Cmdable) {
	ctx := context.Background()
	h := ih(1)
	k := s.keys(h)
	want := map[netip.AddrPort]bool{}
	for i := range 15 {
		u := storage.UpdateLeecher
		if i%3 == 0 {
			u = storage.UpdateSeeder
		}
		_, _, _, err := s.Announce(nil, h, u, 50, peer4(i))
		must(t, "Announce", err)
		want[peer4(i).AddrPort] = true
	}
	var buf [18]byte
	a, _, _ := peerAddr(peer4(1), &buf)
	v, err := c.HGet(ctx, k.roles[0][1], string(a)).Result()
	must(t, "HGET", err)
	if len(v) != 4 {
		t.Fatalf("a leecher's stored value is %d bytes (%q), want the 4 of its stamp", len(v), v)
	}

	me := peer4(100)
	peers, counts, role, err := s.Announce(nil, h, storage.UpdateLeecher, 50, me)
	must(t, "Announce", err)
	checkPeers(t, "Announce", peers, want)
	if counts != (storage.Counts{Seeders: 5, Leechers: 10}) || role != storage.Absent {
		t.Errorf("Announce: counts %+v, role %v, want 5 seeders, 10 leechers, absent", counts, role)
	}
	leechers := map[netip.AddrPort]bool{}
	for i := range 15 {
		if i%3 != 0 {
			leechers[peer4(i).AddrPort] = true
		}
	}
	// Completed: a seeder now, answered leechers only.
	peers, counts, role, err = s.AnnounceAddrs(nil, h, storage.UpdateGraduate, 50, me, true)
	must(t, "AnnounceAddrs", err)
	checkPeers(t, "AnnounceAddrs", peers, leechers)
	if counts != (storage.Counts{Seeders: 5, Leechers: 11}) || role != storage.Leecher {
		t.Errorf("AnnounceAddrs: counts %+v, role %v, want 5 seeders, 11 leechers (itself), a leecher", counts, role)
	}
	peers, counts, role, err = s.AnnouncePeers(nil, h, true, 50, me)
	must(t, "AnnouncePeers", err)
	checkPeers(t, "AnnouncePeers for a seeder", peers, leechers)
	if counts != (storage.Counts{Seeders: 6, Leechers: 10, Downloads: 1}) || role != storage.Seeder {
		t.Errorf("AnnouncePeers: counts %+v, role %v, want 6 seeders, 10 leechers, 1 download, a seeder", counts, role)
	}

	// A tracker that keeps IDs, on the same prefix: it reads the peers
	// stored without as zero IDs, and its own with theirs; the first
	// store answers them all without.
	must(t, "PutLeecher", keep.PutLeecher(h, peer4(200)))
	peers, _, _, err = keep.AnnouncePeers(nil, h, true, 50, peer4(201))
	must(t, "AnnouncePeers", err)
	for _, p := range peers {
		if p.AddrPort == peer4(200).AddrPort && p.ID != peer4(200).ID {
			t.Errorf("the peer stored with its ID came back with %q", p.ID[:])
		} else if p.AddrPort != peer4(200).AddrPort && p.ID != (bittorrent.PeerID{}) {
			t.Errorf("a peer stored without its ID came back with %q", p.ID[:])
		}
	}
	leechers[peer4(200).AddrPort] = true
	peers, _, _, err = s.Announce(nil, h, storage.UpdateSeeder, 50, peer4(201))
	must(t, "Announce", err)
	checkPeers(t, "Announce beside a tracker that keeps IDs", peers, leechers)

	// Collection reads the stamp of both forms of value: make half of
	// the leechers stale, one of them the peer stored with its ID.
	old := time.Now().Add(-time.Hour).Unix()
	all, err := c.HGetAll(ctx, k.roles[0][1]).Result()
	must(t, "HGETALL", err)
	stale := 0
	for f, v := range all {
		p, _ := decodePeer([]byte(f), nil)
		if p.AddrPort.Addr().As4()[3]%2 == 1 && p.AddrPort != me.AddrPort || p.AddrPort == peer4(200).AddrPort {
			nv := []byte(v)
			binary.BigEndian.PutUint32(nv[len(nv)-4:], uint32(old))
			must(t, "HSET", c.HSet(ctx, k.roles[0][1], f, string(nv)).Err())
			stale++
		}
	}
	if stale == 0 || len(all[string(mustAddr(t, peer4(200)))]) != valueLen {
		t.Fatalf("%d stale leechers, the kept peer's value %q", stale, all[string(mustAddr(t, peer4(200)))])
	}
	must(t, "CollectGarbage", s.CollectGarbage(time.Now().Add(-time.Minute)))
	n, err := c.HLen(ctx, k.roles[0][1]).Result()
	must(t, "HLEN", err)
	if int(n) != len(all)-stale {
		t.Errorf("after collection %d leechers, want %d of %d (%d stale)", n, len(all)-stale, len(all), stale)
	}
}

func mustAddr(t *testing.T, p bittorrent.Peer) []byte {
	t.Helper()
	var buf [18]byte
	a, _, ok := peerAddr(p, &buf)
	if !ok {
		t.Fatalf("no address: %v", p)
	}
	return append([]byte(nil), a...)
}

// TestNoPeerIDsWebSocket: WebSocket peers keep their IDs with
// keep_peer_ids off (offers are addressed by them).
func TestNoPeerIDsWebSocket(t *testing.T) {
	srv := startRedis(t)
	s := newStore(t, srv, noIDs)
	browser := func(i int) bittorrent.Peer {
		p := peer4(i)
		p.Kind = bittorrent.WebSocketPeer
		return p
	}
	must(t, "PutSeeder", s.PutSeeder(ih(2), browser(1)))
	peers, _, _, err := s.Announce(nil, ih(2), storage.UpdateLeecher, 10, browser(2))
	must(t, "Announce", err)
	if len(peers) != 1 || peers[0].ID != browser(1).ID {
		t.Errorf("a WebSocket leecher got %+v, want the seeder with its ID %x", peers, browser(1).ID)
	}
}

// TestNoPeerIDsLocality: with locality on, short and ordered roles alike
// store no IDs (members and values without them), answer zero IDs, the
// own /24 first, are counted by group, and collection finds the members
// of stale peers.
func TestNoPeerIDsLocality(t *testing.T) {
	srv := startRedis(t)
	lc := locality.Config{Enabled: true}.WithDefaults()
	lc.MinOutsideShare = 0
	s := newStore(t, srv, noIDs, func(c *Config) { c.Locality = lc })
	ctx := context.Background()
	c := srv.Conn(t)
	at := func(sub, host int) bittorrent.Peer {
		return bittorrent.Peer{ID: bittorrent.PeerID{'x', byte(sub), byte(host)}, AddrPort: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 9, byte(sub), byte(host)}), 6881)}
	}
	for _, size := range []int{3, 30} { // short roles, then ordered ones
		h := ih(10 + size)
		k := s.keys(h)
		for i := range size {
			must(t, "PutSeeder", s.PutSeeder(h, at(i%3, i)))
		}
		ordered, err := c.Exists(ctx, k.ordered[0][0]).Result()
		must(t, "EXISTS", err)
		if (ordered == 1) != (size > 4) {
			t.Fatalf("%d seeders: order exists %v", size, ordered == 1)
		}
		members, err := c.ZRange(ctx, k.ordered[0][0], 0, -1).Result()
		must(t, "ZRANGE", err)
		for _, m := range members {
			if len(m) != 6 {
				t.Errorf("%d seeders: member %q, want the address alone", size, m)
			}
		}
		values, err := c.HGetAll(ctx, k.roles[0][0]).Result()
		must(t, "HGETALL", err)
		for _, v := range values {
			if len(v) != 4 {
				t.Errorf("%d seeders: value %q, want the stamp alone", size, v)
			}
		}
		// The operator API's groups read both forms without IDs.
		groups, err := s.Groups(h)
		must(t, "Groups", err)
		if len(groups) != 3 {
			t.Fatalf("%d seeders: groups %+v, want the 3 /24s", size, groups)
		}
		for _, g := range groups {
			if g.Seeders != uint32(size/3) || g.Leechers != 0 {
				t.Errorf("%d seeders: group %+v, want %d seeders", size, g, size/3)
			}
		}
		// One peer of its own /24 wanted: it comes from /24 number 1.
		for range 5 {
			peers, counts, _, err := s.Announce(nil, h, storage.UpdateLeecher, 1, at(1, 200))
			must(t, "Announce", err)
			if counts.Seeders != uint32(size) || len(peers) != 1 || peers[0].ID != (bittorrent.PeerID{}) || peers[0].AddrPort.Addr().As4()[2] != 1 {
				t.Fatalf("%d seeders: got %v (counts %+v), want one of 10.9.1.0/24 with a zero ID", size, peers, counts)
			}
		}
		must(t, "CollectGarbage", s.CollectGarbage(time.Now().Add(time.Hour)))
		for _, key := range []string{k.roles[0][0], k.ordered[0][0], k.roles[0][1], k.ordered[0][1]} {
			if n, err := c.Exists(ctx, key).Result(); err != nil || n != 0 {
				t.Errorf("%d seeders: %s left after collecting every peer (%v)", size, key, err)
			}
		}
	}
}
