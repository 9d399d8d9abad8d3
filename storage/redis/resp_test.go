package redis

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/chihaya/chihaya/storage"
)

// TestWireConnection runs announces on the wire path's own connections
// as an operator configures them: an ACL user with a password and a
// database other than 0 (which the path must select: the swarm is looked
// for there), and Redis closing the connections between two announces
// (CLIENT KILL, as a restart or Redis' idle timeout does), which must not
// fail the next announce.
func TestWireConnection(t *testing.T) {
	srv := startRedis(t, "requirepass s3cret")
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: "s3cret", Protocol: 2, DisableIdentity: true})
	defer admin.Close()
	ctx := context.Background()
	must(t, "ACL SETUSER", admin.Do(ctx, "ACL", "SETUSER", "tracker", "on", ">trackerpw", "~*", "+@all").Err())
	s, err := New(Config{RedisBroker: "redis://tracker:trackerpw@" + srv.Addr + "/5", KeyPrefix: "wire:"}.WithDefaults())
	must(t, "New", err)
	defer s.Stop(ctx)
	if s.wireOpt == nil {
		t.Fatal("no wire path on a single Redis")
	}
	announce := func(n int, want storage.Counts) {
		t.Helper()
		trips := s.roundTrips.Load()
		_, c, _, err := s.AnnounceAddrs(nil, ih(1), storage.UpdateLeecher, 10, peer4(n), true)
		must(t, "announce", err)
		if c != want {
			t.Errorf("announce of peer %d: counts %+v, want %+v", n, c, want)
		}
		if s.roundTrips.Load() == trips {
			t.Error("the announce made no round trip of its own")
		}
	}
	failed := testErrors("announce")
	announce(1, storage.Counts{})
	announce(2, storage.Counts{Leechers: 1})
	db5 := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: "s3cret", DB: 5, Protocol: 2, DisableIdentity: true})
	defer db5.Close()
	if n, err := db5.HLen(ctx, s.keys(ih(1)).roles[0][1]).Result(); err != nil || n != 2 {
		t.Errorf("leechers in database 5: %d %v, want 2", n, err)
	}
	must(t, "CLIENT KILL", admin.Do(ctx, "CLIENT", "KILL", "USER", "tracker").Err())
	time.Sleep(50 * time.Millisecond) // the close reaches the tracker's socket
	announce(3, storage.Counts{Leechers: 2})
	if n := testErrors("announce") - failed; n != 0 {
		t.Errorf("%v announces failed", n)
	}
}

// TestWireRefusedPassword: a password Redis refuses fails the announce
// with the reason counted as auth, and Redis is not marked down.
func TestWireRefusedPassword(t *testing.T) {
	srv := startRedis(t, "requirepass s3cret")
	s, err := New(Config{RedisBroker: "redis://:s3cret@" + srv.Addr + "/0", KeyPrefix: "wire:"}.WithDefaults())
	must(t, "New", err)
	defer s.Stop(context.Background())
	// The password changes under the running tracker; its connections
	// are gone.
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: "s3cret", Protocol: 2, DisableIdentity: true})
	defer admin.Close()
	must(t, "CONFIG SET", admin.ConfigSet(context.Background(), "requirepass", "other").Err())
	must(t, "CLIENT KILL", admin.Do(context.Background(), "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes").Err())
	_, _, _, err = s.Announce(nil, ih(1), storage.UpdateLeecher, 10, peer4(1))
	if err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
		t.Errorf("announce: %v, want WRONGPASS", err)
	}
	if s.downUntil.Load() != 0 {
		t.Error("a refused password marked Redis down")
	}
}

func TestReplyLen(t *testing.T) {
	tests := []struct {
		in   string
		want int // 0: incomplete; -1: malformed
	}{
		{":12\r\n", 5},
		{":12\r\n:3\r\n", 5},
		{"+OK\r\n", 5},
		{"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n", 68},
		{"-WRONGTYPE Operation against a key holding the wrong kind of val", 0},
		{"$3\r\nabc\r\n", 9},
		{"$3\r\nabc\r", 0},
		{"$3\r\nabcd\r\n", -1},
		{"$-1\r\n", 5},
		{"*-1\r\n", 5},
		{"*0\r\n", 4},
		{"*2\r\n$1\r\na\r\n$2\r\nbc\r\n", 19},
		{"*2\r\n$1\r\na\r\n", 0},
		{"*3\r\n:1\r\n*2\r\n:2\r\n:3\r\n+QUEUED\r\n", 29},
		{"*1\r\n*1\r\n", 0},
		{"", 0},
		{"\r\n", -1},
		{"?x\r\n", -1},
		{"$x\r\n", -1},
		{"*-2\r\n", -1},
	}
	for _, tc := range tests {
		n, err := replyLen([]byte(tc.in))
		if err != nil {
			n = -1
		}
		if n != tc.want {
			t.Errorf("replyLen(%q) = %d, %v; want %d", tc.in, n, err, tc.want)
		}
	}
}

