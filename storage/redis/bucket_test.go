package redis

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
)

// staleBucket rewrites the stamp of the peer of k's swarm in its bucket
// (family f), if it has one there, to stamp.
func staleBucket(t *testing.T, c *redis.Client, k *swarmKeys, f bittorrent.AddressFamily, stamp int64) {
	t.Helper()
	v, err := c.HGet(context.Background(), k.bucket[f], k.rawIH).Bytes()
	if err == redis.Nil {
		return
	}
	must(t, "HGET bucket", err)
	binary.BigEndian.PutUint32(v[len(v)-5:], uint32(stamp))
	must(t, "HSET bucket", c.HSet(context.Background(), k.bucket[f], k.rawIH, v).Err())
}

// ownKeys returns the keys of ih's swarm (its hashes, its downloads).
func ownKeys(t *testing.T, s *PeerStore, ih bittorrent.InfoHash) []string {
	t.Helper()
	k := s.keys(ih)
	keys, err := s.client.Keys(context.Background(), s.cfg.KeyPrefix+"{"+k.hexIH+"}*").Result()
	must(t, "KEYS", err)
	return keys
}

// TestTinySwarmShared checks the shared form (bucket.go) as a user sees
// it: a swarm of one peer has no key of its own, yet is counted, scraped,
// listed, answered with, collected; a second peer gives it its hashes
// with exact counts, and back to one peer it shares a bucket again.
func TestTinySwarmShared(t *testing.T) {
	srv := startRedis(t)
	s := newStore(t, srv, noIDs)
	h, first, second := ih(7), peer4(1), peer4(2)
	_, c, role, err := s.Announce(nil, h, storage.UpdateSeeder, 50, first)
	must(t, "Announce", err)
	if c != (storage.Counts{}) || role != storage.Absent {
		t.Fatalf("first announce: %+v role %d, want nothing before", c, role)
	}
	must(t, "PutLeecher", s.PutLeecher(ih(8), peer4(3)))
	for _, sw := range []bittorrent.InfoHash{h, ih(8)} {
		if keys := ownKeys(t, s, sw); len(keys) != 0 {
			t.Errorf("a swarm of one peer has keys of its own: %q", keys)
		}
	}
	got, err := s.ScrapeSwarm(h, bittorrent.IPv4)
	must(t, "ScrapeSwarm", err)
	if got != (storage.Counts{Seeders: 1}) {
		t.Errorf("scrape of a one-seeder swarm: %+v", got)
	}
	peers, c, role, err := s.AnnouncePeers(nil, h, false, 50, second)
	must(t, "AnnouncePeers", err)
	if len(peers) != 1 || peers[0].AddrPort != first.AddrPort || c != (storage.Counts{Seeders: 1}) || role != storage.Absent {
		t.Errorf("AnnouncePeers of another peer: %v %+v role %d, want the seeder", peers, c, role)
	}
	// Again alone: its own role, no peer (never itself).
	peers, c, role, err = s.Announce(nil, h, storage.UpdateSeeder, 50, first)
	must(t, "Announce", err)
	if len(peers) != 0 || c != (storage.Counts{Seeders: 1}) || role != storage.Seeder {
		t.Errorf("announce again alone: %v %+v role %d", peers, c, role)
	}
	// A second peer: the first in the answer, both in the swarm's hashes.
	peers, c, role, err = s.Announce(nil, h, storage.UpdateLeecher, 50, second)
	must(t, "Announce", err)
	if len(peers) != 1 || peers[0].AddrPort != first.AddrPort || c != (storage.Counts{Seeders: 1}) || role != storage.Absent {
		t.Errorf("second peer: %v %+v role %d, want the seeder", peers, c, role)
	}
	if keys := ownKeys(t, s, h); len(keys) != 2 {
		t.Errorf("a swarm of a seeder and a leecher: keys %q, want its two hashes", keys)
	}
	// The seeder completes... no: the leecher completes, then stops.
	_, c, role, err = s.Announce(nil, h, storage.UpdateGraduate, 50, second)
	must(t, "Announce", err)
	if c != (storage.Counts{Seeders: 1, Leechers: 1}) || role != storage.Leecher {
		t.Errorf("completion: %+v role %d", c, role)
	}
	_, c, role, err = s.Announce(nil, h, storage.UpdateDelete, 50, first)
	must(t, "Announce", err)
	if c != (storage.Counts{Seeders: 2, Downloads: 1}) || role != storage.Seeder {
		t.Errorf("stop: %+v role %d", c, role)
	}
	// The stop went the plain way (the swarm was known as large), and
	// left the swarm's hash of one peer; its peer's next announce takes
	// it back to the bucket.
	_, c, role, err = s.Announce(nil, h, storage.UpdateSeeder, 50, second)
	must(t, "Announce", err)
	if c != (storage.Counts{Seeders: 1, Downloads: 1}) || role != storage.Seeder {
		t.Errorf("alone again: %+v role %d", c, role)
	}
	if keys := ownKeys(t, s, h); len(keys) != 1 {
		t.Errorf("back to one peer: keys %q, want the downloads alone", keys)
	}
	got, err = s.ScrapeSwarm(h, bittorrent.IPv4)
	must(t, "ScrapeSwarm", err)
	if got != (storage.Counts{Seeders: 1, Downloads: 1}) {
		t.Errorf("scrape after the stop: %+v", got)
	}
	// The listing and the totals count both swarms.
	var listed []storage.Swarm
	must(t, "Walk", s.Walk(context.Background(), nil, func(sw []storage.Swarm) error {
		listed = append(listed, sw...)
		return nil
	}))
	if len(listed) != 2 {
		t.Errorf("listing: %+v, want 2 swarms", listed)
	}
	for _, sw := range listed {
		if sw.Peers() != 1 {
			t.Errorf("listed %x with %d peers, want 1", sw.InfoHash[:4], sw.Peers())
		}
	}
	st, err := s.Stats()
	must(t, "Stats", err)
	if want := (storage.Stats{Swarms: [2]uint64{2, 0}, Seeders: [2]uint64{1, 0}, Leechers: [2]uint64{1, 0}}); st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	// Collection: a fresh peer stays, a stale one goes, with the totals.
	k := s.keys(ih(8))
	staleBucket(t, srv.Conn(t), &k, bittorrent.IPv4, time.Now().Add(-time.Hour).Unix())
	must(t, "CollectGarbage", s.CollectGarbage(time.Now().Add(-time.Minute)))
	for sw, want := range map[bittorrent.InfoHash]storage.Counts{h: {Seeders: 1, Downloads: 1}, ih(8): {}} {
		got, err := s.ScrapeSwarm(sw, bittorrent.IPv4)
		must(t, "ScrapeSwarm", err)
		if got != want {
			t.Errorf("after collection %x: %+v, want %+v", sw[:4], got, want)
		}
	}
	st, err = s.Stats()
	must(t, "Stats", err)
	if want := (storage.Stats{Swarms: [2]uint64{1, 0}, Seeders: [2]uint64{1, 0}}); st != want {
		t.Errorf("stats after collection %+v, want %+v", st, want)
	}
}

