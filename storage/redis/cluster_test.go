package redis

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/locality"
	"github.com/chihaya/chihaya/storage/redis/redistest"
	"github.com/chihaya/chihaya/storage/storagetest"
)

// clusterStore builds a store on c, in Cluster mode.
func clusterStore(tb testing.TB, c *redistest.Cluster, edit ...func(*Config)) *PeerStore {
	tb.Helper()
	cfg := testConfig("127.0.0.1:1", append([]func(*Config){func(cfg *Config) {
		cfg.ClusterAddrs = c.Addrs()[:2] // seeds: the others are found
	}}, edit...)...)
	s, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestPeerStoreCluster(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3, 1)
	storagetest.Run(t, func(t *testing.T) storage.PeerStore { return clusterStore(t, c) })
	t.Run("locality", func(t *testing.T) {
		storagetest.RunLocality(t, func(t *testing.T, lc locality.Config) storage.PeerStore {
			return clusterStore(t, c, func(cfg *Config) { cfg.Locality = lc })
		})
	})
	t.Run("lister", func(t *testing.T) {
		storagetest.RunLister(t, func(t *testing.T, lc locality.Config) storage.PeerStore {
			return clusterStore(t, c, func(cfg *Config) { cfg.Locality = lc })
		})
	})
	t.Run("spread", func(t *testing.T) { testClusterSpread(t, c) })
	t.Run("collection on every master", func(t *testing.T) { testClusterCollection(t, c) })
}

// TestClusterStats checks that Stats sums the totals of every slot
// without a command (and its allocations) per slot: it runs every
// reporting interval, by default every second, on every tracker. While a
// slot is migrating, the sum is still exact. Not parallel, so that
// AllocsPerRun counts the store's allocations alone.
func TestClusterStats(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0)
	s := clusterStore(t, c)
	defer s.Stop(context.Background())
	const swarms = 500
	for i := range swarms {
		must(t, "put", s.PutSeeder(bittorrent.InfoHash{byte(i >> 8), byte(i), 's', 't'}, peer4(i)))
	}
	want := storage.Stats{}
	want.Swarms[0], want.Seeders[0] = swarms, swarms
	st, err := s.Stats()
	must(t, "Stats", err)
	if st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	allocs := testing.AllocsPerRun(3, func() { _, _ = s.Stats() })
	t.Logf("%.0f allocations per Stats", allocs)
	if allocs >= 16384 {
		t.Errorf("%.0f allocations per Stats: one or more per hash slot", allocs)
	}

	// A slot marked migrating on its master, its totals absent there: the
	// per-node sum is refused, the slots are read one by one.
	ctx := context.Background()
	cc := c.Client(t)
	empty := 0
	for ; empty < 16383; empty++ {
		n, err := cc.Exists(ctx, s.slotShards[empty].totals).Result()
		must(t, "EXISTS", err)
		if n == 0 {
			break
		}
	}
	key := s.slotShards[empty].totals
	from, err := cc.MasterForKey(ctx, key)
	must(t, "MasterForKey", err)
	fromID, err := from.ClusterMyID(ctx).Result()
	must(t, "MYID", err)
	var to *goredis.Client
	var toMu sync.Mutex // ForEachMaster calls on every master at once
	must(t, "ForEachMaster", cc.ForEachMaster(ctx, func(ctx context.Context, m *goredis.Client) error {
		if m.Options().Addr != from.Options().Addr {
			toMu.Lock()
			to = m
			toMu.Unlock()
		}
		return nil
	}))
	toID, err := to.ClusterMyID(ctx).Result()
	must(t, "MYID", err)
	// As a reshard starts moving a slot: importing on the target, then
	// migrating on the source.
	must(t, "SETSLOT IMPORTING", to.Do(ctx, "cluster", "setslot", empty, "importing", fromID).Err())
	defer to.Do(ctx, "cluster", "setslot", empty, "stable")
	must(t, "SETSLOT MIGRATING", from.Do(ctx, "cluster", "setslot", empty, "migrating", toID).Err())
	defer from.Do(ctx, "cluster", "setslot", empty, "stable")
	st, err = s.Stats()
	must(t, "Stats while a slot migrates", err)
	if st != want {
		t.Errorf("stats while a slot migrates %+v, want %+v", st, want)
	}
}