// FuzzReplyLen: replyLen never panics; a length it finds is within the
// input, the same for the reply alone, and every shorter prefix of the
// reply is incomplete (so that a reply read in pieces is found whole
// only once it is).
func FuzzReplyLen(f *testing.F) {
	for _, s := range []string{":1\r\n", "$3\r\nabc\r\n", "*2\r\n$6\r\n\x01\x02\x03\x04\x1a\xe1\r\n$0\r\n\r\n", "*3\r\n+QUEUED\r\n-ERR x\r\n*-1\r\n", "$-1\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := replyLen(b)
		if err != nil || n == 0 {
			return
		}
		if n > len(b) {
			t.Fatalf("length %d of %d bytes", n, len(b))
		}
		if m, err := replyLen(b[:n]); m != n || err != nil {
			t.Fatalf("the reply alone: %d %v, want %d", m, err, n)
		}
		for k := range n {
			if m, err := replyLen(b[:k]); m != 0 || err != nil {
				t.Fatalf("prefix of %d of a reply of %d: %d %v, want incomplete", k, n, m, err)
			}
		}
	})
}

// TestWireSentinelSwitchover moves the master to the replica while the
// old master lives on as a replica (SENTINEL FAILOVER, which also closes
// the old master's client connections): the wire path's connection to
// the old master must not be used again (had it stayed open, the old
// master would refuse the update, READONLY, and the path would close it),
// and the next announces must reach the new master, dialled through the
// sentinel, with exact counts; an announce that fails applies nothing.
func TestWireSentinelSwitchover(t *testing.T) {
	if testing.Short() {
		t.Skip("a Sentinel failover takes seconds")
	}
	t.Parallel()
	h := startHA(t)
	s := newStore(t, h.master, func(c *Config) {
		c.SentinelAddrs = []string{h.sentinel.Addr}
		c.SentinelMasterName = "mymaster"
	})
	for i := range 10 {
		_, _, _, err := s.Announce(nil, ih(1), storage.UpdateLeecher, 50, peer4(i))
		must(t, "announce", err)
	}
	h.waitReplicated(t)
	must(t, "SENTINEL FAILOVER", h.sentinel.Conn(t).Do(context.Background(), "SENTINEL", "FAILOVER", "mymaster").Err())
	// The switchover is done when the two have swapped roles.
	start := time.Now()
	for roleOf(t, h.replica) != "master" || roleOf(t, h.master) != "slave" {
		if time.Since(start) > 40*time.Second {
			t.Fatalf("no switchover within 40s\nsentinel log:\n%s", h.sentinel.LogText())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("switchover done in %s", time.Since(start).Round(100*time.Millisecond))
	start = time.Now()
	failed := 0
	for i := 10; ; i++ {
		peers, c, _, err := s.Announce(nil, ih(1), storage.UpdateSeeder, 50, peer4(i))
		if err == nil {
			// Every announce that failed applied nothing: the swarm
			// holds the ten leechers and this peer, now counted.
			if want := (storage.Counts{Leechers: 10}); c != want || len(peers) != 10 {
				t.Errorf("first announce on the new master: %+v, %d peers; want %+v, 10 peers", c, len(peers), want)
			}
			break
		}
		failed++
		if time.Since(start) > 40*time.Second {
			t.Fatalf("no announce served 40s after the switchover: %v\nsentinel log:\n%s", err, h.sentinel.LogText())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("announces served again %s after the switchover (%d failed)", time.Since(start).Round(100*time.Millisecond), failed)
	// The update went to the new master.
	if n, err := h.replica.Conn(t).HLen(context.Background(), s.keys(ih(1)).roles[0][0]).Result(); err != nil || n != 1 {
		t.Errorf("seeders on the new master: %d %v, want 1", n, err)
	}
}

// roleOf is the role srv reports (ROLE): master or slave.
func roleOf(t *testing.T, srv *server) string {
	t.Helper()
	role, err := srv.Conn(t).Do(context.Background(), "ROLE").Slice()
	if err != nil || len(role) == 0 {
		return ""
	}
	r, _ := role[0].(string)
	return r
}

// TestWireReadOnly turns the tracker's Redis into a replica under it
// (REPLICAOF, which leaves client connections open, as a master demoted
// without Sentinel's help would): the announce fails, counted as
// readonly, and its connection is closed, so that the next announce
// dials again (through Sentinel, that finds the new master).
func TestWireReadOnly(t *testing.T) {
	srv, other := startRedis(t), startRedis(t)
	var dials atomic.Int64
	s := newDialing(t, srv, func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}, func(c *Config) {
		c.GarbageCollectionInterval, c.PrometheusReportingInterval = 30*time.Minute, time.Hour
	})
	announce := func() error {
		_, _, _, err := s.AnnounceAddrs(nil, ih(1), storage.UpdateLeecher, 10, peer4(1), false)
		return err
	}
	must(t, "announce", announce())
	host, port := splitAddr(other.Addr)
	admin := srv.Conn(t)
	must(t, "REPLICAOF", admin.Do(context.Background(), "REPLICAOF", host, port).Err())
	defer admin.Do(context.Background(), "REPLICAOF", "NO", "ONE")
	readonly := testutil.ToFloat64(errorsByReason.WithLabelValues(reasonReadOnly))
	before := dials.Load()
	if err := announce(); err == nil || !strings.Contains(err.Error(), "READONLY") {
		t.Fatalf("announce to a replica: %v, want READONLY", err)
	}
	if n := testutil.ToFloat64(errorsByReason.WithLabelValues(reasonReadOnly)) - readonly; n != 1 {
		t.Errorf("%v failures counted as readonly, want 1", n)
	}
	if d := dials.Load(); d != before {
		t.Errorf("%d dials during the refused announce, want none", d-before)
	}
	_ = announce()
	if d := dials.Load(); d != before+1 {
		t.Errorf("%d dials for the announce after READONLY, want 1 (a new connection)", d-before)
	}
}