// TestTinySwarmPlainMeetsBucket: a tracker that knows a swarm as large
// announces the plain way into it after another tracker left it with one
// peer (in the bucket). The answer counts and returns that peer, and the
// peer is never in both forms.
func TestTinySwarmPlainMeetsBucket(t *testing.T) {
	srv := startRedis(t)
	a := newStore(t, srv, noIDs)
	b := newStore(t, srv, noIDs, func(c *Config) { c.KeyPrefix = a.cfg.KeyPrefix })
	h := ih(9)
	for _, p := range []bittorrent.Peer{peer4(1), peer4(2)} {
		_, _, _, err := a.Announce(nil, h, storage.UpdateLeecher, 50, p)
		must(t, "Announce", err)
	}
	k := a.keys(h)
	if !a.tiny.isBig(k.rawIH, bittorrent.IPv4) {
		t.Fatal("a swarm of two peers is not known as large")
	}
	for _, tc := range []struct {
		name   string
		p      bittorrent.Peer
		u      storage.Update
		before storage.Counts
		role   storage.Role
		peers  int
		after  storage.Counts
	}{
		{"the bucket's peer again", peer4(1), storage.UpdateSeeder, storage.Counts{Leechers: 1}, storage.Leecher, 0, storage.Counts{Seeders: 1}},
		{"the bucket's peer stops", peer4(1), storage.UpdateDelete, storage.Counts{Leechers: 1}, storage.Leecher, 0, storage.Counts{}},
		{"another peer", peer4(3), storage.UpdateLeecher, storage.Counts{Leechers: 1}, storage.Absent, 1, storage.Counts{Leechers: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// b, which does not know the swarm as large, leaves it
			// with peer 1 alone (in the bucket).
			for _, u := range []struct {
				u storage.Update
				p int
			}{{storage.UpdateDelete, 3}, {storage.UpdateDelete, 2}, {storage.UpdateLeecher, 1}} {
				b.tiny.setBig(k.rawIH, bittorrent.IPv4, 0)
				_, _, _, err := b.Announce(nil, h, u.u, 0, peer4(u.p))
				must(t, "Announce", err)
			}
			if keys := ownKeys(t, a, h); len(keys) != 0 {
				t.Fatalf("one peer left: keys %q", keys)
			}
			a.tiny.setBig(k.rawIH, bittorrent.IPv4, 2)
			peers, c, role, err := a.Announce(nil, h, tc.u, 50, tc.p)
			must(t, "Announce", err)
			if c != tc.before || role != tc.role || len(peers) != tc.peers {
				t.Errorf("answer %v %+v role %d, want %d peers, %+v role %d", peers, c, role, tc.peers, tc.before, tc.role)
			}
			got, err := b.ScrapeSwarm(h, bittorrent.IPv4)
			must(t, "ScrapeSwarm", err)
			if got != tc.after {
				t.Errorf("scrape after %+v, want %+v", got, tc.after)
			}
			checkOneForm(t, a, h)
			must(t, "PutLeecher", b.PutLeecher(h, peer4(2)))
		})
	}
	_, err := a.Stats()
	must(t, "Stats", err)
	st, err := b.Stats()
	must(t, "Stats", err)
	got, err := b.ScrapeSwarm(h, bittorrent.IPv4)
	must(t, "ScrapeSwarm", err)
	if st.Seeders[0] != uint64(got.Seeders) || st.Leechers[0] != uint64(got.Leechers) || st.Swarms[0] != 1 {
		t.Errorf("stats %+v, the swarm %+v", st, got)
	}
}

