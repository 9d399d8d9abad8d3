package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chihaya/chihaya/frontend/frontendtest"
	"github.com/chihaya/chihaya/internal/daemontest"
	"github.com/chihaya/chihaya/internal/eventually"
	"github.com/chihaya/chihaya/storage/redis/redistest"
)

// redisServer is a redis-server or redis-sentinel started by a test.
type redisServer = redistest.Server

// startRedisServer runs program on a free loopback port without
// persistence; conf lines are added to its configuration.
func startRedisServer(t *testing.T, program string, conf ...string) *redisServer {
	t.Helper()
	return redistest.Start(t, program, conf...)
}

// redisConfig is the loopback daemon configuration with the redis driver.
func redisConfig(t *testing.T, storageConfig map[interface{}]interface{}) map[interface{}]interface{} {
	t.Helper()
	cfg := loopbackConfig(t, "127.0.0.1")
	sc := map[interface{}]interface{}{
		"key_prefix":            "e2e:",
		"redis_read_timeout":    "2s",
		"redis_write_timeout":   "2s",
		"redis_connect_timeout": "2s",
	}
	for k, v := range storageConfig {
		sc[k] = v
	}
	section(cfg, "chihaya")["storage"] = map[interface{}]interface{}{"name": "redis", "config": sc}
	return cfg
}

