package redis

import (
	"context"
	"encoding/hex"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
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
	t.Run("relay", func(t *testing.T) { testRelayCluster(t, c) })
	t.Run("keep_peer_ids=false", func(t *testing.T) {
		s := clusterStore(t, c, noIDs)
		defer s.Stop(context.Background())
		keep := clusterStore(t, c, func(cfg *Config) { cfg.KeyPrefix = s.cfg.KeyPrefix })
		defer keep.Stop(context.Background())
		testNoPeerIDs(t, s, keep, c.Client(t))
	})
	store := func(t *testing.T) func(func(*Config)) *PeerStore {
		return func(edit func(*Config)) *PeerStore {
			s := clusterStore(t, c, edit)
			t.Cleanup(func() { _ = s.Stop(context.Background()) })
			return s
		}
	}
	t.Run("totals heal after a crash", func(t *testing.T) { testTotalsHealAfterCrash(t, store(t), c.Client(t)) })
	// Fewer rounds: an announce of long keys costs a Cluster more, and
	// the swarm count goes wrong within a few.
	t.Run("racing trackers' totals", func(t *testing.T) { testRacingTrackersTotals(t, store(t), c.Client(t), 60) })
}

// TestClusterStatsFewCommands: on a Cluster whose swarms only announces
// changed (plain commands, no script), Stats costs Redis a few commands
// whatever the number of hash slots, as an operator reading INFO
// commandstats across the masters would check: it runs every reporting
// interval, by default every second, on every tracker. Reading each
// slot's totals cost each master 12-18 ms per Stats.
func TestClusterStatsFewCommands(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3, 0)
	s := clusterStore(t, c, func(cfg *Config) {
		cfg.PrometheusReportingInterval = time.Hour
		cfg.GarbageCollectionInterval, cfg.PeerLifetime = time.Hour, 2*time.Hour
	})
	defer s.Stop(context.Background())
	const swarms = 300
	for i := range swarms {
		_, _, _, err := s.Announce(nil, bittorrent.InfoHash{byte(i >> 8), byte(i), 'f', 'c'}, storage.UpdateLeecher, 0, peer4(i))
		must(t, "announce", err)
	}
	cc := c.Client(t)
	ctx := context.Background()
	must(t, "CONFIG RESETSTAT", cc.ForEachMaster(ctx, func(ctx context.Context, m *goredis.Client) error {
		return m.ConfigResetStat(ctx).Err()
	}))
	st, err := s.Stats()
	must(t, "Stats", err)
	want := storage.Stats{}
	want.Swarms[0], want.Leechers[0] = swarms, swarms
	if st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	calls := commandCalls(t, cc)
	var total int64
	for name, n := range calls {
		// Not the test's own, nor a new connection's handshake.
		if name != "config|resetstat" && name != "info" && name != "hello" && !strings.HasPrefix(name, "cluster|") {
			total += n
		}
	}
	t.Logf("one Stats: %d commands over the masters: %v", total, calls)
	if total > 16 {
		t.Errorf("one Stats ran %d commands over the masters (%v): want a few, not some per hash slot", total, calls)
	}
}

// TestClusterStats checks that once update scripts changed the slots'
// totals (PutSeeder runs put.lua), Stats adds them to the totals of all
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
	to := otherMaster(t, cc, from)
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