// checkOneForm fails if a peer of ih's IPv4 swarm is in the bucket while
// the swarm has hashes.
func checkOneForm(t *testing.T, s *PeerStore, ih bittorrent.InfoHash) {
	t.Helper()
	ctx := context.Background()
	k := s.keys(ih)
	v, err := s.client.HGet(ctx, k.bucket[0], k.rawIH).Result()
	if err == redis.Nil {
		return
	}
	must(t, "HGET", err)
	if n, err := s.client.Exists(ctx, k.roles[0][0], k.roles[0][1]).Result(); err != nil || n != 0 {
		t.Errorf("swarm %x: a peer in the bucket (%q) and %d hashes (%v)", ih[:4], v, n, err)
	}
}

// TestTinySwarmsRacingTrackers: two trackers on one Redis announce the
// peers of swarms of one to three peers at once, each peer through both in
// turn: the counts, the totals and the forms are exact once they stop.
func TestTinySwarmsRacingTrackers(t *testing.T) {
	srv := startRedis(t)
	a := newStore(t, srv, noIDs)
	b := newStore(t, srv, noIDs, func(c *Config) { c.KeyPrefix = a.cfg.KeyPrefix })
	stores := []*PeerStore{a, b}
	const swarms, peers, steps = 30, 3, 40
	final := make([]storage.Update, swarms*peers)
	var wg sync.WaitGroup
	for j := range swarms * peers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(j), 7))
			updates := []storage.Update{storage.UpdateLeecher, storage.UpdateSeeder, storage.UpdateGraduate, storage.UpdateDelete}
			for i := range steps {
				u := updates[rng.IntN(len(updates))]
				s := stores[(i+j)%2]
				var err error
				if rng.IntN(2) == 0 {
					_, _, _, err = s.Announce(nil, ih(j%swarms), u, 50, peer4(j))
				} else {
					_, _, _, err = s.AnnounceAddrs(nil, ih(j%swarms), u, 50, peer4(j), false)
				}
				if err != nil {
					t.Error(err)
					return
				}
				final[j] = u
			}
		})
	}
	wg.Wait()
	var want storage.Stats
	for sw := range swarms {
		var c storage.Counts
		for j := sw; j < swarms*peers; j += swarms {
			switch final[j] {
			case storage.UpdateLeecher:
				c.Leechers++
			case storage.UpdateDelete:
			default:
				c.Seeders++
			}
		}
		for _, s := range stores {
			got, err := s.ScrapeSwarm(ih(sw), bittorrent.IPv4)
			must(t, "ScrapeSwarm", err)
			got.Downloads = 0
			if got != c {
				t.Errorf("swarm %d: %+v, want %+v", sw, got, c)
			}
		}
		checkOneForm(t, a, ih(sw))
		want.Seeders[0] += uint64(c.Seeders)
		want.Leechers[0] += uint64(c.Leechers)
		if c.Seeders+c.Leechers > 0 {
			want.Swarms[0]++
		}
	}
	_, err := a.Stats()
	must(t, "Stats", err)
	st, err := b.Stats()
	must(t, "Stats", err)
	if st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	must(t, "CollectGarbage", a.CollectGarbage(time.Now().Add(time.Hour)))
	if st, err := b.Stats(); err != nil || st != (storage.Stats{}) {
		t.Errorf("after collecting everything: %+v %v", st, err)
	}
	if keys, err := a.client.Keys(context.Background(), a.cfg.KeyPrefix+"{*}[46]*").Result(); err != nil || len(keys) != 0 {
		t.Errorf("after collecting everything: %q %v", keys, err)
	}
}

