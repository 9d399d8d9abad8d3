package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chihaya/chihaya/frontend/frontendtest"
	"github.com/chihaya/chihaya/internal/daemontest"
	"github.com/chihaya/chihaya/internal/eventually"
	"github.com/chihaya/chihaya/storage/redis/redistest"
)

// clusterHash is the info hash of swarm n of the cluster tests.
func clusterHash(n int) [20]byte {
	return [20]byte{'c', 'l', byte(n >> 16), byte(n >> 8), byte(n), 0x5a}
}

// TestRedisCluster runs two daemons on a real Redis Cluster of three
// masters with a replica each, and checks, in order: they share swarms
// over HTTP and UDP; the swarms spread over every master; while 1,000
// slots move to another master under load no announce fails; and when a
// master is killed, its replica takes over and both daemons serve the old
// swarms again within 30 s, with exact counts.
func TestRedisCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1)
	cfg := map[interface{}]interface{}{
		"redis_broker":  "redis://127.0.0.1:1/0", // only its password and scheme count
		"cluster_addrs": c.Addrs()[:3],
		"gc_interval":   "1m",
	}
	a, b := start(t, redisConfig(t, cfg)), start(t, redisConfig(t, cfg))
	daemons := []*daemontest.Daemon{a, b}

	t.Run("two trackers share swarms over HTTP and UDP", func(t *testing.T) {
		ih := clusterHash(1)
		httpServed(t, httpGet(t, httpAnnounce{infoHash: ih, peerID: id("-TR3000-ca"), port: 45001, event: "started"}.url("http://"+a.Addr(t, "http"))))
		leecher := httpAnnounce{infoHash: ih, peerID: id("-qB4520-cb"), port: 45002, left: 100, event: "started"}
		eventually.Holds(t, func() string {
			resp := httpGet(t, leecher.url("http://"+b.Addr(t, "http")))
			peers, _ := resp["peers"].(string)
			if got := compactPeers(t, peers, 6); len(got) != 1 || got[0] != "127.0.0.1:45001" {
				return "HTTP leecher on B got " + strings.Join(got, ",") + ", want A's seeder"
			}
			return ""
		})
		ihUDP := clusterHash(2)
		ub, ua := udpTracker(t, b, "127.0.0.1:0"), udpTracker(t, a, "127.0.0.1:0")
		if r := ub.announce(ihUDP, id("-TR3000-cub"), 0, 2, 45003, 10, nil); r.errMsg != "" {
			t.Fatalf("UDP seeder on B: %+v", r)
		}
		r := ua.announce(ihUDP, id("-qB4520-cua"), 100, 2, 45004, 10, nil)
		if len(r.peers) != 1 || r.peers[0] != "127.0.0.1:45003" {
			t.Fatalf("UDP leecher on A got %v, want B's seeder", r.peers)
		}
		if s := ua.scrape(ih, ihUDP); s[0] != (udpScrape{seeders: 1, leechers: 1}) || s[1] != (udpScrape{seeders: 1, leechers: 1}) {
			t.Fatalf("scrape on A: %+v, want 1 seeder and 1 leecher in both", s)
		}
	})

	// Swarms 100-399, each with one seeder and two leechers, announced
	// alternately to A and B; their counts are checked after the failover.
	const first, swarms = 100, 300
	announce := func(t *testing.T, d *daemontest.Daemon, n, peer int, left int) {
		t.Helper()
		a := httpAnnounce{infoHash: clusterHash(n), peerID: id(fmt.Sprintf("-CL0001-%06d", peer)), port: 20000 + peer, left: left, event: "started"}
		httpServed(t, httpGet(t, a.url("http://"+d.Addr(t, "http"))))
	}
	t.Run("every master holds swarms, none more than 2.5 times another", func(t *testing.T) {
		for n := first; n < first+swarms; n++ {
			announce(t, daemons[n%2], n, 3*n, 0)
			announce(t, daemons[(n+1)%2], n, 3*n+1, 100)
			announce(t, daemons[n%2], n, 3*n+2, 100)
		}
		perMaster := swarmsPerMaster(t, c)
		lo, hi := swarms, 0
		for _, n := range perMaster {
			lo, hi = min(lo, n), max(hi, n)
		}
		t.Logf("swarm keys per master: %v", perMaster)
		if len(perMaster) != 3 || lo == 0 || float64(hi) > 2.5*float64(lo) {
			t.Fatalf("swarm keys per master %v: want 3 masters, none more than 2.5 times another", perMaster)
		}
	})

	t.Run("1000 slots move under load, no announce fails", func(t *testing.T) {
		from, to := masterIDs(t, c)
		before := slotsOf(t, c, c.Nodes[2].Addr)
		var failed, served atomic.Int64
		var firstFailure atomic.Value
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				deadline := time.Now().Add(2 * time.Minute)
				for i := 0; time.Now().Before(deadline); i++ {
					select {
					case <-stop:
						return
					default:
					}
					// Swarms all over the slots, including the moving ones.
					n := 1000 + (w*7919+i*104729)%5000
					a := httpAnnounce{infoHash: clusterHash(n), peerID: id(fmt.Sprintf("-LD0001-%02d%04d", w, i%10000)), port: 30000 + w, left: 100, event: "started"}
					status, body, err := get(a.url("http://" + daemons[i%2].Addr(t, "http")))
					if err != nil || status != http.StatusOK || strings.Contains(body, "failure reason") {
						failed.Add(1)
						firstFailure.CompareAndSwap(nil, fmt.Sprintf("%d %q %v", status, body, err))
						continue
					}
					served.Add(1)
				}
			}()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, redistest.Program(t, "redis-cli"), "--cluster", "reshard", c.Nodes[0].Addr,
			"--cluster-from", from, "--cluster-to", to, "--cluster-slots", "1000", "--cluster-yes").CombinedOutput()
		close(stop)
		wg.Wait()
		if err != nil {
			t.Fatalf("redis-cli --cluster reshard: %v\n%s", err, tail(string(out), 2000))
		}
		if after := slotsOf(t, c, c.Nodes[2].Addr); after != before+1000 {
			t.Fatalf("the receiving master serves %d slots after the reshard, %d before: want 1000 more", after, before)
		}
		t.Logf("%d announces served while 1000 slots moved, %d failed", served.Load(), failed.Load())
		if failed.Load() > 0 {
			t.Fatalf("%d announces failed while slots moved; the first: %v", failed.Load(), firstFailure.Load())
		}
		if served.Load() == 0 {
			t.Fatal("no announce was served while slots moved")
		}
	})

	t.Run("a master dies, its replica takes over, both trackers serve exact counts within 30s", func(t *testing.T) {
		waitReplicated(t, c)
		victim := c.Nodes[1] // a master, created so
		victim.Kill()
		killed := time.Now()
		for _, d := range daemons {
			base := "http://" + d.Addr(t, "http")
			for n := first; n < first+swarms; n++ {
				for {
					got, err := httpScrapeCounts(base, clusterHash(n))
					if err == nil && got == [3]int64{1, 0, 2} { // complete, downloaded, incomplete
						break
					}
					if time.Since(killed) > 30*time.Second {
						t.Fatalf("swarm %d on %s 30s after the master died: %v %v, want 1 seeder and 2 leechers", n, base, got, err)
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
		}
		t.Logf("both trackers serve every old swarm exactly %s after the master was killed", time.Since(killed).Round(100*time.Millisecond))
	})
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// httpScrapeCounts scrapes one swarm over HTTP and returns complete,
// downloaded and incomplete, without failing the test (callers retry).
func httpScrapeCounts(base string, ih [20]byte) ([3]int64, error) {
	status, body, err := get(base + "/scrape?info_hash=" + url.QueryEscape(string(ih[:])))
	if err != nil || status != http.StatusOK {
		return [3]int64{}, fmt.Errorf("%d %v", status, err)
	}
	v, err := frontendtest.DecodeBencode([]byte(body))
	if err != nil {
		return [3]int64{}, err
	}
	files, _ := v.(map[string]interface{})["files"].(map[string]interface{})
	f, ok := files[string(ih[:])].(map[string]interface{})
	if !ok {
		return [3]int64{}, fmt.Errorf("no file in %q", body)
	}
	n := func(k string) int64 { x, _ := f[k].(int64); return x }
	return [3]int64{n("complete"), n("downloaded"), n("incomplete")}, nil
}

// nodeClient is a client of one node for the test's own checks.
func nodeClient(t *testing.T, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true, MaxRetries: -1, ReadTimeout: 10 * time.Second})
	t.Cleanup(func() { c.Close() })
	return c
}

// swarmsPerMaster counts the IPv4 leecher hashes (one per swarm) on each
// live master.
func swarmsPerMaster(t *testing.T, c *redistest.Cluster) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, n := range c.Nodes {
		if n.Exited() {
			continue
		}
		nc := nodeClient(t, n.Addr)
		info, err := nc.Info(context.Background(), "replication").Result()
		if err != nil || !strings.Contains(info, "role:master") {
			continue
		}
		keys, err := nc.Keys(context.Background(), "e2e:{*}4l").Result()
		if err != nil {
			t.Fatal(err)
		}
		out[n.Addr] = len(keys)
	}
	return out
}

