package redis

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/locality"
	"github.com/chihaya/chihaya/storage/storagetest"
)

// haRedis is a master, a replica and one sentinel watching them, started
// by a test.
type haRedis struct {
	master, replica, sentinel *server
}

// startHA starts the three and waits until the sentinel knows the replica
// and the replica is in sync, so that a failover can happen.
func startHA(t testing.TB) *haRedis {
	t.Helper()
	h := &haRedis{master: startRedis(t)}
	host, port := splitAddr(h.master.Addr)
	h.replica = startRedis(t, "replicaof "+host+" "+port)
	h.sentinel = startSentinel(t,
		"sentinel monitor mymaster "+host+" "+port+" 1",
		"sentinel down-after-milliseconds mymaster 1000",
		"sentinel failover-timeout mymaster 10000",
	)
	ctx := context.Background()
	sc := h.sentinel.Conn(t)
	rc := h.replica.Conn(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		replicas, err := sc.Do(ctx, "SENTINEL", "REPLICAS", "mymaster").Slice()
		info, _ := rc.Info(ctx, "replication").Result()
		if err == nil && len(replicas) > 0 && strings.Contains(info, "master_link_status:up") {
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("sentinel did not see the replica within 30s (%v); sentinel log:\n%s", err, h.sentinel.LogText())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func splitAddr(a string) (host, port string) {
	i := strings.LastIndexByte(a, ':')
	return a[:i], a[i+1:]
}

// waitReplicated blocks until the replica has every write the master has
// acknowledged, so a test can kill the master without losing them. (WAIT
// would not do: it only waits for the writes of the connection it is sent
// on, and the store wrote through its own connections.)
func (h *haRedis) waitReplicated(t testing.TB) {
	t.Helper()
	want := replOffset(t, h.master.Conn(t), "master_repl_offset")
	rc := h.replica.Conn(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := replOffset(t, rc, "slave_repl_offset")
		if got >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica at offset %d, master at %d after 10s", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// replOffset reads a replication offset from INFO replication.
func replOffset(t testing.TB, c *redis.Client, field string) int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "replication").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("INFO replication %s: %v", field, err)
			}
			return n
		}
	}
	t.Fatalf("INFO replication has no %s:\n%s", field, info)
	return 0
}

// TestPeerStoreSentinel runs the conformance suite on a master found
// through a sentinel, and the locality rules.
func TestPeerStoreSentinel(t *testing.T) {
	t.Parallel()
	h := startHA(t)
	storagetest.Run(t, func(t *testing.T) storage.PeerStore {
		return newUnstopped(t, h.master, func(c *Config) {
			c.RedisBroker = "redis://127.0.0.1:1/0" // ignored with sentinels
			c.SentinelAddrs = []string{h.sentinel.Addr}
			c.SentinelMasterName = "mymaster"
		})
	})
	t.Run("locality", func(t *testing.T) {
		storagetest.RunLocality(t, func(t *testing.T, lc locality.Config) storage.PeerStore {
			return newUnstopped(t, h.master, func(c *Config) {
				c.RedisBroker = "redis://127.0.0.1:1/0"
				c.SentinelAddrs = []string{h.sentinel.Addr}
				c.SentinelMasterName = "mymaster"
				c.Locality = lc
			})
		})
	})
	t.Run("relay", func(t *testing.T) {
		sentinel := func(c *Config) {
			c.RedisBroker = "redis://127.0.0.1:1/0"
			c.SentinelAddrs = []string{h.sentinel.Addr}
			c.SentinelMasterName = "mymaster"
		}
		a := newStore(t, h.master, sentinel, relayConfig(""))
		b := newStore(t, h.master, sentinel, relayConfig(a.cfg.KeyPrefix))
		ra, rb := a.Relay(), b.Relay()
		waitFor(t, ra, rb, receiver(rb), "through the master the sentinel names", 10*time.Second)
	})
	t.Run("totals heal after a crash", func(t *testing.T) {
		testTotalsHealAfterCrash(t, func(edit func(*Config)) *PeerStore {
			return newStore(t, h.master, func(c *Config) {
				c.RedisBroker = "redis://127.0.0.1:1/0"
				c.SentinelAddrs = []string{h.sentinel.Addr}
				c.SentinelMasterName = "mymaster"
			}, edit)
		}, h.master.Conn(t))
	})
}

// TestSentinelFailover kills the master; the store must find the promoted
// replica through the sentinel and serve again within 40 seconds, with the
// swarms written before the failover.
func TestSentinelFailover(t *testing.T) {
	h := startHA(t)
	s := newStore(t, h.master, func(c *Config) {
		c.RedisBroker = "redis://127.0.0.1:1/0" // ignored with sentinels
		c.SentinelAddrs = []string{"127.0.0.1:1", h.sentinel.Addr}
		c.SentinelMasterName = "mymaster"
	})
	must(t, "Ready", s.Ready(context.Background()))
	for i := range 50 {
		must(t, "put", s.PutLeecher(ih(1), peer4(i)))
	}
	must(t, "graduate", s.GraduateLeecher(ih(1), peer4(0)))
	h.waitReplicated(t)

	h.master.Kill()
	start := time.Now()
	for {
		err := s.PutSeeder(ih(2), peer4(1))
		if err == nil {
			break
		}
		if time.Since(start) > 40*time.Second {
			t.Fatalf("not serving 40s after the master died: %v\nsentinel log:\n%s", err, h.sentinel.LogText())
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("serving again %s after the master was killed", time.Since(start).Round(100*time.Millisecond))
	must(t, "Ready", s.Ready(context.Background()))

	got, err := s.ScrapeSwarm(ih(1), bittorrent.IPv4)
	must(t, "scrape", err)
	if want := (storage.Counts{Seeders: 1, Leechers: 49, Downloads: 1}); got != want {
		t.Errorf("swarm written before the failover: %+v, want %+v", got, want)
	}
	peers, _, _, err := s.AnnouncePeers(nil, ih(1), false, 100, peer4(1000))
	must(t, "announce", err)
	if len(peers) != 50 {
		t.Errorf("announce after failover: %d peers, want 50", len(peers))
	}
}

// TestSentinelUnknownMaster: a master name the sentinels do not know
// fails the start with an error that says so.
func TestSentinelUnknownMaster(t *testing.T) {
	h := startHA(t)
	_, err := New(Config{SentinelAddrs: []string{h.sentinel.Addr}, SentinelMasterName: "nosuch"}.WithDefaults())
	if err == nil || !strings.Contains(err.Error(), `storage/redis: sentinel_master_name: unknown master "nosuch"`) {
		t.Errorf("New: %v, want an unknown master error", err)
	}
}