// TestClusterLocalityMidReshard: with locality, the update scripts also
// write the roles' orders (sorted sets). While a reshard moves the
// swarm's slot, one key of the swarm may already be on the new master
// and the others not: an update or a collection must then write nothing
// (Redis refuses a script up front unless every key it declares is on
// the node), or a peer is stored without being counted in the totals, or
// without its member in its order.
func TestClusterLocalityMidReshard(t *testing.T) {
	c := redistest.StartCluster(t, 3, 0)
	// No reporting: the changes the store holds are where the check
	// reads them.
	s := clusterStore(t, c, func(cfg *Config) {
		cfg.Locality = locality.Config{Enabled: true}.WithDefaults()
		cfg.PrometheusReportingInterval = time.Hour
	})
	defer s.Stop(context.Background())
	ctx := context.Background()
	h := bittorrent.InfoHash{'m', 'i', 'd'}
	p := func(n byte) bittorrent.Peer {
		return bittorrent.Peer{ID: bittorrent.PeerID{n}, AddrPort: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 9, 0, n}), 6881)}
	}
	// Every declared key exists: seeders, leechers, their orders,
	// downloads, the shard's index and totals.
	must(t, "put", s.PutSeeder(h, p(1)))
	must(t, "put", s.PutLeecher(h, bittorrent.Peer{ID: bittorrent.PeerID{5}, AddrPort: netip.MustParseAddrPort("10.7.0.9:6881")}))
	must(t, "put", s.PutLeecher(h, p(2)))
	must(t, "put", s.PutLeecher(h, p(3)))
	must(t, "graduate", s.GraduateLeecher(h, p(3)))
	// IPv6 peers: every key collection declares exists too.
	must(t, "put", s.PutSeeder(h, bittorrent.Peer{ID: bittorrent.PeerID{6}, AddrPort: netip.MustParseAddrPort("[fd00::6]:6881")}))
	must(t, "put", s.PutLeecher(h, bittorrent.Peer{ID: bittorrent.PeerID{7}, AddrPort: netip.MustParseAddrPort("[fd00::7]:6881")}))
	// Enough peers in each role that every role keeps an order (a role
	// of a few peers is its hash alone: put_local.lua).
	for n := byte(10); n < 16; n++ {
		must(t, "put", s.PutSeeder(h, p(n)))
		must(t, "put", s.PutLeecher(h, p(n+100)))
		v6 := netip.AddrFrom16([16]byte{0: 0xfd, 15: n})
		must(t, "put", s.PutSeeder(h, bittorrent.Peer{ID: bittorrent.PeerID{n}, AddrPort: netip.AddrPortFrom(v6, 6881)}))
		must(t, "put", s.PutLeecher(h, bittorrent.Peer{ID: bittorrent.PeerID{n}, AddrPort: netip.AddrPortFrom(v6, 6882)}))
	}
	k := s.keys(h)
	cc := c.Client(t)
	// Nothing adds to the shard's index any more; it is declared (for
	// its slot), so make it exist too.
	must(t, "SADD", cc.SAdd(ctx, k.shard.index, "x").Err())

	from, err := cc.MasterForKey(ctx, k.roles[0][1])
	must(t, "MasterForKey", err)
	to := otherMaster(t, cc, from)
	sl := slot([]byte(hex.EncodeToString(h[:])))
	fromID, err := from.ClusterMyID(ctx).Result()
	must(t, "MYID", err)
	toID, err := to.ClusterMyID(ctx).Result()
	must(t, "MYID", err)
	must(t, "SETSLOT IMPORTING", to.Do(ctx, "cluster", "setslot", sl, "importing", fromID).Err())
	defer to.Do(ctx, "cluster", "setslot", sl, "stable")
	must(t, "SETSLOT MIGRATING", from.Do(ctx, "cluster", "setslot", sl, "migrating", toID).Err())
	defer from.Do(ctx, "cluster", "setslot", sl, "stable")
	host, port, _ := net.SplitHostPort(to.Options().Addr)
	// The leechers' order moves first.
	moved := k.ordered[0][1]
	must(t, "MIGRATE", from.Migrate(ctx, host, port, moved, 0, 5*time.Second).Err())

	// check fails unless the leechers stored on the old master, those
	// counted in its slot's totals (by the update scripts) and in the
	// totals of all (what collection removed), and those in the moved
	// order agree.
	check := func(what string) {
		t.Helper()
		leechers, err := from.HLen(ctx, k.roles[0][1]).Result()
		must(t, "HLEN", err)
		counted, err := from.HGet(ctx, k.shard.totals, "l4").Int64()
		must(t, "HGET", err)
		all, err := cc.HGet(ctx, s.oneShard.totals, "l4").Int64()
		if err != goredis.Nil {
			must(t, "HGET", err)
		}
		counted += all + s.pending[2].Load()
		// ASKING: the importing master answers for a key of the slot.
		pipe := to.Pipeline()
		pipe.Do(ctx, "asking")
		inOrder := pipe.ZCard(ctx, moved)
		_, err = pipe.Exec(ctx)
		must(t, "ZCARD", err)
		if leechers != counted || leechers != inOrder.Val() {
			t.Errorf("%s: %d leechers stored, %d counted in the totals, %d in their order: the update was half applied",
				what, leechers, counted, inOrder.Val())
		}
		seeders, err := from.HLen(ctx, k.roles[0][0]).Result()
		must(t, "HLEN", err)
		if n, err := from.ZCard(ctx, k.ordered[0][0]).Result(); err != nil || n != seeders {
			t.Errorf("%s: %d seeders stored, %d in their order (%v)", what, seeders, n, err)
		}
	}
	// A new leecher.
	tryAgain := testutil.ToFloat64(errorsByReason.WithLabelValues(reasonTryAgain))
	t.Logf("put mid-reshard: %v", s.PutLeecher(h, p(4)))
	if n := testutil.ToFloat64(errorsByReason.WithLabelValues(reasonTryAgain)); n <= tryAgain {
		t.Errorf("a put refused for a moving slot is not counted as %q", reasonTryAgain)
	}
	check("put")
	// A leecher leaving, then collection.
	t.Logf("delete mid-reshard: %v", s.DeletePeer(h, p(2)))
	check("delete")
	t.Logf("collection mid-reshard: %v", s.CollectGarbage(time.Now().Add(time.Hour)))
	check("collection")
}