// masterIDs returns the node IDs of the first and third created masters.
func masterIDs(t *testing.T, c *redistest.Cluster) (from, to string) {
	t.Helper()
	id := func(addr string) string {
		v, err := nodeClient(t, addr).Do(context.Background(), "CLUSTER", "MYID").Text()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	return id(c.Nodes[0].Addr), id(c.Nodes[2].Addr)
}

// slotsOf counts the slots the node at addr serves, as the cluster sees it.
func slotsOf(t *testing.T, c *redistest.Cluster, addr string) int {
	t.Helper()
	slots, err := nodeClient(t, c.Nodes[0].Addr).ClusterSlots(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range slots {
		if len(r.Nodes) > 0 && r.Nodes[0].Addr == addr {
			n += r.End - r.Start + 1
		}
	}
	return n
}

// waitReplicated waits until every replica has processed all its
// master's writes (their replication offsets agree).
func waitReplicated(t *testing.T, c *redistest.Cluster) {
	t.Helper()
	offset := func(addr, field string) string {
		info, _ := nodeClient(t, addr).Info(context.Background(), "replication").Result()
		for _, l := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(l, field+":"); ok {
				return v
			}
		}
		return ""
	}
	eventually.Holds(t, func() string {
		for _, n := range c.Nodes {
			info, _ := nodeClient(t, n.Addr).Info(context.Background(), "replication").Result()
			if !strings.Contains(info, "role:slave") {
				continue
			}
			var host, port string
			for _, l := range strings.Split(info, "\r\n") {
				if v, ok := strings.CutPrefix(l, "master_host:"); ok {
					host = v
				}
				if v, ok := strings.CutPrefix(l, "master_port:"); ok {
					port = v
				}
			}
			m := offset(host+":"+port, "master_repl_offset")
			if r := offset(n.Addr, "slave_repl_offset"); m == "" || r != m {
				return fmt.Sprintf("replica %s at %s, its master at %s", n.Addr, r, m)
			}
		}
		return ""
	})
}
