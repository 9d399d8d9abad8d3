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
		totals := s.slotShards[0].totals
		master, resumed := hangMasterOf(t, c, totals)
		counted := [6]int64{1: 1} // one IPv4 seeder more than the totals say
		err := s.recountEnd(ctx, map[string][6]int64{totals: {}}, recount{totals: &counted})
		t.Logf("recountEnd: %v", err)
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
	t.Run("collection", func(t *testing.T) {
		// A collection's page sent twice counts its swarms after its
		// scripts removed their stale peers (which the scripts took off
		// the totals already): the recount would take them off again.
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
		rc := recount{}
		_, err := s.collectSwarms(page, time.Now().Add(time.Hour).Unix(), false, rc)
		t.Logf("collectSwarms: %v, rc %v", err, rc[k.shard.totals])
		<-resumed
		time.Sleep(300 * time.Millisecond)
		if n, err := master.HLen(ctx, k.roles[0][0]).Result(); err != nil || n != 0 {
			t.Fatalf("seeders left after the collection: %d, %v", n, err)
		}
		if c := rc[k.shard.totals]; err == nil && (c == nil || c[1] != 1) {
			t.Fatalf("the recount counted %v IPv4 seeders before the collection, want 1", c)
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
