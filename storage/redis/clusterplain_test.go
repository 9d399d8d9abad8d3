package redis

import (
	"context"
	"encoding/hex"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/redis/redistest"
)

// clusterDialing is clusterStore with every connection dialled through
// dial, from the first, and no collection or reporting meanwhile (their
// round trips would be counted too).
func clusterDialing(tb testing.TB, c *redistest.Cluster, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *PeerStore {
	tb.Helper()
	return startDialing(tb, testConfig("127.0.0.1:1", func(cfg *Config) {
		cfg.ClusterAddrs = c.Addrs()[:2]
		cfg.GarbageCollectionInterval, cfg.PeerLifetime = time.Hour, 2*time.Hour
		cfg.PrometheusReportingInterval = time.Hour
	}), dial)
}

// commandCalls sums the calls of each command over every master of the
// cluster (INFO commandstats).
func commandCalls(t *testing.T, cc *goredis.ClusterClient) map[string]int64 {
	t.Helper()
	calls := map[string]int64{}
	var mu sync.Mutex
	must(t, "INFO commandstats", cc.ForEachMaster(context.Background(), func(ctx context.Context, m *goredis.Client) error {
		info, err := m.Info(ctx, "commandstats").Result()
		mu.Lock()
		defer mu.Unlock()
		for _, line := range strings.Split(info, "\r\n") {
			name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":")
			if !ok || name == line {
				continue
			}
			v, _, _ := strings.Cut(strings.TrimPrefix(rest, "calls="), ",")
			n, _ := strconv.ParseInt(v, 10, 64)
			calls[name] += n
		}
		return err
	}))
	return calls
}

// TestClusterAnnounceIsPlain: on a Redis Cluster, as on a single Redis, a
// native announce is one round trip whose update is plain commands in one
// MULTI/EXEC (no script: a script costs Redis about as much to start as
// the announce's commands together), sent to the master of the swarm's
// slot, whatever its event, and it answers and updates exactly.
func TestClusterAnnounceIsPlain(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3, 0)
	var writes atomic.Int64
	s := clusterDialing(t, c, func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		return countingConn{Conn: conn, writes: &writes}, err
	})
	cc := c.Client(t)
	for i := range 100 {
		must(t, "put", s.PutLeecher(ih(1), peer4(i)))
	}
	must(t, "put", s.PutSeeder(ih(1), peer4(100)))
	// The first pipeline to a master dials its connection: a peer that
	// comes and goes first.
	for _, u := range []storage.Update{storage.UpdateLeecher, storage.UpdateDelete} {
		_, _, _, err := s.Announce(nil, ih(1), u, 50, peer4(999))
		must(t, "announce", err)
	}
	tests := []struct {
		name string
		u    storage.Update
		addr bool
		// The announcer's role before, and the counts answered.
		role           storage.Role
		seeders, leech uint32
	}{
		{"started as a leecher", storage.UpdateLeecher, false, storage.Absent, 1, 100},
		{"again as a leecher", storage.UpdateLeecher, false, storage.Leecher, 1, 101},
		{"as a seeder", storage.UpdateSeeder, false, storage.Leecher, 1, 101},
		{"completed", storage.UpdateGraduate, false, storage.Seeder, 2, 100},
		{"stopped", storage.UpdateDelete, false, storage.Seeder, 2, 100},
		{"addresses only", storage.UpdateLeecher, true, storage.Absent, 1, 100},
	}
	p := peer4(500)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, w := commandCalls(t, cc), writes.Load()
			var (
				peers  []bittorrent.Peer
				counts storage.Counts
				role   storage.Role
				err    error
			)
			if tc.addr {
				peers, counts, role, err = s.AnnounceAddrs(nil, ih(1), tc.u, 50, p, true)
			} else {
				peers, counts, role, err = s.Announce(nil, ih(1), tc.u, 50, p)
			}
			must(t, "announce", err)
			if got := writes.Load() - w; got != 1 {
				t.Errorf("%d round trips, want 1", got)
			}
			after := commandCalls(t, cc)
			if n := after["evalsha"] - before["evalsha"] + after["eval"] - before["eval"]; n != 0 {
				t.Errorf("%d scripts run, want none", n)
			}
			if n := after["exec"] - before["exec"]; n != 1 {
				t.Errorf("%d EXECs, want the update in one MULTI/EXEC", n)
			}
			if role != tc.role || counts.Seeders != tc.seeders || counts.Leechers != tc.leech {
				t.Errorf("role %v, counts %+v; want %v, %d seeders, %d leechers", role, counts, tc.role, tc.seeders, tc.leech)
			}
			if tc.u != storage.UpdateDelete && len(peers) == 0 {
				t.Error("no peers answered")
			}
			for _, q := range peers {
				if q.AddrPort == p.AddrPort {
					t.Errorf("the announcer answered to itself")
				}
			}
		})
	}
	// The totals: the changes reached the shard of the swarm's slot.
	st, err := s.Stats()
	must(t, "Stats", err)
	if st.Swarms[0] != 1 || st.Seeders[0] != 1 || st.Leechers[0] != 101 {
		t.Errorf("stats %+v, want 1 swarm, 1 seeder and 101 leechers", st)
	}
	d, err := cc.Get(context.Background(), s.keys(ih(1)).downloads).Int64()
	if err != nil || d != 1 {
		t.Errorf("downloads %d (%v), want 1", d, err)
	}
}

