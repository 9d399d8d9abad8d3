package redis

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
)

// census counts what Redis holds under prefix, independently of the
// store's totals: it walks the keys with SCAN and reads each peer hash's
// length, as an operator checking the gauges would. A swarm counts once
// per kind (native, WebSocket) in each family it has a peer of.
func census(t testing.TB, c redis.UniversalClient, prefix string) storage.Stats {
	t.Helper()
	var st storage.Stats
	if cc, ok := c.(*redis.ClusterClient); ok {
		var mu sync.Mutex
		must(t, "census", cc.ForEachMaster(context.Background(), func(_ context.Context, m *redis.Client) error {
			one := census(t, m, prefix)
			mu.Lock()
			defer mu.Unlock()
			for af := range 2 {
				st.Swarms[af] += one.Swarms[af]
				st.Seeders[af] += one.Seeders[af]
				st.Leechers[af] += one.Leechers[af]
			}
			return nil
		}))
		return st
	}
	ctx := context.Background()
	type swarmFam struct {
		swarm string
		fam   int
	}
	busy := map[swarmFam]bool{}
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, prefix+"{*}*", 1000).Result()
		must(t, "SCAN", err)
		for _, k := range keys {
			rest := strings.TrimPrefix(k, prefix)
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				continue
			}
			suffix := rest[end+1:]
			kind := ""
			if strings.HasPrefix(suffix, "w") {
				kind, suffix = "w", suffix[1:]
			}
			if len(suffix) != 2 || (suffix[0] != '4' && suffix[0] != '6') || (suffix[1] != 's' && suffix[1] != 'l') {
				continue // downloads, sorted sets, …
			}
			n, err := c.HLen(ctx, k).Result()
			must(t, "HLEN", err)
			fam := int(suffix[0]-'4') / 2
			if suffix[1] == 's' {
				st.Seeders[fam] += uint64(n)
			} else {
				st.Leechers[fam] += uint64(n)
			}
			if n > 0 {
				busy[swarmFam{kind + rest[:end], fam}] = true
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	for sf := range busy {
		st.Swarms[sf.fam]++
	}
	return st
}

func peer6(n int) bittorrent.Peer {
	p := peer4(n)
	p.AddrPort = netip.AddrPortFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 15: byte(n)}).WithZone(""), uint16(7000+n))
	return p
}

// TestRacingTrackersTotals: two trackers sharing one Redis create and
// empty the same swarms at the same moments (each one's peers join and
// leave again and again); once both have sent their changes, and one of
// them has collected once, the totals are what Redis holds. The swarm
// count is inferred from the swarm's size read just before the update,
// which another tracker's update can change in between: before the
// recount, the swarm count stayed off by one in about one run in three.
func TestRacingTrackersTotals(t *testing.T) {
	srv := startRedis(t)
	testRacingTrackersTotals(t, func(edit func(*Config)) *PeerStore { return newStore(t, srv, edit) }, srv.Conn(t), 400)
}

// testRacingTrackersTotals is TestRacingTrackersTotals on the stores that
// store makes, on the Redis that c reaches, each peer joining and leaving
// rounds times.
func testRacingTrackersTotals(t *testing.T, store func(func(*Config)) *PeerStore, c redis.UniversalClient, rounds int) {
	// Long keys: an announce's pipeline then spans several of Redis'
	// reads (16 KB each), between which it serves the other tracker's
	// connection, as large batches of short keys do under load. The test
	// collects itself, once.
	a := store(func(c *Config) {
		c.KeyPrefix += strings.Repeat("k", 4000)
		c.PrometheusReportingInterval = 100 * time.Millisecond
	})
	b := store(func(c *Config) {
		c.KeyPrefix = a.cfg.KeyPrefix
		c.PrometheusReportingInterval = 100 * time.Millisecond
	})
	const swarms, workers = 2, 8
	var wg sync.WaitGroup
	for w := range 2 * workers {
		s := a
		if w%2 == 1 {
			s = b
		}
		wg.Go(func() {
			for i := range rounds {
				h := ih(1000 + i%swarms)
				p := peer4(w)
				if i%5 == 0 {
					p = peer6(w)
				}
				u := storage.UpdateLeecher
				if w%3 == 0 {
					u = storage.UpdateSeeder
				}
				for _, u := range []storage.Update{u, storage.UpdateDelete} {
					if _, _, _, err := s.Announce(nil, h, u, 0, p); err != nil {
						t.Errorf("tracker %d: %v", w%2, err)
						return
					}
				}
			}
			// Each worker leaves one peer behind.
			if _, _, _, err := s.Announce(nil, ih(1000+w%swarms), storage.UpdateLeecher, 0, peer4(w)); err != nil {
				t.Errorf("tracker %d: %v", w%2, err)
			}
		})
	}
	wg.Wait()
	_, err := a.Stats()
	must(t, "Stats", err)
	got, err := b.Stats()
	must(t, "Stats", err)
	want := census(t, c, a.cfg.KeyPrefix)
	if want.Leechers[bittorrent.IPv4] != 2*workers {
		t.Fatalf("census %+v: the test left %d leechers, not %d", want, want.Leechers[bittorrent.IPv4], 2*workers)
	}
	if got != want {
		t.Logf("stats %+v before a collection, but Redis holds %+v", got, want)
	}
	a.periodicGC() // every master's turn, on a Cluster
	for _, s := range []*PeerStore{a, b} {
		if got, err := s.Stats(); err != nil || got != want {
			t.Errorf("after a collection: stats %+v (%v), but Redis holds %+v", got, err, want)
		}
	}
}

