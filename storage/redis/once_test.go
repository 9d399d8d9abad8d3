package redis

import (
	"context"
	"encoding/hex"
	"net/netip"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage/redis/redistest"
)

// TestClusterWriteSentOnce checks the promise of conn.go on a Cluster: a
// write whose reply is late (its master hangs past the read timeout) is
// not sent again, since Redis may have run it. go-redis' Cluster client
// sends a pipeline again after a timeout, whatever MaxRetries says.
func TestClusterWriteSentOnce(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3, 0)
	ctx := context.Background()
	t.Run("recount", func(t *testing.T) {
		// The recount's HINCRBYs sent twice would leave the totals off by
		// as much until the next recount.
		s := clusterStore(t, c, func(cfg *Config) { cfg.RedisReadTimeout = 100 * time.Millisecond })
		defer s.Stop(ctx)
		totals := s.oneShard.totals
		cc := c.Client(t)
		hung, err := cc.MasterForKey(ctx, totals)
		must(t, "MasterForKey", err)
		// A cut whose tally is on another master: the tally completes,
		// the correction meets the hung one.
		at := time.Now().UnixMilli()
		for ; ; at++ {
			m, err := cc.MasterForKey(ctx, s.tallyKey(at))
			must(t, "MasterForKey", err)
			if m.Options().Addr != hung.Options().Addr {
				break
			}
		}
		// Connections to both masters first (a new one's handshake waits
		// out the hang instead of timing out).
		for _, k := range []string{totals, s.tallyKey(at)} {
			if err := s.client.HGet(ctx, k, "s4").Err(); err != redis.Nil {
				t.Fatalf("HGET %s: %v", k, err)
			}
		}
		master, resumed := hangMasterOf(t, c, totals)
		counted := recount{1: 1} // one IPv4 seeder more than the totals say
		start := time.Now()
		err = s.recountEnd(ctx, at, [6]int64{}, counted, 1)
		t.Logf("recountEnd: %v after %v", err, time.Since(start))
		<-resumed
		time.Sleep(300 * time.Millisecond) // what was sent runs
		got, err := master.HGet(ctx, totals, "s4").Int64()
		if err != nil {
			t.Fatalf("HGET %s s4: %v", totals, err)
		}
		if got > 1 {
			t.Fatalf("the recount's HINCRBY of 1 was applied %d times", got)
		}
	})
	t.Run("stats", func(t *testing.T) {
		// The pending changes' HINCRBYs, sent with a Stats, the same.
		s := clusterStore(t, c, func(cfg *Config) {
			cfg.RedisReadTimeout, cfg.PrometheusReportingInterval = 100*time.Millisecond, time.Hour
		})
		defer s.Stop(ctx)
		totals := s.oneShard.totals
		_, err := s.Stats() // its connections first
		must(t, "Stats", err)
		s.pending.add(bittorrent.IPv4, 1, 0, 0)
		master, resumed := hangMasterOf(t, c, totals)
		start := time.Now()
		_, err = s.Stats()
		t.Logf("Stats: %v after %v", err, time.Since(start))
		<-resumed
		time.Sleep(300 * time.Millisecond)
		got, err := master.HGet(ctx, totals, "s4").Int64()
		if err != nil {
			t.Fatalf("HGET %s s4: %v", totals, err)
		}
		if got > 1 {
			t.Fatalf("the pending HINCRBY of 1 was applied %d times", got)
		}
	})
	t.Run("collection", func(t *testing.T) {
		// A collection's page sent twice counts its swarms after its
		// scripts removed their stale peers (whose removal reaches the
		// totals anyway): the recount would take them off again.
		s := clusterStore(t, c, func(cfg *Config) { cfg.RedisReadTimeout = 100 * time.Millisecond })
		defer s.Stop(ctx)
		ih := bittorrent.InfoHash{0xc0, 0x11}
		must(t, "put", s.PutSeeder(ih, bittorrent.Peer{ID: bittorrent.PeerID{1}, AddrPort: netip.MustParseAddrPort("10.8.0.1:6881")}))
		k := s.keys(ih)
		page := []foundSwarm{{member: hex.EncodeToString(ih[:]), by: 1}}
		// A first round, which removes nothing, loads the script there.
		if _, err := s.collectSwarms(page, 0, false, nil); err != nil {
			t.Fatal(err)
		}
		master, resumed := hangMasterOf(t, c, k.roles[0][0])
		rc := new(recount)
		_, err := s.collectSwarms(page, time.Now().Add(time.Hour).Unix(), false, rc)
		t.Logf("collectSwarms: %v, rc %v", err, *rc)
		<-resumed
		time.Sleep(300 * time.Millisecond)
		if n, err := master.HLen(ctx, k.roles[0][0]).Result(); err != nil || n != 0 {
			t.Fatalf("seeders left after the collection: %d, %v", n, err)
		}
		if err == nil && rc[1] != 1 {
			t.Fatalf("the recount counted %d IPv4 seeders before the collection, want 1", rc[1])
		}
	})
}

// hangMasterOf stops the master of key's slot for 600 ms (several read
// timeouts), and returns a client of it and a channel closed once it is
// resumed: what was sent to it meanwhile runs then.
func hangMasterOf(t *testing.T, c *redistest.Cluster, key string) (*redis.Client, <-chan struct{}) {
	t.Helper()
	master, err := c.Client(t).MasterForKey(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes {
		if n.Addr == master.Options().Addr {
			n.Pause(t)
			resumed := make(chan struct{})
			time.AfterFunc(600*time.Millisecond, func() { n.Resume(); close(resumed) })
			return master, resumed
		}
	}
	t.Fatalf("no node at %s", master.Options().Addr)
	return nil, nil
}
