package redis

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/storagetest"
)

// TestAnnounceMatchesModel drives two instances sharing one Redis through
// Announce, the daemon's path (plain commands on a single Redis), with
// random updates of peers of both families over a few swarms, and checks
// every answer against a model: the counts and the role before the
// update, and at the end the totals and that collection finds every
// swarm.
func TestAnnounceMatchesModel(t *testing.T) {
	srv := startRedis(t)
	a := newStore(t, srv)
	b := newStore(t, srv, func(c *Config) { c.KeyPrefix = a.cfg.KeyPrefix })
	stores := []*PeerStore{a, b}
	const swarms, peers, steps = 4, 12, 3000
	type key struct {
		ih, peer int
		af       bittorrent.AddressFamily
	}
	peerOf := func(n int, af bittorrent.AddressFamily) bittorrent.Peer {
		if af == bittorrent.IPv4 {
			return peer4(n)
		}
		p := peer4(n)
		p.AddrPort = netip.AddrPortFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0xd, 0xb8, 15: byte(n)}), uint16(7000+n))
		return p
	}
	model := map[key]storage.Role{}
	downloads := map[int]uint32{}
	counts := func(i int, af bittorrent.AddressFamily) storage.Counts {
		c := storage.Counts{Downloads: downloads[i]}
		for k, r := range model {
			switch {
			case k.ih != i || k.af != af:
			case r == storage.Seeder:
				c.Seeders++
			case r == storage.Leecher:
				c.Leechers++
			}
		}
		return c
	}
	rng := rand.New(rand.NewPCG(13, 1))
	updates := []storage.Update{storage.UpdateLeecher, storage.UpdateSeeder, storage.UpdateGraduate, storage.UpdateDelete}
	for step := range steps {
		k := key{rng.IntN(swarms), rng.IntN(peers), bittorrent.AddressFamily(rng.IntN(2))}
		u := updates[rng.IntN(len(updates))]
		p := peerOf(k.peer, k.af)
		s := stores[step%2]
		got, c, role, err := s.Announce(nil, ih(k.ih), u, 50, p)
		must(t, "Announce", err)
		if want := counts(k.ih, k.af); c != want || role != model[k] {
			t.Fatalf("step %d, %v of peer %d (%v) in swarm %d: %+v role %d, want %+v role %d",
				step, u, k.peer, k.af, k.ih, c, role, want, model[k])
		}
		for _, q := range got {
			if q.AddrPort == p.AddrPort {
				t.Fatalf("step %d: the announcer got itself", step)
			}
		}
		switch u {
		case storage.UpdateDelete:
			delete(model, k)
		case storage.UpdateLeecher:
			model[k] = storage.Leecher
		case storage.UpdateGraduate:
			downloads[k.ih]++
			fallthrough
		default:
			model[k] = storage.Seeder
		}
	}
	var want storage.Stats
	for i := range swarms {
		for _, af := range []bittorrent.AddressFamily{bittorrent.IPv4, bittorrent.IPv6} {
			c := counts(i, af)
			got, err := a.ScrapeSwarm(ih(i), af)
			must(t, "ScrapeSwarm", err)
			if got != c {
				t.Errorf("swarm %d %v: %+v, want %+v", i, af, got, c)
			}
			want.Seeders[af] += uint64(c.Seeders)
			want.Leechers[af] += uint64(c.Leechers)
			if c.Seeders+c.Leechers > 0 {
				want.Swarms[af]++
			}
		}
	}
	// Each instance's changes to the totals reach Redis with its Stats.
	_, err := b.Stats()
	must(t, "Stats", err)
	st, err := a.Stats()
	must(t, "Stats", err)
	if st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	// Collection finds every swarm (each is in the index), and the
	// totals come down to zero with the peers.
	must(t, "CollectGarbage", a.CollectGarbage(time.Now().Add(time.Hour)))
	if st, err := b.Stats(); err != nil || st != (storage.Stats{}) {
		t.Errorf("after collecting everything: stats %+v %v, want zeros", st, err)
	}
	if n, err := a.client.Keys(t.Context(), a.cfg.KeyPrefix+"{*}[46][sl]").Result(); err != nil || len(n) != 0 {
		t.Errorf("after collecting everything: peer hashes %v %v, want none", n, err)
	}
}