// get fetches a URL and returns its status and body, for use from any
// goroutine.
func get(rawURL string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

func readyz(t *testing.T, d *daemontest.Daemon) (int, string) {
	t.Helper()
	status, body, err := get("http://" + d.Addr(t, "metrics") + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	return status, body
}

// TestRedisTwoInstances runs two daemons on one Redis: a peer that
// announced to one is given to a peer announcing to the other, over HTTP
// and UDP, and stopping the first loses nothing.
func TestRedisTwoInstances(t *testing.T) {
	srv := startRedisServer(t, "redis-server")
	cfg := map[interface{}]interface{}{"redis_broker": "redis://" + srv.Addr + "/0"}
	a, b := start(t, redisConfig(t, cfg)), start(t, redisConfig(t, cfg))

	// HTTP: a seeder on A, a leecher on B.
	ihHTTP := hash(51)
	httpGet(t, httpAnnounce{infoHash: ihHTTP, peerID: id("-TR3000-a"), port: 41001, event: "started"}.url("http://"+a.Addr(t, "http")))
	leecher := httpAnnounce{infoHash: ihHTTP, peerID: id("-qB4520-b"), port: 41002, left: 100, event: "started"}
	eventually.Holds(t, func() string {
		resp := httpGet(t, leecher.url("http://"+b.Addr(t, "http")))
		peers, _ := resp["peers"].(string)
		if got := compactPeers(t, peers, 6); len(got) != 1 || got[0] != "127.0.0.1:41001" {
			return "HTTP leecher on B got " + strings.Join(got, ",") + ", want A's seeder 127.0.0.1:41001"
		}
		return ""
	})

	// UDP: a seeder on B, a leecher on A.
	ihUDP := hash(52)
	ub, ua := udpTracker(t, b, "127.0.0.1:0"), udpTracker(t, a, "127.0.0.1:0")
	if r := ub.announce(ihUDP, id("-TR3000-ub"), 0, 2, 41003, 10, nil); r.errMsg != "" {
		t.Fatalf("UDP seeder on B: %+v", r)
	}
	eventually.Holds(t, func() string {
		r := ua.announce(ihUDP, id("-qB4520-ua"), 100, 2, 41004, 10, nil)
		if len(r.peers) != 1 || r.peers[0] != "127.0.0.1:41003" {
			return "UDP leecher on A got " + strings.Join(r.peers, ",") + ", want B's seeder 127.0.0.1:41003"
		}
		return ""
	})

	// A leaves; B still knows every peer A was told about.
	a.Stop(t)
	ub.connect()
	s := ub.scrape(ihHTTP, ihUDP)
	if s[0] != (udpScrape{seeders: 1, leechers: 1}) || s[1] != (udpScrape{seeders: 1, leechers: 1}) {
		t.Fatalf("B's scrape after A stopped: %+v, want 1 seeder and 1 leecher in both swarms", s)
	}
	r := ub.announce(ihUDP, id("-TR3000-ub"), 0, 0, 41003, 10, nil)
	if len(r.peers) != 1 || r.peers[0] != "127.0.0.1:41004" {
		t.Fatalf("B's seeder after A stopped got %v, want the leecher that announced to A", r.peers)
	}
}

// TestRedisCountsExact sends many concurrent announces (started, completed,
// stopped) through two daemons and checks that both scrape the truth.
func TestRedisCountsExact(t *testing.T) {
	srv := startRedisServer(t, "redis-server")
	cfg := map[interface{}]interface{}{"redis_broker": "redis://" + srv.Addr + "/0"}
	daemons := []*daemontest.Daemon{start(t, redisConfig(t, cfg)), start(t, redisConfig(t, cfg))}
	ih := hash(61)

	// Each peer talks to one daemon (a client keeps the address it
	// resolved), so its own events arrive in order; peers of both daemons
	// update the same swarm at once.
	const peers = 120
	var wg sync.WaitGroup
	for i := range peers {
		wg.Go(func() {
			base := "http://" + daemons[i%2].Addr(t, "http")
			a := httpAnnounce{infoHash: ih, peerID: id(fmt.Sprintf("-CT0001-%04d", i)), port: 20000 + i, left: 100, event: "started"}
			steps := []httpAnnounce{a}
			if i%3 == 0 {
				a.left, a.event = 0, "completed"
				steps = append(steps, a)
			}
			a.event = ""
			steps = append(steps, a)
			if i%4 == 0 {
				a.event = "stopped"
				steps = append(steps, a)
			}
			for _, s := range steps {
				status, body, err := get(s.url(base))
				if err == nil && (status != http.StatusOK || strings.Contains(body, "failure reason")) {
					err = fmt.Errorf("announce %s: %d %q", s.event, status, body)
				}
				if err != nil {
					t.Errorf("peer %d: %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	var seeders, leechers, downloads uint32
	for i := range peers {
		switch {
		case i%4 == 0:
		case i%3 == 0:
			seeders++
		default:
			leechers++
		}
		if i%3 == 0 {
			downloads++
		}
	}
	want := udpScrape{seeders: seeders, completed: downloads, leechers: leechers}
	for i, d := range daemons {
		c := udpTracker(t, d, "127.0.0.1:0")
		eventually.Holds(t, func() string {
			if got := c.scrape(ih)[0]; got != want {
				return fmt.Sprintf("daemon %d scrapes %+v, want %+v", i, got, want)
			}
			return ""
		})
	}
}

// TestRedisOutage stops Redis under a running daemon: announces and
// scrapes fail with the generic error, /readyz turns 503, the failures are
// counted, and service resumes when Redis is back, without a restart.
func TestRedisOutage(t *testing.T) {
	srv := startRedisServer(t, "redis-server")
	d := start(t, redisConfig(t, map[interface{}]interface{}{"redis_broker": "redis://" + srv.Addr + "/0"}))
	base := "http://" + d.Addr(t, "http")
	ih := hash(71)
	seeder := httpAnnounce{infoHash: ih, peerID: id("-TR3000-out"), port: 42001, event: "started"}
	httpServed(t, httpGet(t, seeder.url(base)))
	if status, body := readyz(t, d); status != http.StatusOK {
		t.Fatalf("/readyz with Redis up: %d %q", status, body)
	}
	errorsBefore := d.Metric(t, "chihaya_storage_errors_total", nil)

	srv.Kill()
	const generic = "internal tracker error"
	sent := time.Now()
	httpRefused(t, httpGet(t, seeder.url(base)), generic)
	t.Logf("HTTP announce failed %s after the request was sent", time.Since(sent).Round(time.Millisecond))
	httpRefused(t, httpGet(t, base+"/scrape?info_hash="+frontendtest.EscapeBytes(ih[:])), generic)
	u := udpTracker(t, d, "127.0.0.1:0")
	udpRefused(t, u.announce(ih, id("-qB4520-out"), 10, 2, 42002, 10, nil), generic)
	if status, body := readyz(t, d); status != http.StatusServiceUnavailable || !strings.Contains(body, "storage") {
		t.Fatalf("/readyz with Redis down: %d %q, want 503 naming the storage", status, body)
	}
	if n := d.Metric(t, "chihaya_storage_errors_total", nil); n <= errorsBefore {
		t.Fatalf("chihaya_storage_errors_total %v, want more than %v", n, errorsBefore)
	}
	if strings.Contains(d.Log(), `"level":"fatal"`) || !d.Running() {
		t.Fatal("the daemon did not keep running")
	}

	// Redis comes back on the same address, empty (it had no persistence).
	port, _ := strconv.Atoi(srv.Addr[strings.LastIndexByte(srv.Addr, ':')+1:])
	if _, err := redistest.StartOn(t, "redis-server", port); err != nil {
		t.Skipf("could not restart Redis on port %d: %v", port, err)
	}
	eventually.Holds(t, func() string {
		if status, body := readyz(t, d); status != http.StatusOK {
			return fmt.Sprintf("/readyz after Redis came back: %d %q", status, body)
		}
		return ""
	})
	httpServed(t, httpGet(t, seeder.url(base)))
	leecher := httpAnnounce{infoHash: ih, peerID: id("-qB4520-out"), port: 42002, left: 10, event: "started"}
	eventually.Holds(t, func() string {
		peers, _ := httpGet(t, leecher.url(base))["peers"].(string)
		if got := compactPeers(t, peers, 6); len(got) != 1 || got[0] != "127.0.0.1:42001" {
			return "after recovery the leecher got " + strings.Join(got, ",")
		}
		return ""
	})
}

// TestRedisHang stops Redis with SIGSTOP under a daemon with the default
// timeouts (redis_read_timeout 1s, http write_timeout 2s): the kernel
// still accepts connections to Redis but nothing answers. Every client
// must still get the generic error, over HTTP (not a connection closed
// without a reply) and over UDP (an error packet, for each of several
// clients at once), /readyz must turn 503, and service must resume, with
// the swarm, once Redis continues.
func TestRedisHang(t *testing.T) {
	srv := startRedisServer(t, "redis-server")
	cfg := redisConfig(t, map[interface{}]interface{}{"redis_broker": "redis://" + srv.Addr + "/0"})
	c := section(cfg, "chihaya")
	sc := section(section(c, "storage"), "config")
	for _, k := range []string{"redis_read_timeout", "redis_write_timeout", "redis_connect_timeout"} {
		delete(sc, k) // the defaults
	}
	section(c, "http")["write_timeout"] = "2s" // the default
	d := start(t, cfg)
	base := "http://" + d.Addr(t, "http")
	ih := hash(91)
	seeder := httpAnnounce{infoHash: ih, peerID: id("-TR3000-hang"), port: 44001, event: "started"}
	httpServed(t, httpGet(t, seeder.url(base)))
	if status, body := readyz(t, d); status != http.StatusOK {
		t.Fatalf("/readyz with Redis up: %d %q", status, body)
	}
	errorsBefore := d.Metric(t, "chihaya_storage_errors_total", nil)

	srv.Pause(t)
	const generic = "internal tracker error"
	leecher := httpAnnounce{infoHash: ih, peerID: id("-qB4520-hang"), port: 44002, left: 10, event: "started"}
	sent := time.Now()
	httpRefused(t, httpGet(t, leecher.url(base)), generic)
	t.Logf("first HTTP announce to the hung Redis refused after %s", time.Since(sent).Round(time.Millisecond))
	sent = time.Now()
	httpRefused(t, httpGet(t, base+"/scrape?info_hash="+frontendtest.EscapeBytes(ih[:])), generic)
	t.Logf("HTTP scrape refused after %s", time.Since(sent).Round(time.Millisecond))
	sent = time.Now()
	for i, msg := range udpAnnounceAtOnce(t, d, ih, 8) {
		if msg != generic {
			t.Errorf("UDP client %d of 8 announcing at once: %q, want the error %q", i, msg, generic)
		}
	}
	t.Logf("8 UDP announces at once all answered within %s", time.Since(sent).Round(time.Millisecond))
	if status, body := readyz(t, d); status != http.StatusServiceUnavailable || !strings.Contains(body, "storage") {
		t.Fatalf("/readyz with Redis hung: %d %q, want 503 naming the storage", status, body)
	}
	if n := d.Metric(t, "chihaya_storage_errors_total", nil); n <= errorsBefore {
		t.Fatalf("chihaya_storage_errors_total %v, want more than %v", n, errorsBefore)
	}

	srv.Resume()
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, body := readyz(t, d)
		if status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz 30s after Redis continued: %d %q", status, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	eventually.Holds(t, func() string {
		peers, _ := httpGet(t, leecher.url(base))["peers"].(string)
		if got := compactPeers(t, peers, 6); len(got) != 1 || got[0] != "127.0.0.1:44001" {
			return "after Redis continued the leecher got " + strings.Join(got, ",") + ", want the seeder announced before the hang"
		}
		return ""
	})
	if !d.Running() {
		t.Fatal("the daemon did not keep running")
	}
}

// udpAnnounceAtOnce connects n UDP clients, then sends one announce from
// each at once, and returns the error message each got back ("" for a
// served announce). Each client waits 3 seconds for its reply, as the
// other tests' clients do (a real client first retries after 15).
func udpAnnounceAtOnce(t *testing.T, d *daemontest.Daemon, ih [20]byte, n int) []string {
	t.Helper()
	clients := make([]*udpClient, n)
	for i := range clients {
		clients[i] = udpTracker(t, d, "127.0.0.1:0")
	}
	tids := make([]uint32, n)
	for i, c := range clients {
		var pkt []byte
		pkt, tids[i] = c.announcePacket(ih, id(fmt.Sprintf("-qB4520-u%02d", i)), 10, 2, uint16(45000+i), 10, nil)
		if _, err := c.conn.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}
	wait := time.Now().Add(3 * time.Second)
	out := make([]string, n)
	buf := make([]byte, 2048)
	for i, c := range clients {
		_ = c.conn.SetReadDeadline(wait)
		m, err := c.conn.Read(buf)
		if err != nil {
			out[i] = "no reply: " + err.Error()
			continue
		}
		out[i] = c.parseAnnounceReply(buf[:m], tids[i]).errMsg
	}
	return out
}

// seedersStored returns how many IPv4 seeders of ih's swarm c holds: in
// the swarm's own hash, or, for a swarm of one peer, in a bucket hash
// shared with other swarms (e2e:{bN}4, the info hash the field, the
// role the value's last byte: storage/redis/bucket.go).
func seedersStored(c *redis.Client, ih [20]byte) (int64, error) {
	ctx := context.Background()
	n, err := c.HLen(ctx, "e2e:{"+fmt.Sprintf("%x", ih)+"}4s").Result()
	if err != nil || n > 0 {
		return n, err
	}
	buckets, err := c.Keys(ctx, "e2e:{b*}4").Result()
	if err != nil {
		return 0, err
	}
	for _, b := range buckets {
		v, err := c.HGet(ctx, b, string(ih[:])).Result()
		if err == nil && strings.HasSuffix(v, "s") {
			return 1, nil
		}
	}
	return 0, nil
}

// TestRedisSentinelFailover kills the Redis master under a daemon that
// finds it through a sentinel: within 40 seconds the daemon serves again
// from the promoted replica, with the swarm written before the failover.
func TestRedisSentinelFailover(t *testing.T) {
	master := startRedisServer(t, "redis-server")
	host, port, _ := net.SplitHostPort(master.Addr)
	replica := startRedisServer(t, "redis-server", "replicaof "+host+" "+port)
	sentinel := startRedisServer(t, "redis-sentinel",
		"sentinel monitor tracker "+host+" "+port+" 1",
		"sentinel down-after-milliseconds tracker 1000",
		"sentinel failover-timeout tracker 10000")
	sc, rc := sentinel.Conn(t), replica.Conn(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		known, err := sc.Do(context.Background(), "SENTINEL", "REPLICAS", "tracker").Slice()
		info, _ := rc.Info(context.Background(), "replication").Result()
		if err == nil && len(known) > 0 && strings.Contains(info, "master_link_status:up") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sentinel did not see the replica within 30s: %v\n%s", err, sentinel.LogText())
		}
		time.Sleep(100 * time.Millisecond)
	}

	d := start(t, redisConfig(t, map[interface{}]interface{}{
		"redis_broker":         "redis://127.0.0.1:1/0", // the sentinel names the master
		"sentinel_addrs":       []string{sentinel.Addr},
		"sentinel_master_name": "tracker",
	}))
	base := "http://" + d.Addr(t, "http")
	ih := hash(81)
	httpServed(t, httpGet(t, httpAnnounce{infoHash: ih, peerID: id("-TR3000-fo"), port: 43001, event: "started"}.url(base)))
	mc := master.Conn(t)
	eventually.Holds(t, func() string {
		n, err := seedersStored(mc, ih)
		if err != nil || n != 1 {
			return fmt.Sprintf("the seeder is not in Redis: %d %v", n, err)
		}
		return ""
	})
	// The replica must hold the seeder before the master dies. (WAIT on
	// this connection would not tell: it only covers the writes made on
	// it, and the daemon wrote through its own.)
	eventually.Holds(t, func() string {
		n, err := seedersStored(rc, ih)
		if err != nil || n != 1 {
			return fmt.Sprintf("the seeder has not reached the replica: %d %v", n, err)
		}
		return ""
	})

	master.Kill()
	killed := time.Now()
	leecher := httpAnnounce{infoHash: ih, peerID: id("-qB4520-fo"), port: 43002, left: 10, event: "started"}
	for {
		status, body, err := get(leecher.url(base))
		if err == nil && status == http.StatusOK {
			peers, _ := decodePeers(body)
			if len(peers) == 1 && peers[0] == "127.0.0.1:43001" {
				break
			}
		}
		// A Sentinel starved of CPU for 2s enters TILT mode and acts on
		// nothing for the next 30s; that is Redis's own safety rule, not
		// the tracker's failure, so the wait allows for it.
		limit := 40 * time.Second
		if strings.Contains(sentinel.LogText(), "+tilt") {
			limit = 100 * time.Second
		}
		if time.Since(killed) > limit {
			t.Fatalf("%s after the master died: %d %q %v\nsentinel log:\n%s", limit, status, body, err, sentinel.LogText())
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("serving the old swarm %s after the master was killed", time.Since(killed).Round(100*time.Millisecond))
	if status, body := readyz(t, d); status != http.StatusOK {
		t.Fatalf("/readyz after the failover: %d %q", status, body)
	}
}

// decodePeers returns the compact IPv4 peers of a bencoded announce reply.
func decodePeers(body string) ([]string, error) {
	v, err := frontendtest.DecodeBencode([]byte(body))
	if err != nil {
		return nil, err
	}
	d, _ := v.(map[string]interface{})
	s, _ := d["peers"].(string)
	var out []string
	for i := 0; i+6 <= len(s); i += 6 {
		out = append(out, net.JoinHostPort(net.IP([]byte(s[i:i+4])).String(), strconv.Itoa(int(s[i+4])<<8|int(s[i+5]))))
	}
	return out, nil
}

// TestRedisGaugesHealAfterKill: a daemon killed with SIGKILL never sends
// the changes its announces made to the shared totals (it sends them with
// its reports, here never, and at a clean stop); the instance that
// survives it makes its gauges exact again with its next collection.
func TestRedisGaugesHealAfterKill(t *testing.T) {
	srv := startRedisServer(t, "redis-server")
	broker := "redis://" + srv.Addr + "/0"
	a := start(t, redisConfig(t, map[interface{}]interface{}{
		"redis_broker": broker, "prometheus_reporting_interval": "1h", "gc_interval": "30m",
	}))
	b := start(t, redisConfig(t, map[interface{}]interface{}{
		"redis_broker": broker, "prometheus_reporting_interval": "200ms", "gc_interval": "2s",
	}))
	ua := udpTracker(t, a, "127.0.0.1:0")
	const leechers = 30
	for i := range leechers {
		if r := ua.announce(hash(byte(60+i%3)), id(fmt.Sprintf("-qB4520-k%02d", i)), 100, 2, uint16(42000+i), 0, nil); r.errMsg != "" {
			t.Fatalf("announce %d: %+v", i, r)
		}
	}
	a.Signal(t, syscall.SIGKILL)
	_ = a.Wait(t)
	leecherGauge := map[string]string{"address_family": "IPv4", "role": "leecher"}
	swarmGauge := map[string]string{"address_family": "IPv4"}
	eventually.Holds(t, func() string {
		l, w := b.Metric(t, "chihaya_storage_peers", leecherGauge), b.Metric(t, "chihaya_storage_swarms", swarmGauge)
		if l != leechers || w != 3 {
			return fmt.Sprintf("the survivor's gauges say %v leechers in %v swarms, want %d in 3", l, w, leechers)
		}
		return ""
	})
}