// migrating marks the slot of h as moving from its master to another,
// as a reshard does before it moves the keys, and returns the two
// masters; the slot is made stable again when the test ends.
func migrating(t *testing.T, cc *goredis.ClusterClient, s *PeerStore, h bittorrent.InfoHash) (from, to *goredis.Client) {
	t.Helper()
	ctx := context.Background()
	k := s.keys(h)
	from, err := cc.MasterForKey(ctx, k.roles[0][0])
	must(t, "MasterForKey", err)
	to = otherMaster(t, cc, from)
	sl := slot([]byte(hex.EncodeToString(h[:])))
	fromID, err := from.ClusterMyID(ctx).Result()
	must(t, "MYID", err)
	toID, err := to.ClusterMyID(ctx).Result()
	must(t, "MYID", err)
	must(t, "SETSLOT IMPORTING", to.Do(ctx, "cluster", "setslot", sl, "importing", fromID).Err())
	must(t, "SETSLOT MIGRATING", from.Do(ctx, "cluster", "setslot", sl, "migrating", toID).Err())
	t.Cleanup(func() {
		to.Do(ctx, "cluster", "setslot", sl, "stable")
		from.Do(ctx, "cluster", "setslot", sl, "stable")
	})
	return from, to
}

// migrate moves keys from one master to another (MIGRATE).
func migrate(t *testing.T, from, to *goredis.Client, keys ...string) {
	t.Helper()
	host, port, _ := net.SplitHostPort(to.Options().Addr)
	for _, k := range keys {
		must(t, "MIGRATE "+k, from.Migrate(context.Background(), host, port, k, 0, 5*time.Second).Err())
	}
}

// pendingOf returns the store's pending changes to the totals.
func pendingOf(s *PeerStore) [6]int64 {
	var v [6]int64
	for i := range v {
		v[i] = s.pending[i].Load()
	}
	return v
}