// crash ends s as a tracker killed (SIGKILL, power loss) ends: its loops
// stop (no more reports, no collection) and its connections close, and
// none of its pending changes is sent. do runs in between, while the
// tracker still serves announces but will never report again.
func crash(t testing.TB, s *PeerStore, do func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	must(t, "stop the loops", s.loops.Stop(ctx))
	// The loops are over: let announces through again, as they were
	// before the kill.
	s.done = make(chan struct{})
	do()
	_ = s.client.Close()
}

// TestTotalsHealAfterCrash: a tracker killed without Stop loses the
// changes it had not sent; one collection of a tracker that survives it
// makes the totals exact again, whatever the survivors held unsent when
// it recounted (neither lost nor counted twice).
func TestTotalsHealAfterCrash(t *testing.T) {
	srv := startRedis(t)
	testTotalsHealAfterCrash(t, func(edit func(*Config)) *PeerStore { return newStore(t, srv, edit) }, srv.Conn(t))
}

// testTotalsHealAfterCrash is TestTotalsHealAfterCrash on the stores
// that store makes, on the Redis that c reaches.
func testTotalsHealAfterCrash(t *testing.T, store func(func(*Config)) *PeerStore, c redis.UniversalClient) {
	// None collects by itself: the test runs the survivor's collection,
	// once. The other survivor reports only when the test says, so that
	// it holds its changes across the recount.
	dead := store(func(cfg *Config) { cfg.PrometheusReportingInterval = 100 * time.Millisecond })
	prefix := dead.cfg.KeyPrefix
	// The survivor's interval sets the recount's notice: 2 × 500 ms, and
	// a margin.
	survivor := store(func(cfg *Config) {
		cfg.KeyPrefix, cfg.PrometheusReportingInterval = prefix, 500*time.Millisecond
	})
	other := store(func(cfg *Config) { cfg.KeyPrefix, cfg.PrometheusReportingInterval = prefix, time.Hour })
	announce := func(s *PeerStore, first, n int, u storage.Update) {
		t.Helper()
		for i := first; i < first+n; i++ {
			p := peer4(i)
			if i%4 == 0 {
				p = peer6(i)
			}
			_, _, _, err := s.Announce(nil, ih(2000+i%7), u, 0, p)
			must(t, "Announce", err)
		}
	}
	announce(survivor, 0, 20, storage.UpdateSeeder)
	crash(t, dead, func() {
		announce(dead, 100, 40, storage.UpdateLeecher)
		announce(dead, 0, 5, storage.UpdateDelete)
		if !holdsChanges(dead) {
			t.Fatal("the killed tracker holds no unsent change")
		}
	})
	got, err := other.Stats()
	must(t, "Stats", err)
	if want := census(t, c, prefix); got == want {
		t.Fatalf("stats %+v right after the crash: the test lost nothing", got)
	}

	collected := make(chan struct{})
	go func() {
		defer close(collected)
		survivor.periodicGC()
	}()
	// The survivors change swarms before the recount's cut, and the
	// other sends its changes only after the recount has read the totals.
	var cut int64
	for wait := time.Now(); cut == 0; cut, _ = c.Get(t.Context(), prefix+"cut").Int64() {
		if time.Since(wait) > 5*time.Second {
			<-collected
			if got, want := other.Stats(); got != census(t, c, prefix) {
				t.Fatalf("no recount announced; after the collection, stats %+v (%v), but Redis holds %+v", got, want, census(t, c, prefix))
			}
			t.Fatal("no recount announced")
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, err = other.Stats() // as its report would, before the cut
	must(t, "Stats", err)
	announce(other, 300, 10, storage.UpdateSeeder)
	announce(survivor, 200, 10, storage.UpdateLeecher)
	announce(other, 5, 3, storage.UpdateDelete)
	if time.Now().UnixMilli() >= cut {
		t.Fatal("the changes took longer than the recount's notice: the test cannot tell where they belong")
	}
	<-collected
	// And after it.
	announce(other, 400, 4, storage.UpdateLeecher)
	announce(survivor, 200, 2, storage.UpdateDelete)
	// No collection since: the totals are exact once each has reported
	// (the other when its Stats says so, the survivor every 500 ms).
	// The survivor's report is due within 500 ms; under -race on a
	// loaded machine its ticker can fire late, so wait for it (up to 10
	// reports' time) rather than a fixed 700 ms.
	want := census(t, c, prefix)
	for _, s := range []*PeerStore{other, survivor} {
		got, err := s.Stats()
		for deadline := time.Now().Add(5 * time.Second); (err != nil || got != want) && time.Now().Before(deadline); got, err = s.Stats() {
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil || got != want {
			t.Errorf("after a collection: stats %+v (%v), but Redis holds %+v", got, err, want)
		}
	}
}

// holdsChanges reports whether s holds changes to the totals unsent.
func holdsChanges(s *PeerStore) bool {
	return s.pending != (pendingTotals{})
}