// otherMaster returns a master of the cluster other than m.
func otherMaster(t *testing.T, cc *goredis.ClusterClient, m *goredis.Client) *goredis.Client {
	t.Helper()
	var mu sync.Mutex
	var other *goredis.Client
	must(t, "ForEachMaster", cc.ForEachMaster(context.Background(), func(ctx context.Context, c *goredis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		if c.Options().Addr != m.Options().Addr {
			other = c
		}
		return nil
	}))
	return other
}

// TestClusterRecountSplitTurns: when two trackers share a round's
// masters (each took some of the turns), their walks add up to one
// recount: the totals are exact after the round, corrected once, not
// once per tracker nor by a tracker that counted only its own masters.
func TestClusterRecountSplitTurns(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3, 0)
	// The cut 2.1 s ahead: time enough for b to join it.
	edit := func(cfg *Config) { cfg.PrometheusReportingInterval = time.Second }
	a := clusterStore(t, c, edit)
	defer a.Stop(context.Background())
	b := clusterStore(t, c, edit, func(cfg *Config) { cfg.KeyPrefix = a.cfg.KeyPrefix })
	defer b.Stop(context.Background())
	for i := range 60 {
		p := peer4(i)
		if i%3 == 0 {
			p = peer6(i)
		}
		_, _, _, err := a.Announce(nil, bittorrent.InfoHash{byte(i), 's', 't'}, storage.UpdateLeecher, 0, p)
		must(t, "announce", err)
	}
	cc := c.Client(t)
	ctx := context.Background()
	// The totals drift (as after a crash or a race).
	must(t, "HINCRBY", cc.HIncrBy(ctx, a.oneShard.totals, "l4", 17).Err())
	must(t, "HINCRBY", cc.HIncrBy(ctx, a.oneShard.totals, "w6", -3).Err())
	want := census(t, cc, a.cfg.KeyPrefix)
	if got, err := a.Stats(); err != nil || got == want {
		t.Fatalf("stats %+v (%v) before the recount: the test made no drift", got, err)
	}
	ranges, err := a.slotRanges(ctx)
	must(t, "CLUSTER SLOTS", err)
	ranges = perMaster(ranges)
	if len(ranges) != 3 {
		t.Fatalf("%d masters, want 3", len(ranges))
	}
	// b's turn on one master, taken ahead: a collects the two others.
	held := a.gcKey(ranges[1].first)
	must(t, "SET", cc.Set(ctx, held, "1", time.Minute).Err())
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		a.periodicGC()
	}()
	for wait := time.Now(); ; time.Sleep(5 * time.Millisecond) {
		if n, _ := cc.Exists(ctx, a.cutKey()).Result(); n > 0 {
			break
		}
		if time.Since(wait) > 10*time.Second {
			t.Fatal("no recount announced")
		}
	}
	must(t, "DEL", cc.Del(ctx, held).Err())
	b.periodicGC() // joins a's cut, walks the master a left
	<-collected
	for _, s := range []*PeerStore{a, b} {
		if got, err := s.Stats(); err != nil || got != want {
			t.Errorf("after the round: stats %+v (%v), but Redis holds %+v", got, err, want)
		}
	}
	must(t, "KEYS", cc.ForEachMaster(ctx, func(ctx context.Context, m *goredis.Client) error {
		keys, err := m.Keys(ctx, a.cfg.KeyPrefix+"r*").Result()
		if len(keys) != 0 {
			t.Errorf("tallies left after the round: %v", keys)
		}
		return err
	}))
}

// BenchmarkStatsCluster is one Stats (every reporting interval, on every
// tracker) on a Redis Cluster of three masters whose swarms announces
// changed: redis-µs/op is every command's usec in INFO commandstats,
// summed over the masters.
func BenchmarkStatsCluster(b *testing.B) {
	c := redistest.StartCluster(b, 3, 0)
	s := clusterStore(b, c, func(cfg *Config) {
		cfg.PrometheusReportingInterval = time.Hour
		cfg.GarbageCollectionInterval, cfg.PeerLifetime = time.Hour, 2*time.Hour
	})
	defer s.Stop(context.Background())
	for i := range 1000 {
		_, _, _, err := s.Announce(nil, bittorrent.InfoHash{byte(i >> 8), byte(i), 'b', 's'}, storage.UpdateLeecher, 0, peer4(i))
		must(b, "announce", err)
	}
	if _, err := s.Stats(); err != nil {
		b.Fatal(err)
	}
	cc := c.Client(b)
	usec := func() (total float64) {
		var mu sync.Mutex
		must(b, "INFO", cc.ForEachMaster(context.Background(), func(ctx context.Context, m *goredis.Client) error {
			all, _ := commandUsec(b, m)
			mu.Lock()
			defer mu.Unlock()
			total += all
			return nil
		}))
		return total
	}
	before := usec()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := s.Stats(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric((usec()-before)/float64(b.N), "redis-µs/op")
}