// BenchmarkAnnounceParallelTiny is BenchmarkAnnounceParallelNoIDs with
// swarms of one peer (announced again: tiny.lua, bucket.go).
func BenchmarkAnnounceParallelTiny(b *testing.B) {
	const swarms = 10_000
	s, c, rcpu := announceBench(b, swarms, 1, noIDs)
	runParallel(b, s, swarms, 1, true)
	reportRedis(b, c, rcpu)
}

// TestTinySwarmsRecount: the collection's recount of the totals counts
// the swarms of the shared form, so totals gone wrong (a tracker killed
// with changes unsent) come right.
func TestTinySwarmsRecount(t *testing.T) {
	srv := startRedis(t)
	s := newStore(t, srv, noIDs, func(c *Config) { c.PrometheusReportingInterval = 100 * time.Millisecond })
	want := storage.Stats{Swarms: [2]uint64{10, 5}, Seeders: [2]uint64{4, 2}, Leechers: [2]uint64{6, 3}}
	for i := range 15 {
		p, u := peer4(i), storage.UpdateLeecher
		if i >= 10 {
			p = peer6(i)
		}
		if i%5 < 2 {
			u = storage.UpdateSeeder
		}
		_, _, _, err := s.Announce(nil, ih(100+i), u, 0, p)
		must(t, "Announce", err)
	}
	got, err := s.Stats()
	must(t, "Stats", err)
	if got != want {
		t.Fatalf("stats %+v, want %+v", got, want)
	}
	if keys, err := s.client.Keys(context.Background(), s.cfg.KeyPrefix+"{b*}[46]").Result(); err != nil || len(keys) == 0 {
		t.Fatalf("no bucket: %q %v", keys, err)
	}
	// The totals lose track (as when a tracker dies with changes unsent).
	must(t, "HSET", s.client.HSet(context.Background(), s.oneShard.totals, "w4", 3, "s4", 40, "l6", 0).Err())
	s.periodicGC()
	got, err = s.Stats()
	must(t, "Stats", err)
	if got != want {
		t.Errorf("stats after the recount %+v, want %+v", got, want)
	}
}