// TestClusterPlainMidReshard: while a reshard moves a swarm's slot, Redis
// refuses a plain update whose keys are not all where the command went
// (ASK, TRYAGAIN, MOVED, then EXECABORT): the store sends the whole
// transaction again to the node named, with ASKING for an ASK, never a
// part of it, and counts its changes to the totals once, only when Redis
// ran it.
func TestClusterPlainMidReshard(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3, 0)
	s := clusterStore(t, c, func(cfg *Config) { cfg.PrometheusReportingInterval = time.Hour })
	defer s.Stop(context.Background())
	cc := c.Client(t)
	ctx := context.Background()
	p := func(n byte) bittorrent.Peer {
		return bittorrent.Peer{ID: bittorrent.PeerID{n}, AddrPort: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 8, 0, n}), 6881)}
	}
	// fill gives swarm h a seeder, two leechers and a download, through
	// announces (plain): every key of the swarm exists.
	fill := func(h bittorrent.InfoHash) {
		t.Helper()
		for _, a := range []struct {
			u storage.Update
			n byte
		}{{storage.UpdateSeeder, 1}, {storage.UpdateLeecher, 2}, {storage.UpdateLeecher, 3}, {storage.UpdateLeecher, 4}, {storage.UpdateGraduate, 4}} {
			_, _, _, err := s.Announce(nil, h, a.u, 10, p(a.n))
			must(t, "announce", err)
		}
	}
	lens := func(c *goredis.Client, asking bool, h bittorrent.InfoHash) (seeders, leechers, downloads int64) {
		t.Helper()
		k := s.keys(h)
		pipe := c.Pipeline()
		var cmds [3]goredis.Cmder
		for i, f := range []func() goredis.Cmder{
			func() goredis.Cmder { return pipe.HLen(ctx, k.roles[0][0]) },
			func() goredis.Cmder { return pipe.HLen(ctx, k.roles[0][1]) },
			func() goredis.Cmder { return pipe.Get(ctx, k.downloads) },
		} {
			if asking {
				pipe.Do(ctx, "asking")
			}
			cmds[i] = f()
		}
		_, _ = pipe.Exec(ctx)
		seeders, _ = cmds[0].(*goredis.IntCmd).Result()
		leechers, _ = cmds[1].(*goredis.IntCmd).Result()
		downloads, _ = cmds[2].(*goredis.StringCmd).Int64()
		return
	}

	// moving fills swarm h, marks its slot migrating and moves the keys
	// of it that keys names to the other master; pend is the store's
	// pending changes before.
	moving := func(t *testing.T, h bittorrent.InfoHash, keys func(k swarmKeys) []string) (pend [6]int64, from, to *goredis.Client) {
		t.Helper()
		fill(h)
		pend = pendingOf(s)
		from, to = migrating(t, cc, s, h)
		migrate(t, from, to, keys(s.keys(h))...)
		return pend, from, to
	}
	every := func(k swarmKeys) []string { return []string{k.roles[0][0], k.roles[0][1], k.downloads} }

	t.Run("every key moved, the slot still migrating: ASK, the whole transaction again with ASKING", func(t *testing.T) {
		h := bittorrent.InfoHash{'a', 's', 'k'}
		pend, from, to := moving(t, h, every)
		_, counts, role, err := s.Announce(nil, h, storage.UpdateGraduate, 10, p(2))
		must(t, "completed mid-reshard", err)
		if role != storage.Leecher || counts != (storage.Counts{Seeders: 2, Leechers: 2, Downloads: 1}) {
			t.Errorf("role %v, counts %+v: want a leecher before, 2 seeders, 2 leechers, 1 download", role, counts)
		}
		if sd, l, d := lens(to, true, h); sd != 3 || l != 1 || d != 2 {
			t.Errorf("on the importing master: %d seeders, %d leechers, %d downloads; want 3, 1, 2 (applied once)", sd, l, d)
		}
		if sd, l, _ := lens(from, false, h); sd != 0 || l != 0 {
			t.Errorf("on the migrating master: %d seeders, %d leechers left behind; want none", sd, l)
		}
		got := pendingOf(s)
		if got[1]-pend[1] != 1 || got[2]-pend[2] != -1 || got[0] != pend[0] {
			t.Errorf("pending totals %v, were %v: want one seeder more, one leecher less, once", got, pend)
		}
	})

	t.Run("the download count moved, the peers not: the update applied, the count read again", func(t *testing.T) {
		h := bittorrent.InfoHash{'d', 'l'}
		_, from, _ := moving(t, h, func(k swarmKeys) []string { return []string{k.downloads} })
		_, counts, role, err := s.Announce(nil, h, storage.UpdateLeecher, 10, p(9))
		must(t, "announce mid-reshard", err)
		if role != storage.Absent || counts != (storage.Counts{Seeders: 2, Leechers: 2, Downloads: 1}) {
			t.Errorf("role %v, counts %+v: want absent before, 2 seeders, 2 leechers, 1 download", role, counts)
		}
		if sd, l, _ := lens(from, false, h); sd != 2 || l != 3 {
			t.Errorf("%d seeders, %d leechers: want 2 and 3 (applied once)", sd, l)
		}
	})

	t.Run("one hash moved, the other not: refused whole, nothing applied or counted", func(t *testing.T) {
		h := bittorrent.InfoHash{'s', 'p', 'l', 'i', 't'}
		pend, from, to := moving(t, h, func(k swarmKeys) []string { return []string{k.roles[0][1]} })
		// A leecher becoming a seeder: HSET in the seeders (still
		// here), HDEL from the leechers (moved). Redis answers TRYAGAIN
		// on both masters until the slot's keys are together.
		_, _, _, err := s.Announce(nil, h, storage.UpdateSeeder, 10, p(3))
		if err == nil {
			t.Fatal("an update whose keys are split between two masters succeeded")
		}
		t.Logf("refused: %v", err)
		if sd, _, _ := lens(from, false, h); sd != 2 {
			t.Errorf("%d seeders on the migrating master, want 2: half applied", sd)
		}
		if _, l, _ := lens(to, true, h); l != 2 {
			t.Errorf("%d leechers on the importing master, want 2: half applied", l)
		}
		if got := pendingOf(s); got != pend {
			t.Errorf("pending totals %v, were %v: a refused update was counted", got, pend)
		}
	})

	t.Run("the slot moved: MOVED, the whole announce on the new master", func(t *testing.T) {
		h := bittorrent.InfoHash{'m', 'o', 'v', 'e', 'd'}
		pend, _, to := moving(t, h, every)
		toID, err := to.ClusterMyID(ctx).Result()
		must(t, "MYID", err)
		sl := slot([]byte(hex.EncodeToString(h[:])))
		// The reshard's end: every master is told the slot's new owner
		// (the store's slot map is now stale).
		must(t, "ForEachMaster", cc.ForEachMaster(ctx, func(ctx context.Context, m *goredis.Client) error {
			return m.Do(ctx, "cluster", "setslot", sl, "node", toID).Err()
		}))
		_, counts, role, err := s.Announce(nil, h, storage.UpdateDelete, 10, p(1))
		must(t, "stopped after the slot moved", err)
		if role != storage.Seeder || counts != (storage.Counts{Seeders: 2, Leechers: 2, Downloads: 1}) {
			t.Errorf("role %v, counts %+v: want a seeder before, 2 seeders, 2 leechers, 1 download", role, counts)
		}
		if sd, l, _ := lens(to, false, h); sd != 1 || l != 2 {
			t.Errorf("on the new master: %d seeders, %d leechers; want 1 and 2", sd, l)
		}
		if got := pendingOf(s); got[1]-pend[1] != -1 {
			t.Errorf("pending totals %v, were %v: want one seeder less, once", got, pend)
		}
	})
}

