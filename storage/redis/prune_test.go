package redis

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/redis/redistest"
)

// TestClusterFailoverLetsOldMasterGo checks that a tracker keeps no group
// commit (and no wire connection, with its buffers) for a node that is
// no longer a master once a collection round has seen the new map: with
// masters replaced under new addresses (a pod restarted elsewhere, a
// node swapped), they would pile up for as long as the tracker runs.
func TestClusterFailoverLetsOldMasterGo(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, 3, 1)
	ctx := context.Background()
	s := clusterStore(t, c)
	defer s.Stop(ctx)
	p := bittorrent.Peer{ID: bittorrent.PeerID{1}, AddrPort: netip.MustParseAddrPort("10.9.0.1:6881")}
	announce := func() (failed int) {
		for i := range 64 {
			if _, _, _, err := s.Announce(nil, bittorrent.InfoHash{byte(i), 0x7a}, storage.UpdateSeeder, 0, p); err != nil {
				failed++
			}
		}
		return failed
	}
	if n := announce(); n > 0 {
		t.Fatalf("%d announces failed", n)
	}
	if n := len(batchersOf(s)); n != 3 {
		t.Fatalf("%d group commits for 3 masters", n)
	}
	// The replica c.Nodes[3] takes over from its master.
	replica := c.Nodes[3]
	// TAKEOVER: at once, without an election a loaded machine may time out.
	must(t, "CLUSTER FAILOVER", replica.Conn(t).Do(ctx, "CLUSTER", "FAILOVER", "TAKEOVER").Err())
	deadline := time.Now().Add(30 * time.Second)
	for {
		role, err := replica.Conn(t).Do(ctx, "ROLE").Slice()
		if err == nil && len(role) > 0 && role[0] == "master" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not a master within 30 s: %v %v", replica.Addr, role, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.WaitOK(t, 30*time.Second)
	for announce() > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond) // until the store follows
	}
	before := batchersOf(s)
	if len(before) != 4 {
		t.Fatalf("%d group commits after a failover, want 4 (the old master's still there)", len(before))
	}
	s.periodicGC()
	after := batchersOf(s)
	if len(after) != 3 {
		t.Errorf("%d group commits after a collection round, want the 3 masters'", len(after))
	}
	for addr, b := range before {
		if _, kept := after[addr]; kept {
			continue
		}
		b.mu.Lock()
		conns, closed := len(b.conns), b.closed
		b.mu.Unlock()
		if !closed || conns > 0 {
			t.Errorf("%s: the let go group commit keeps %d connections (closed %v)", addr, conns, closed)
		}
	}
	if n := announce(); n > 0 {
		t.Fatalf("%d announces failed after the round", n)
	}
}

// batchersOf returns the group commits of s's masters, by address.
func batchersOf(s *PeerStore) map[string]*batcher {
	m := map[string]*batcher{}
	s.nodeBatches.Range(func(k, b any) bool {
		m[k.(*redis.Client).Options().Addr] = b.(*batcher)
		return true
	})
	return m
}