// TestTinySwarmDoubleMended: a peer left both in its swarm's hash and in
// the bucket (the moment between another tracker's plain announce and
// its second round trip) is counted once by a plain announce, which
// leaves it in one form, whether it announces again or stops.
func TestTinySwarmDoubleMended(t *testing.T) {
	srv := startRedis(t)
	s := newStore(t, srv, noIDs)
	ctx := context.Background()
	for i, tc := range []struct {
		u     storage.Update
		after storage.Counts
	}{
		{storage.UpdateSeeder, storage.Counts{Seeders: 1, Leechers: 1}},
		{storage.UpdateDelete, storage.Counts{Leechers: 1}},
	} {
		h := ih(40 + i)
		k := s.keys(h)
		a, b := peer4(1), peer4(2)
		var buf [18]byte
		aa, _, _ := peerAddr(a, &buf)
		stamp := binary.BigEndian.AppendUint32(nil, uint32(time.Now().Unix()))
		must(t, "HSET", s.client.HSet(ctx, k.roles[0][1], string(aa), string(stamp)).Err())
		ba, _, _ := peerAddr(b, &buf)
		must(t, "HSET", s.client.HSet(ctx, k.roles[0][1], string(ba), string(stamp)).Err())
		aa, _, _ = peerAddr(a, &buf)
		must(t, "HSET", s.client.HSet(ctx, k.bucket[0], k.rawIH, string(aa)+string(stamp)+"l").Err())
		s.tiny.setBig(k.rawIH, bittorrent.IPv4, 2)
		_, c, role, err := s.Announce(nil, h, tc.u, 50, a)
		must(t, "Announce", err)
		if c != (storage.Counts{Leechers: 2}) || role != storage.Leecher {
			t.Errorf("%v: %+v role %d, want 2 leechers and a leecher", tc.u, c, role)
		}
		got, err := s.ScrapeSwarm(h, bittorrent.IPv4)
		must(t, "ScrapeSwarm", err)
		if got != tc.after {
			t.Errorf("%v: after %+v, want %+v", tc.u, got, tc.after)
		}
		checkOneForm(t, s, h)
	}
}

// TestTinySwarmRoundTrips pins the announces of a swarm of one peer at
// one round trip (tiny.lua), whatever the event, and scrapes of it at
// one; a plain announce that meets a peer in the bucket is the one that
// takes two.
func TestTinySwarmRoundTrips(t *testing.T) {
	srv := startRedis(t)
	var writes atomic.Int64
	s := newDialing(t, srv, func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		return countingConn{Conn: c, writes: &writes}, err
	}, noIDs)
	h, p := ih(60), peer4(1)
	for _, tc := range []struct {
		name string
		op   func() error
		want int64
	}{
		{"announce", func() error { _, _, _, err := s.Announce(nil, h, storage.UpdateLeecher, 50, p); return err }, 1},
		{"announce, addresses only", func() error {
			_, _, _, err := s.AnnounceAddrs(nil, h, storage.UpdateLeecher, 50, p, false)
			return err
		}, 1},
		{"announce completed", func() error { _, _, _, err := s.Announce(nil, h, storage.UpdateGraduate, 50, p); return err }, 1},
		{"put", func() error { return s.PutSeeder(h, p) }, 1},
		{"scrape", func() error { _, err := s.ScrapeSwarm(h, bittorrent.IPv4); return err }, 1},
		{"peer list alone", func() error { _, _, _, err := s.AnnouncePeers(nil, h, false, 50, peer4(2)); return err }, 1},
		{"announce known large, meeting the bucket", func() error {
			k := s.keys(h)
			s.tiny.setBig(k.rawIH, bittorrent.IPv4, 2)
			_, _, _, err := s.Announce(nil, h, storage.UpdateSeeder, 50, p)
			return err
		}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			must(t, tc.name, tc.op()) // scripts loaded, connections dialled
			before := writes.Load()
			must(t, tc.name, tc.op())
			if got := writes.Load() - before; got != tc.want {
				t.Errorf("%d round trips, want %d", got, tc.want)
			}
			if keys := ownKeys(t, s, h); len(keys) > 1 {
				t.Errorf("keys %q: the swarm of one peer left its bucket", keys)
			}
		})
	}
}
