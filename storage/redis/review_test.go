package redis

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
)

// TestSentinelSwitchWire: after a Sentinel failover the wire path's
// announces go to the new master, even while the old one still answers as
// a master (SENTINEL FAILOVER leaves it one for seconds, until the
// sentinels demote it): an announce written to the old master then would
// be lost when it becomes a replica of the new one. go-redis drops its own
// connections to the old master when a sentinel announces the switch; the
// wire path's are the driver's own.
func TestSentinelSwitchWire(t *testing.T) {
	h := startHA(t)
	s := newStore(t, h.master, func(c *Config) {
		c.RedisBroker = "redis://127.0.0.1:1/0" // ignored with sentinels
		c.SentinelAddrs = []string{h.sentinel.Addr}
		c.SentinelMasterName = "mymaster"
	})
	ctx := context.Background()
	announce := func(n int) error {
		_, _, _, err := s.Announce(nil, ih(1), storage.UpdateLeecher, 10, peer4(n))
		return err
	}
	must(t, "announce", announce(1))
	must(t, "Ready", s.Ready(ctx))
	if s.wireOpt == nil {
		t.Fatal("no wire path with Sentinel")
	}
	h.waitReplicated(t)

	sc := h.sentinel.Conn(t)
	must(t, "SENTINEL FAILOVER", sc.Do(ctx, "SENTINEL", "FAILOVER", "mymaster").Err())
	deadline := time.Now().Add(30 * time.Second)
	for {
		a, err := sc.Do(ctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster").StringSlice()
		if err == nil && len(a) == 2 && net.JoinHostPort(a[0], a[1]) == h.replica.Addr {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sentinel did not switch to the replica within 30s: %v %v\n%s", a, err, h.sentinel.LogText())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The sentinel's +switch-master reaches its subscribers (the store's
	// own, failover.go), however loaded the machine.
	for s.switches.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the store did not hear of the switch within 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	oldRole, _ := h.master.Conn(t).Do(ctx, "ROLE").Slice()
	if len(oldRole) > 0 {
		t.Logf("old master's role at the announce: %v", oldRole[0])
	}
	var err error
	n := 2
	for ; n < 100; n++ {
		if err = announce(n); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	must(t, "announce after the switch", err)
	var buf [18]byte
	addr, _, _ := peerAddr(peer4(n), &buf)
	nm := h.replica.Conn(t)
	on, err := nm.HExists(ctx, s.keys(ih(1)).roles[0][1], string(addr)).Result()
	must(t, "HEXISTS on the new master", err)
	if !on {
		t.Errorf("announce of peer %d after the switch: not on the new master (written to the old one, and lost when it becomes a replica)", n)
	}
	t.Logf("announce %s after the switch", strconv.Itoa(n-1))
}

// FuzzAnnounceReplies reads bytes as the replies of a wired announce,
// in the order announceRaw reads them (the counts, the update's MULTI,
// QUEUEDs and EXEC, the peer reads): whatever Redis (or something that
// is not Redis) sends, the readers never panic, never read past the
// input, and never return more peers than asked for.
func FuzzAnnounceReplies(f *testing.F) {
	for _, s := range []string{
		":3\r\n:2\r\n$1\r\n7\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:1\r\n:0\r\n*2\r\n$6\r\n\x7f\x00\x00\x01\x1a\xe1\r\n$4\r\nabcd\r\n",
		":0\r\n:0\r\n$-1\r\n+OK\r\n-OOM command not allowed\r\n+QUEUED\r\n-EXECABORT Transaction discarded\r\n",
		":0\r\n:0\r\n$-1\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n-WRONGTYPE x\r\n:1\r\n*0\r\n",
		"-LOADING Redis is loading\r\n-LOADING x\r\n-LOADING x\r\n+OK\r\n-LOADING x\r\n",
		":1\r\n:1\r\n$99999999999\r\n",
		":1\r\n:1\r\n:1\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:1\r\n:1\r\n*1073741824\r\n$6\r\n",
		":1\r\n:1\r\n:1\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n*-1\r\n",
	} {
		f.Add([]byte(s), uint8(0))
	}
	f.Fuzz(func(t *testing.T, in []byte, mode uint8) {
		x := &exchange{}
		up := &update{u: storage.UpdateLeecher, k: &swarmKeys{}, addr: []byte{127, 0, 0, 1, 0x1a, 0xe1}}
		switch mode % 3 {
		case 1:
			up.u, up.seeding = storage.UpdateGraduate, true
		case 2:
			up.u = storage.UpdateDelete
		}
		x.plainUpdate(up)
		b := in
		for range 3 {
			var err error
			if _, b, err = readInt(b); err != nil {
				if _, ok := err.(replyError); !ok {
					return
				}
			}
		}
		_, b, err := readPlainUpdate(b, x, up)
		if err != nil || len(b) > len(in) {
			return
		}
		for range 2 {
			want := 10
			var peers []bittorrent.Peer
			peers, b, err = appendPeers(nil, b, up.addr, &want, mode&4 == 0)
			if len(peers) > 10 || want < 0 || len(b) > len(in) {
				t.Fatalf("%d peers, want left %d, %d bytes left of %d", len(peers), want, len(b), len(in))
			}
			if err != nil {
				return
			}
		}
	})
}

// TestNoPeerIDsFollowing: a tracker with keep_peer_ids off answers its
// peers without IDs (as the memory store does, so that a non-compact
// reply leaves `peer id` out) on every path, the Cluster's redirection-
// following one (readPeers) and AnnouncePeers included, even for a peer
// that a tracker keeping IDs stored with its ID on the same Redis.
func TestNoPeerIDsFollowing(t *testing.T) {
	srv := startRedis(t)
	s := newStore(t, srv, noIDs)
	keep := newStore(t, srv, func(c *Config) { c.KeyPrefix = s.cfg.KeyPrefix })
	must(t, "PutLeecher", keep.PutLeecher(ih(1), peer4(1)))
	k := s.keys(ih(1))
	var buf [18]byte
	addr, _, _ := peerAddr(peer4(2), &buf)
	up := &update{u: storage.UpdateSeeder, seeding: true, k: &k, addr: addr}
	peers, err := s.readPeers(context.Background(), nil, up, 10)
	must(t, "readPeers", err)
	peers2, _, _, err := s.AnnouncePeers(nil, ih(1), true, 10, peer4(2))
	must(t, "AnnouncePeers", err)
	for what, ps := range map[string][]bittorrent.Peer{"readPeers": peers, "AnnouncePeers": peers2} {
		if len(ps) != 1 || ps[0].AddrPort != peer4(1).AddrPort {
			t.Fatalf("%s: %v, want peer 1", what, ps)
		}
		if ps[0].ID != (bittorrent.PeerID{}) {
			t.Errorf("%s: peer with ID %q from a tracker that keeps none", what, ps[0].ID[:])
		}
	}
}