// BenchmarkAnnounceParallelCluster is BenchmarkAnnounceParallel on a
// Redis Cluster of three masters: swarms of 20 over 1,000 torrents, 16
// announces in progress per CPU. Redis' figures are summed over the
// masters: redis-µs/op is every command's usec in INFO commandstats,
// redis-cpu-µs/op the masters' CPU time (INFO cpu), per announce.
func BenchmarkAnnounceParallelCluster(b *testing.B) {
	const swarms, size = 1000, 20
	c := redistest.StartCluster(b, 3, 0)
	s := clusterStore(b, c, func(cfg *Config) { cfg.PrometheusReportingInterval = time.Hour })
	defer s.Stop(context.Background())
	fill(b, s, swarms, size)
	cc := c.Client(b)
	ctx := context.Background()
	masters := func(f func(m *goredis.Client)) {
		var mu sync.Mutex
		must(b, "ForEachMaster", cc.ForEachMaster(ctx, func(ctx context.Context, m *goredis.Client) error {
			mu.Lock()
			defer mu.Unlock()
			f(m)
			return nil
		}))
	}
	var rcpu float64
	masters(func(m *goredis.Client) {
		must(b, "CONFIG RESETSTAT", m.ConfigResetStat(ctx).Err())
		rcpu -= redisCPU(b, m)
	})
	cpu := processCPU(b)
	runParallel(b, s, swarms, size, false)
	cpu = processCPU(b) - cpu
	var all, top float64
	masters(func(m *goredis.Client) {
		a, t := commandUsec(b, m)
		all, top = all+a, top+t
		rcpu += redisCPU(b, m)
		if testing.Verbose() {
			info, _ := m.Info(ctx, "commandstats").Result()
			b.Log(m.Options().Addr, info)
		}
	})
	n := float64(b.N)
	b.ReportMetric(all/n, "redis-µs/op")
	b.ReportMetric(top/n, "redis-top-µs/op")
	b.ReportMetric(rcpu*1e6/n, "redis-cpu-µs/op")
	b.ReportMetric(cpu*1e6/n, "cpu-µs/op")
}