// testClusterSpread stores 3000 swarms and checks that every master holds
// swarm keys, none more than 2.5 times another, and that the totals are
// summed over every slot's shard.
func testClusterSpread(t *testing.T, c *redistest.Cluster) {
	s := clusterStore(t, c)
	defer s.Stop(context.Background())
	const swarms = 3000
	storagetest.Parallel(t, 8, func(w int) error {
		for i := w; i < swarms; i += 8 {
			if err := s.PutLeecher(bittorrent.InfoHash{byte(i >> 8), byte(i), 's', 'p'}, peer4(i)); err != nil {
				return err
			}
		}
		return nil
	})
	st, err := s.Stats()
	must(t, "Stats", err)
	if st.Swarms[0] != swarms || st.Leechers[0] != swarms {
		t.Errorf("stats %+v, want %d swarms and leechers", st, swarms)
	}
	cc := c.Client(t)
	var mu sync.Mutex
	counts := map[string]int{}
	err = cc.ForEachMaster(context.Background(), func(ctx context.Context, m *goredis.Client) error {
		keys, err := m.Keys(ctx, s.cfg.KeyPrefix+"{*}4l").Result()
		mu.Lock()
		counts[m.Options().Addr] = len(keys)
		mu.Unlock()
		return err
	})
	must(t, "KEYS", err)
	lo, hi := swarms, 0
	for _, n := range counts {
		lo, hi = min(lo, n), max(hi, n)
	}
	t.Logf("swarms per master: %v", counts)
	if len(counts) != 3 || lo == 0 || float64(hi) > 2.5*float64(lo) {
		t.Errorf("swarms per master %v: want 3 masters, none more than 2.5 times another", counts)
	}
}

// TestClusterNotACluster: cluster_addrs naming a server that is not in
// cluster mode, and a cluster node given as redis_broker, fail the start
// with errors that say so.
func TestClusterMisconfigured(t *testing.T) {
	t.Parallel()
	single := startRedis(t)
	_, err := New(Config{ClusterAddrs: []string{single.Addr}}.WithDefaults())
	if err == nil || !strings.Contains(err.Error(), "does not serve a Redis Cluster") {
		t.Errorf("cluster_addrs of a single server: %v", err)
	}
	node := startRedis(t, "cluster-enabled yes", "cluster-config-file nodes.conf", "cluster-port "+strconv.Itoa(redistest.FreePort(t)))
	_, err = New(Config{RedisBroker: "redis://" + node.Addr + "/0"}.WithDefaults())
	if err == nil || !strings.Contains(err.Error(), "is a Redis Cluster node") {
		t.Errorf("redis_broker of a cluster node: %v", err)
	}
}

// testClusterCollection runs two stores sharing a key prefix, as two
// trackers do, with a short peer lifetime: every stale peer of every
// master is collected, and each master's turn is taken by one of them
// (its gc key is on that master).
func testClusterCollection(t *testing.T, c *redistest.Cluster) {
	short := func(cfg *Config) {
		cfg.GarbageCollectionInterval, cfg.PeerLifetime = 500*time.Millisecond, time.Second
	}
	a := clusterStore(t, c, short)
	defer a.Stop(context.Background())
	b := clusterStore(t, c, short, func(cfg *Config) { cfg.KeyPrefix = a.cfg.KeyPrefix })
	defer b.Stop(context.Background())
	const swarms = 300
	for i := range swarms {
		must(t, "put", a.PutLeecher(bittorrent.InfoHash{byte(i >> 8), byte(i), 'g', 'c'}, peer4(i)))
	}
	// Generous: under the race detector on a busy machine a round over
	// the 16384 slots takes seconds.
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := b.Stats()
		must(t, "Stats", err)
		if st == (storage.Stats{}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("60s on, stats %+v: stale peers not collected", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A turn lasts 0.9 gc_interval: look a few times over two intervals.
	cc := c.Client(t)
	turns := map[string]int{}
	var mu sync.Mutex
	for range 30 {
		must(t, "KEYS", cc.ForEachMaster(context.Background(), func(ctx context.Context, m *goredis.Client) error {
			keys, err := m.Keys(ctx, a.cfg.KeyPrefix+"{*}gc").Result()
			mu.Lock()
			turns[m.Options().Addr] += len(keys)
			mu.Unlock()
			return err
		}))
		time.Sleep(20 * time.Millisecond)
	}
	for addr, n := range turns {
		if n == 0 {
			t.Errorf("master %s never held a collection turn: %v", addr, turns)
		}
	}
}