// TestScanFindsEverySwarm stores swarms through Announce only (so in no
// index), more than one SCAN step's worth of keys, several hashes for
// some: the listing hands each swarm over once, and collection empties
// them all.
func TestScanFindsEverySwarm(t *testing.T) {
	srv := startRedis(t)
	s := newStore(t, srv)
	const swarms = 1500 // with a second hash for a third: 2000 keys, 2 SCAN steps or more
	storagetest.Parallel(t, 8, func(w int) error {
		for i := w; i < swarms; i += 8 {
			h := bittorrent.InfoHash{byte(i >> 8), byte(i), 's', 'c'}
			if _, _, _, err := s.Announce(nil, h, storage.UpdateLeecher, 0, peer4(i)); err != nil {
				return err
			}
			if i%3 == 0 {
				if _, _, _, err := s.Announce(nil, h, storage.UpdateSeeder, 0, peer4(i+1)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	seen := map[bittorrent.InfoHash]int{}
	err := s.Walk(t.Context(), nil, func(batch []storage.Swarm) error {
		for _, sw := range batch {
			seen[sw.InfoHash]++
		}
		return nil
	})
	must(t, "Walk", err)
	if len(seen) != swarms {
		t.Errorf("Walk listed %d swarms, want %d", len(seen), swarms)
	}
	for ih, n := range seen {
		if n != 1 {
			t.Errorf("Walk listed %x %d times", ih[:2], n)
		}
	}
	must(t, "CollectGarbage", s.CollectGarbage(time.Now().Add(time.Hour)))
	if st, err := s.Stats(); err != nil || st != (storage.Stats{}) {
		t.Errorf("after collecting everything: stats %+v %v, want zeros", st, err)
	}
	if n, err := s.client.Keys(t.Context(), s.cfg.KeyPrefix+"{*}[46][sl]").Result(); err != nil || len(n) != 0 {
		t.Errorf("after collecting everything: %d peer hashes left (%v)", len(n), err)
	}
}

// TestAnnounceOutOfMemory: with Redis out of memory (maxmemory reached,
// noeviction), an announce that moves a peer to the other role fails
// with Redis' OOM error and changes nothing (its MULTI/EXEC is refused
// whole), and the totals' changes still pending (a leecher that came
// before) wait: Stats reads the totals meanwhile, and sends the changes
// once Redis takes writes again.
func TestAnnounceOutOfMemory(t *testing.T) {
	srv := startRedis(t)
	s := newStore(t, srv)
	c := srv.Conn(t)
	ctx := t.Context()
	for i := range 3 {
		if _, _, _, err := s.Announce(nil, ih(1), storage.UpdateLeecher, 0, peer4(i)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.Stats()
	must(t, "Stats", err)
	_, _, _, err = s.Announce(nil, ih(1), storage.UpdateLeecher, 0, peer4(3))
	must(t, "Announce", err)
	must(t, "CONFIG SET", c.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err())
	must(t, "CONFIG SET", c.ConfigSet(ctx, "maxmemory", "1").Err())
	_, _, _, err = s.Announce(nil, ih(1), storage.UpdateSeeder, 0, peer4(0))
	if err == nil || !strings.Contains(err.Error(), "OOM") {
		t.Fatalf("announce with Redis out of memory: %v, want an OOM error", err)
	}
	want := storage.Stats{Swarms: [2]uint64{1, 0}, Leechers: [2]uint64{4, 0}}
	st, err := s.Stats()
	must(t, "Stats with Redis out of memory", err)
	if st == want {
		t.Errorf("stats %+v with Redis out of memory: the change was sent", st)
	}
	must(t, "CONFIG SET", c.ConfigSet(ctx, "maxmemory", "0").Err())
	if got, err := s.ScrapeSwarm(ih(1), bittorrent.IPv4); err != nil || got != (storage.Counts{Leechers: 4}) {
		t.Errorf("scrape %+v %v, want the 4 leechers, none moved", got, err)
	}
	if st, err := s.Stats(); err != nil || st != want {
		t.Errorf("stats %+v %v, want %+v", st, err, want)
	}
}

// TestAnnounceAddrs checks the answer for a reply that needs only
// addresses (UDP, compact): the same peers as Announce's, never the
// announcer, with zero IDs, the same counts and role (the download count
// only when asked for: UDP's reply has none), and the update applied.
func TestAnnounceAddrs(t *testing.T) {
	srv := startRedis(t)
	s := newStore(t, srv)
	const n = 30
	want, leechers := map[netip.AddrPort]bool{}, map[netip.AddrPort]bool{}
	for i := range n {
		if i%3 == 0 {
			must(t, "put", s.PutSeeder(ih(1), peer4(i)))
		} else {
			must(t, "put", s.PutLeecher(ih(1), peer4(i)))
		}
		if i != 5 {
			want[peer4(i).AddrPort] = true
			if i%3 != 0 {
				leechers[peer4(i).AddrPort] = true
			}
		}
	}
	for range 3 {
		must(t, "graduate", s.GraduateLeecher(ih(1), peer4(40)))
	}
	must(t, "delete", s.DeletePeer(ih(1), peer4(40)))
	full, fc, fr, err := s.Announce(nil, ih(1), storage.UpdateLeecher, 200, peer4(5))
	must(t, "announce", err)
	if len(full) != n-1 || full[0].ID == (bittorrent.PeerID{}) || fc.Downloads != 3 {
		t.Fatalf("Announce: %d peers (want %d), first ID %x, %d downloads (want 3)", len(full), n-1, full[0].ID, fc.Downloads)
	}
	for _, u := range []storage.Update{storage.UpdateLeecher, storage.UpdateSeeder, storage.UpdateDelete} {
		downloads := u != storage.UpdateSeeder
		peers, c, r, err := s.AnnounceAddrs(nil, ih(1), u, 200, peer4(5), downloads)
		must(t, "announce addresses", err)
		if !downloads {
			if c.Downloads != 0 {
				t.Errorf("%v: %d downloads read, not asked for", u, c.Downloads)
			}
			c.Downloads = fc.Downloads
		}
		if c != fc || (u == storage.UpdateLeecher && r != fr) {
			t.Errorf("%v: counts %+v role %v, Announce said %+v %v", u, c, r, fc, fr)
		}
		got := map[netip.AddrPort]bool{}
		for _, p := range peers {
			if p.ID != (bittorrent.PeerID{}) {
				t.Errorf("%v: peer %v with ID %x", u, p.AddrPort, p.ID)
			}
			got[p.AddrPort] = true
		}
		// A seeder gets only leechers.
		w := want
		if u.Seeder() {
			w = leechers
		}
		if len(peers) != len(w) || len(got) != len(w) {
			t.Errorf("%v: %d peers, %d distinct, want %d", u, len(peers), len(got), len(w))
		}
		for a := range got {
			if !w[a] {
				t.Errorf("%v: unexpected peer %v", u, a)
			}
		}
		fc, fr = c, r
		switch u {
		case storage.UpdateLeecher:
			fr = storage.Leecher
		case storage.UpdateSeeder:
			fc.Seeders, fc.Leechers = fc.Seeders+1, fc.Leechers-1
		}
	}
	// The last update removed the announcer.
	c, err := s.ScrapeSwarm(ih(1), bittorrent.IPv4)
	must(t, "scrape", err)
	if c.Seeders+c.Leechers != n-1 {
		t.Errorf("after stopped: %+v, want %d peers", c, n-1)
	}
	// A numwant smaller than the swarm: exactly numwant peers.
	peers, _, _, err := s.AnnounceAddrs(nil, ih(1), storage.UpdateLeecher, 7, peer4(6), false)
	must(t, "announce addresses", err)
	if len(peers) != 7 {
		t.Errorf("numwant 7: %d peers", len(peers))
	}
}
