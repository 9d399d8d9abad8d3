package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/locality"
	"github.com/chihaya/chihaya/storage/redis/redistest"
	"github.com/chihaya/chihaya/storage/storagetest"
)

var prefixSeq atomic.Uint64

// newStore builds a store on srv under a key prefix of its own, so every
// store a test makes starts empty, and stops it when the test ends.
func newStore(tb testing.TB, srv *server, edit ...func(*Config)) *PeerStore {
	tb.Helper()
	s := newUnstopped(tb, srv, edit...)
	tb.Cleanup(func() { _ = s.Stop(context.Background()) })
	return s
}

// newUnstopped is newStore for the storagetest suites, which stop the
// stores themselves (a benchmark's store outlives the first run it was
// made in).
func newUnstopped(tb testing.TB, srv *server, edit ...func(*Config)) *PeerStore {
	tb.Helper()
	s, err := New(testConfig(srv.Addr, edit...))
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// testConfig is the config of a test's store on the Redis at addr, under
// a key prefix of its own, with edit applied.
func testConfig(addr string, edit ...func(*Config)) Config {
	// Generous timeouts: these tests check what the store does, not how
	// fast, and under the race detector on two busy cores hundreds of
	// concurrent dials can take longer than the 1 s defaults.
	cfg := Config{
		RedisBroker:         "redis://" + addr + "/0",
		KeyPrefix:           "test" + strconv.FormatUint(prefixSeq.Add(1), 10) + ":",
		RedisConnectTimeout: 10 * time.Second,
		RedisReadTimeout:    10 * time.Second,
		RedisWriteTimeout:   10 * time.Second,
		// The storage contract checks the peer IDs it gets back; the
		// tests of keep_peer_ids off say so (ids_test.go).
		KeepPeerIDs: true,
	}.WithDefaults()
	for _, e := range edit {
		e(&cfg)
	}
	return cfg
}

// newDialing is newStore with every connection dialled through dial, from
// the first.
func newDialing(tb testing.TB, srv *server, dial func(ctx context.Context, network, addr string) (net.Conn, error), edit ...func(*Config)) *PeerStore {
	tb.Helper()
	return startDialing(tb, testConfig(srv.Addr, edit...), dial)
}

// startDialing starts a store of cfg with every connection dialled
// through dial, from the first, and stops it when the test ends.
func startDialing(tb testing.TB, cfg Config, dial func(ctx context.Context, network, addr string) (net.Conn, error)) *PeerStore {
	tb.Helper()
	s, err := build(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	s.netDial = dial
	if err := s.start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Stop(context.Background()) })
	return s
}

func TestPeerStore(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	storagetest.Run(t, func(t *testing.T) storage.PeerStore { return newUnstopped(t, srv) })
}

func BenchmarkPeerStore(b *testing.B) {
	srv := startRedis(b)
	storagetest.RunBenchmarks(b, func(b *testing.B) storage.PeerStore { return newUnstopped(b, srv) })
}

func peer4(n int) bittorrent.Peer {
	return bittorrent.Peer{
		ID:       bittorrent.PeerID{byte(n >> 8), byte(n), 'i', 'd'},
		AddrPort: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(n >> 8), byte(n)}), 6881),
	}
}

func ih(n int) bittorrent.InfoHash { return bittorrent.InfoHash{byte(n >> 8), byte(n), 'i', 'h'} }

func must(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// TestCountsExactAcrossInstances drives one swarm from several stores on
// the same Redis at once, as several tracker instances do, through joins,
// completions, stops and expiry, and checks the counts against the truth.
func TestCountsExactAcrossInstances(t *testing.T) {
	srv := startRedis(t)
	first := newStore(t, srv)
	stores := []*PeerStore{first}
	for range 3 {
		stores = append(stores, newStore(t, srv, func(c *Config) { c.KeyPrefix = first.cfg.KeyPrefix }))
	}

	const peers = 400
	storagetest.Parallel(t, peers, func(i int) error {
		// Each peer talks to instances in turn, like behind a load
		// balancer: it starts, announces again, and every third
		// completes; every fifth then stops.
		s := func(k int) *PeerStore { return stores[(i+k)%len(stores)] }
		p := peer4(i)
		steps := []func() error{
			func() error { return s(0).PutLeecher(ih(1), p) },
			func() error { return s(1).PutLeecher(ih(1), p) },
		}
		if i%3 == 0 {
			steps = append(steps, func() error { return s(2).GraduateLeecher(ih(1), p) })
		}
		if i%5 == 0 {
			steps = append(steps, func() error { return s(3).DeletePeer(ih(1), p) })
		}
		for _, f := range steps {
			if err := f(); err != nil {
				return err
			}
		}
		return nil
	})

	var wantSeeders, wantLeechers uint32
	for i := range peers {
		switch {
		case i%5 == 0:
		case i%3 == 0:
			wantSeeders++
		default:
			wantLeechers++
		}
	}
	want := storage.Counts{Seeders: wantSeeders, Leechers: wantLeechers, Downloads: (peers + 2) / 3}
	for i, s := range stores {
		got, err := s.ScrapeSwarm(ih(1), bittorrent.IPv4)
		must(t, "ScrapeSwarm", err)
		if got != want {
			t.Errorf("instance %d scrapes %+v, want %+v", i, got, want)
		}
	}
	st, err := first.Stats()
	must(t, "Stats", err)
	if st.Seeders[0] != uint64(wantSeeders) || st.Leechers[0] != uint64(wantLeechers) || st.Swarms[0] != 1 {
		t.Errorf("stats %+v, want 1 swarm, %d seeders, %d leechers", st, wantSeeders, wantLeechers)
	}

	// Expiry run by two instances at once removes every peer exactly once.
	var gc sync.WaitGroup
	for _, s := range stores[:2] {
		gc.Add(1)
		go func() {
			defer gc.Done()
			if err := s.CollectGarbage(time.Now().Add(time.Hour)); err != nil {
				t.Error(err)
			}
		}()
	}
	gc.Wait()
	got, err := stores[2].ScrapeSwarm(ih(1), bittorrent.IPv4)
	must(t, "ScrapeSwarm", err)
	if want := (storage.Counts{Downloads: (peers + 2) / 3}); got != want {
		t.Errorf("after expiry: %+v, want %+v", got, want)
	}
	if st, err := first.Stats(); err != nil || st != (storage.Stats{}) {
		t.Errorf("stats after expiry: %+v %v, want all zero", st, err)
	}
}

// TestCollectGarbageBatches fills more swarms and stale peers than one
// SSCAN of the index returns, and checks that collection still removes
// every stale peer, keeps fresh ones, and leaves no key behind but the
// downloads and the totals.
func TestCollectGarbageBatches(t *testing.T) {
	srv := startRedis(t)
	s := newStore(t, srv)
	c := srv.Conn(t)
	ctx := context.Background()

	// Stale peers are written straight into Redis with an old stamp: 3
	// swarms of 1500 peers, and 200 swarms of one (more than one SSCAN),
	// plus one fresh peer.
	old := time.Now().Add(-time.Hour).Unix()
	for sw := range 203 {
		n := 1
		if sw < 3 {
			n = 1500
		}
		for i := range n {
			must(t, "put", s.PutLeecher(ih(sw), peer4(i)))
		}
		k := s.keys(ih(sw))
		all, err := c.HGetAll(ctx, k.roles[0][1]).Result()
		must(t, "HGETALL", err)
		pipe := c.Pipeline()
		for f, v := range all {
			b := []byte(v)
			pipe.HSet(ctx, k.roles[0][1], f, string(appendValue(nil, bittorrent.PeerID(b[:20]), old)))
		}
		_, err = pipe.Exec(ctx)
		must(t, "HSET", err)
		staleBucket(t, c, &k, bittorrent.IPv4, old)
	}
	must(t, "put fresh", s.PutSeeder(ih(0), peer4(5000)))
	must(t, "graduate", s.GraduateLeecher(ih(300), peer4(1)))

	must(t, "CollectGarbage", s.CollectGarbage(time.Now().Add(-time.Minute)))

	tests := []struct {
		name string
		ih   bittorrent.InfoHash
		want storage.Counts
	}{
		{"big swarm with a fresh seeder", ih(0), storage.Counts{Seeders: 1}},
		{"big swarm", ih(2), storage.Counts{}},
		{"small swarm", ih(150), storage.Counts{}},
		{"fresh peer of a graduate", ih(300), storage.Counts{Seeders: 1, Downloads: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ScrapeSwarm(tc.ih, bittorrent.IPv4)
			must(t, "ScrapeSwarm", err)
			if got != tc.want {
				t.Errorf("%+v, want %+v", got, tc.want)
			}
		})
	}
	st, err := s.Stats()
	must(t, "Stats", err)
	if want := (storage.Stats{Swarms: [2]uint64{2, 0}, Seeders: [2]uint64{2, 0}}); st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	keys, err := c.Keys(ctx, s.cfg.KeyPrefix+"*").Result()
	must(t, "KEYS", err)
	// Two swarms of one seeder, one downloads counter and the totals: no
	// swarm index (collection finds swarms by SCAN).
	if len(keys) != 4 {
		t.Errorf("keys left: %q, want 4", keys)
	}
}

// TestRedisDown checks that with Redis gone every operation fails fast
// with a driver error, Ready fails, and the same store works again once
// Redis is back on the same address.
func TestRedisDown(t *testing.T) {
	srv := startRedis(t)
	s := newStore(t, srv)
	must(t, "put", s.PutSeeder(ih(1), peer4(1)))
	port := srv.Addr[len("127.0.0.1:"):]
	srv.Kill()

	before := testErrors("announce")
	ops := []struct {
		name string
		f    func() error
	}{
		{"announce", func() error {
			_, _, _, err := s.AnnouncePeers(nil, ih(1), false, 10, peer4(2))
			return err
		}},
		{"scrape", func() error { _, err := s.ScrapeSwarm(ih(1), bittorrent.IPv4); return err }},
		{"put", func() error { return s.PutLeecher(ih(1), peer4(2)) }},
		{"delete", func() error { return s.DeletePeer(ih(1), peer4(2)) }},
		{"ready", func() error { return s.Ready(context.Background()) }},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			err := op.f()
			if err == nil {
				t.Fatal("no error with Redis down")
			}
			if got := err.Error(); len(got) < 14 || got[:14] != "storage/redis:" {
				t.Errorf("error %q does not name the driver", got)
			}
		})
	}
	if testErrors("announce") <= before {
		t.Error("chihaya_storage_errors_total{operation=announce} did not grow")
	}

	// Back on the same port: the same store serves again.
	if _, err := redistest.StartOn(t, "redis-server", mustAtoi(t, port)); err != nil {
		t.Skipf("port %s taken meanwhile: %v", port, err)
	}
	time.Sleep(downBackoff)
	must(t, "Ready after restart", s.Ready(context.Background()))
	must(t, "put after restart", s.PutSeeder(ih(1), peer4(1)))
	c, err := s.ScrapeSwarm(ih(1), bittorrent.IPv4)
	must(t, "scrape after restart", err)
	if c.Seeders != 1 {
		t.Errorf("after restart: %+v, want 1 seeder", c)
	}
}

// TestRedisHang stops Redis with SIGSTOP: connections are still accepted
// but nothing answers, so every exchange ends in a timeout. Only the first
// request and then one probe at a time may wait for that timeout; every
// other request fails at once, Ready fails, and the same store serves
// again, with its swarms, once Redis continues.
func TestRedisHang(t *testing.T) {
	srv := startRedis(t)
	var dials atomic.Int64
	s := newDialing(t, srv, func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}, func(c *Config) {
		// Shorter than newStore's, as every probe of a hung Redis waits
		// this long; still ample for a healthy Redis under -race.
		c.RedisReadTimeout, c.RedisWriteTimeout, c.RedisConnectTimeout = 2*time.Second, 2*time.Second, 2*time.Second
	})
	must(t, "put", s.PutSeeder(ih(1), peer4(1)))
	// Several idle connections in the pool, as under load: each was
	// borrowed before the hang and would wait its own timeout.
	var warm sync.WaitGroup
	for i := range 8 {
		warm.Add(1)
		go func() {
			defer warm.Done()
			must(t, "warm-up put", s.PutLeecher(ih(2), peer4(100+i)))
		}()
	}
	warm.Wait()

	srv.Pause(t)
	announce := func() error {
		_, _, _, err := s.AnnouncePeers(nil, ih(1), false, 10, peer4(2))
		return err
	}
	// The first request finds out the hard way.
	if err := announce(); !isTimeout(err) {
		t.Fatalf("first announce to a hung Redis: %v, want a timeout", err)
	}

	const n = 64
	errs := make([]error, n)
	var wg sync.WaitGroup
	dialsBefore := dials.Load()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				errs[i] = announce()
			} else {
				_, errs[i] = s.ScrapeSwarm(ih(1), bittorrent.IPv4)
			}
		}()
	}
	wg.Wait()
	timeouts := 0
	for i, err := range errs {
		switch {
		case err == nil:
			t.Errorf("request %d succeeded on a hung Redis", i)
		case !strings.HasPrefix(err.Error(), "storage/redis: "):
			t.Errorf("error %q does not name the driver", err)
		case isTimeout(err):
			timeouts++
		case !errors.Is(err, errDown):
			t.Errorf("request %d: %v, want a timeout or a fast %q", i, err, errDown)
		}
	}
	t.Logf("%d of %d requests to the hung Redis waited for a timeout, %d dials", timeouts, n, dials.Load()-dialsBefore)
	// One probe per round of downBackoff plus a timeout: the batch takes
	// a small fraction of a round, so one or two at most; 8 would need the
	// batch to last 8 rounds (18 s). Before the fix all 64 waited (twice).
	if timeouts > n/8 {
		t.Errorf("%d of %d requests to a hung Redis waited for a timeout, want at most %d", timeouts, n, n/8)
	}
	if d := dials.Load() - dialsBefore; d > n/8 {
		t.Errorf("%d connections dialled to a hung Redis by %d requests, want at most %d", d, n, n/8)
	}
	if err := s.Ready(context.Background()); err == nil {
		t.Error("Ready with Redis hung: nil, want an error")
	}

	srv.Resume()
	deadline := time.Now().Add(30 * time.Second)
	for s.Ready(context.Background()) != nil {
		if time.Now().After(deadline) {
			t.Fatal("Ready still failing 30s after Redis continued")
		}
		time.Sleep(50 * time.Millisecond)
	}
	peers, c, _, err := s.AnnouncePeers(nil, ih(1), false, 10, peer4(2))
	must(t, "announce after the hang", err)
	if len(peers) != 1 || peers[0] != peer4(1) || c.Seeders != 1 {
		t.Errorf("announce after the hang: %v %+v, want the seeder stored before", peers, c)
	}
	must(t, "put after the hang", s.PutLeecher(ih(1), peer4(2)))
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	must(t, "port", err)
	return n
}

// TestNoScriptFallback flushes the script cache, as a restart or failover
// does, and checks the next operations load the scripts again.
func TestNoScriptFallback(t *testing.T) {
	srv := startRedis(t)
	s := newStore(t, srv)
	must(t, "put", s.PutSeeder(ih(1), peer4(1)))
	must(t, "SCRIPT FLUSH", srv.Conn(t).ScriptFlush(context.Background()).Err())
	must(t, "put after flush", s.PutLeecher(ih(1), peer4(2)))
	peers, c, _, err := s.AnnouncePeers(nil, ih(1), false, 10, peer4(2))
	must(t, "announce after flush", err)
	if len(peers) != 1 || peers[0] != peer4(1) || c.Seeders != 1 || c.Leechers != 1 {
		t.Errorf("announce after flush: %v %+v, want the seeder and 1+1", peers, c)
	}
}

// TestDriverRegistered builds the store through the registry, as the
// daemon does.
func TestDriverRegistered(t *testing.T) {
	srv := startRedis(t)
	s, err := storage.New("redis", []byte("redis_broker: redis://"+srv.Addr+"/3\nkey_prefix: \"reg:\"\n"))
	must(t, "storage.New", err)
	defer s.Stop(context.Background())
	must(t, "Ready", s.Ready(context.Background()))
	must(t, "put", s.PutSeeder(ih(1), peer4(1)))
	// The database number of the URL is honoured.
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, DB: 3, Protocol: 2, DisableIdentity: true})
	defer c.Close()
	if n, err := c.Exists(context.Background(), "reg:n").Result(); err != nil || n != 1 {
		t.Errorf("reg:n in database 3: %d %v, want it there", n, err)
	}
}

// TestPassword checks the password of the URL is sent, in both of the
// forms upstream accepts, and that a refused one fails the start with an
// error that says so.
func TestPassword(t *testing.T) {
	srv := startRedis(t, "requirepass s3cret")
	tests := []struct {
		name, url string
		ok        bool
	}{
		{"colon password", "redis://:s3cret@" + srv.Addr + "/0", true},
		{"lone word", "redis://s3cret@" + srv.Addr + "/0", true},
		{"wrong", "redis://:nope@" + srv.Addr + "/0", false},
		{"none", "redis://" + srv.Addr + "/0", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(Config{RedisBroker: tc.url, KeyPrefix: "pw:"}.WithDefaults())
			if !tc.ok {
				if err == nil || !strings.Contains(err.Error(), "storage/redis: redis_broker: the password is refused") {
					t.Errorf("New: %v, want the password refused", err)
				}
				if s != nil {
					_ = s.Stop(context.Background())
				}
				return
			}
			must(t, "New", err)
			defer s.Stop(context.Background())
			must(t, "Ready", s.Ready(context.Background()))
		})
	}
}

// testErrors reads chihaya_storage_errors_total for an operation.
func testErrors(op string) float64 {
	mfs, _ := prometheus.DefaultGatherer.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "chihaya_storage_errors_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "operation" && l.GetValue() == op {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// BenchmarkRedisMemoryPerPeer reports Redis' used_memory per stored peer
// (redis-B/peer) for swarms of several sizes: small swarms are stored
// compactly (listpacks), large ones as skip lists and hash tables. With
// locality on (grouped by /24) the cost may depend on how many peers
// share a /24: peers in a few racks, every peer of a swarm alone in its
// /24 ("subnet-each"), or addresses spread at random over 65,536 /24s
// ("spread": 200,000 peers over 10,000 torrents, as an open tracker sees
// them). Each case runs with keep_peer_ids off (the default) and on.
func BenchmarkRedisMemoryPerPeer(b *testing.B) {
	for _, keep := range []bool{false, true} {
		b.Run(fmt.Sprintf("keep_peer_ids=%v", keep), func(b *testing.B) { benchmarkRedisMemoryPerPeer(b, keep) })
	}
}

func benchmarkRedisMemoryPerPeer(b *testing.B, keep bool) {
	type layout int
	const (
		flat    layout = iota // locality off
		racks                 // locality by /24, each swarm's peers in 4 racks
		subnets               // locality by /24, every peer alone in its /24
		spread                // locality by /24, addresses at random
	)
	for _, tc := range []struct {
		name          string
		layout        layout
		peers, swarms int
	}{
		{"locality=off/peers=100000/swarm=1", flat, 100_000, 100_000},
		{"locality=off/peers=100000/swarm=10", flat, 100_000, 10_000},
		{"locality=off/peers=200000/swarm=20", flat, 200_000, 10_000},
		{"locality=off/peers=100000/swarm=1000", flat, 100_000, 100},
		{"locality=racks/peers=100000/swarm=1", racks, 100_000, 100_000},
		{"locality=racks/peers=100000/swarm=10", racks, 100_000, 10_000},
		{"locality=racks/peers=100000/swarm=1000", racks, 100_000, 100},
		{"locality=subnet-each/peers=100000/swarm=10", subnets, 100_000, 10_000},
		{"locality=subnet-each/peers=100000/swarm=1000", subnets, 100_000, 100},
		{"locality=spread/peers=200000/swarm=20", spread, 200_000, 10_000},
		{"locality=spread/peers=100000/swarm=1000", spread, 100_000, 100},
		// Just past a power of two of a role's size (a fifth seeders),
		// where Redis' hash tables are about half empty: the worst sizes.
		{"locality=off/peers=100230/swarm=2570", flat, 100_230, 39},
		{"locality=spread/peers=100100/swarm=650", spread, 100_100, 154},
		{"locality=spread/peers=100620/swarm=1290", spread, 100_620, 78},
		{"locality=spread/peers=100230/swarm=2570", spread, 100_230, 39},
		{"locality=spread/peers=102600/swarm=5130", spread, 102_600, 20},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for range b.N {
				srv := startRedis(b)
				s := newStore(b, srv, func(c *Config) {
					c.KeepPeerIDs = keep
					if tc.layout != flat {
						c.Locality = locality.Config{Enabled: true}.WithDefaults()
					}
				})
				c := srv.Conn(b)
				// Loaded before, so that the scripts are not measured.
				for _, sc := range []*script{putScript, putLocalScript, tinyScript} {
					if err := c.ScriptLoad(context.Background(), sc.src).Err(); err != nil {
						b.Fatal(err)
					}
				}
				before := usedMemory(b, c)
				// Sixteen writers: a round trip per peer one after another
				// would make the fill the slowest part of the run.
				var wg sync.WaitGroup
				for w := range 16 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for j := w; j < tc.peers; j += 16 {
							// i numbers the peers of a swarm.
							sw, i := j%tc.swarms, j/tc.swarms
							var a [4]byte
							port := 6881
							switch tc.layout {
							case flat:
								a = [4]byte{10, byte(j >> 16), byte(j >> 8), byte(j)}
							case racks: // 10.0.rack.host, hosts past 256 on other ports
								a = [4]byte{10, 0, byte(i % 4), byte(i / 4)}
								port += i / 1024
							case subnets:
								a = [4]byte{byte(10 + i>>16), byte(i >> 8), byte(i), 1}
							case spread: // a multiplicative hash of j: 10.x.y.z
								h := uint32(j) * 2654435761
								a = [4]byte{10, byte(h >> 24), byte(h >> 16), byte(h >> 8)}
								port += int(h & 0xff)
							}
							p := peer4(j % 65536)
							p.AddrPort = netip.AddrPortFrom(netip.AddrFrom4(a), uint16(port))
							// ih wraps at 65536; this does not.
							h := bittorrent.InfoHash{byte(sw >> 16), byte(sw >> 8), byte(sw), 'm'}
							u := storage.UpdateLeecher
							if j%5 == 0 {
								u = storage.UpdateSeeder
							}
							var err error
							if tc.layout == flat {
								// The daemon's path: Announce (plain commands).
								_, _, _, err = s.Announce(nil, h, u, 0, p)
							} else if u == storage.UpdateSeeder {
								err = s.PutSeeder(h, p)
							} else {
								err = s.PutLeecher(h, p)
							}
							if err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				after := usedMemory(b, c)
				b.ReportMetric(float64(after-before)/float64(tc.peers), "redis-B/peer")
				st, err := s.Stats()
				if err != nil || st.Seeders[0]+st.Leechers[0] != uint64(tc.peers) {
					b.Fatalf("stats %+v %v, want %d peers", st, err, tc.peers)
				}
				srv.Kill()
			}
		})
	}
}

func usedMemory(b *testing.B, c *redis.Client) int64 {
	b.Helper()
	info, err := c.Info(context.Background(), "memory").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("no used_memory in INFO memory")
	return 0
}

// countingConn counts the writes on a connection: the client flushes once
// per round trip.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

// TestRoundTrips pins the cost of each operation in round trips to Redis,
// once the pool holds a connection: an announce, whatever its event, is
// one (its update and its peer list together), and stays one once
// WebSocket peers exist, whose counts native announces and scrapes add
// (read in the same pipeline); a WebSocket peer's announce is one too.
func TestRoundTrips(t *testing.T) {
	srv := startRedis(t)
	var writes atomic.Int64
	s := newDialing(t, srv, func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		return countingConn{Conn: c, writes: &writes}, err
	})
	for i := range 100 {
		must(t, "put", s.PutLeecher(ih(1), peer4(i)))
	}
	must(t, "put", s.PutSeeder(ih(1), peer4(100)))
	browser := func(i int) bittorrent.Peer {
		p := peer4(i)
		p.Kind = bittorrent.WebSocketPeer
		return p
	}
	for _, web := range []bool{false, true} {
		name, least := "no WebSocket peers", uint32(100)
		if web {
			// A browser leeching the same swarm: every count from now
			// on includes it.
			name, least = "WebSocket peers exist", 101
			must(t, "put browser", s.PutLeecher(ih(1), browser(300)))
		}
		t.Run(name, func(t *testing.T) {
			tests := []struct {
				name string
				op   func() error
				want int64
			}{
				{"announce as a leecher", announceOp(s, storage.UpdateLeecher, peer4(7), least), 1},
				{"announce as a seeder", announceOp(s, storage.UpdateSeeder, peer4(7), least), 1},
				{"announce completed", announceOp(s, storage.UpdateGraduate, peer4(7), least), 1},
				{"announce stopped", announceOp(s, storage.UpdateDelete, peer4(7), least), 1},
				{"announce, addresses only", func() error {
					peers, c, _, err := s.AnnounceAddrs(nil, ih(1), storage.UpdateLeecher, 50, peer4(7), false)
					if err == nil && len(peers) == 0 {
						return fmt.Errorf("answer without peers, %+v", c)
					}
					return countsAtLeast(c, err, least)
				}, 1},
				{"peer list alone", func() error {
					_, c, _, err := s.AnnouncePeers(nil, ih(1), false, 50, peer4(7))
					return countsAtLeast(c, err, least)
				}, 1},
				{"put", func() error { return s.PutLeecher(ih(1), peer4(7)) }, 1},
				{"scrape of 3", func() error {
					c := make([]storage.Counts, 3)
					err := s.ScrapeSwarms(c, []bittorrent.InfoHash{ih(1), ih(2), ih(3)}, bittorrent.IPv4)
					return countsAtLeast(c[0], err, least)
				}, 1},
				{"scrape", func() error { c, err := s.ScrapeSwarm(ih(1), bittorrent.IPv4); return countsAtLeast(c, err, least) }, 1},
				{"stats", func() error { _, err := s.Stats(); return err }, 1},
			}
			if web {
				tests = append(tests, []struct {
					name string
					op   func() error
					want int64
				}{
					{"WebSocket announce", announceOp(s, storage.UpdateLeecher, browser(301), least), 1},
					{"WebSocket announce stopped", announceOp(s, storage.UpdateDelete, browser(301), least), 1},
					{"WebSocket peer list alone", func() error {
						_, c, _, err := s.AnnouncePeers(nil, ih(1), false, 50, browser(301))
						return countsAtLeast(c, err, least)
					}, 1},
				}...)
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					// The first run of a script on a server loads it
					// (EVALSHA, NOSCRIPT, EVAL); the second shows the
					// steady state.
					must(t, tc.name, tc.op())
					before := writes.Load()
					must(t, tc.name, tc.op())
					if got := writes.Load() - before; got != tc.want {
						t.Errorf("%d round trips, want %d", got, tc.want)
					}
				})
			}
		})
	}
}

// announceOp is one announce of p to swarm 1 through Announce, as the
// daemon makes it, that checks its answer: peers (unless stopped), and
// counts of at least least peers of both kinds.
func announceOp(s *PeerStore, u storage.Update, p bittorrent.Peer, least uint32) func() error {
	return func() error {
		peers, c, _, err := s.Announce(nil, ih(1), u, 50, p)
		if err == nil && u != storage.UpdateDelete && len(peers) == 0 {
			return fmt.Errorf("answer without peers, %+v", c)
		}
		return countsAtLeast(c, err, least)
	}
}

// countsAtLeast checks that c counts at least least peers, of both kinds.
func countsAtLeast(c storage.Counts, err error, least uint32) error {
	if err == nil && c.Seeders+c.Leechers < least {
		return fmt.Errorf("counts %+v, want at least %d peers of both kinds", c, least)
	}
	return err
}

// TestCallerGivingUpIsNotAnOutage: a readiness check whose caller hangs
// up while a connection is being dialled (a probe's client timing out)
// fails, but says nothing about Redis: the next request is served, not
// refused as if Redis were down.
func TestCallerGivingUpIsNotAnOutage(t *testing.T) {
	srv := startRedis(t)
	dialing := make(chan struct{}, 1)
	var slow atomic.Bool
	// Built, not started: the start's check would leave a connection in
	// the pool, and Ready must dial.
	s, err := build(Config{RedisBroker: "redis://" + srv.Addr + "/0", KeyPrefix: "giving-up:"}.WithDefaults())
	must(t, "build", err)
	defer s.Stop(context.Background())
	s.netDial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if !slow.Load() {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}
		select {
		case dialing <- struct{}{}:
		default:
		}
		<-ctx.Done() // a dial slower than the caller's patience
		return nil, ctx.Err()
	}
	slow.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-dialing
		cancel()
	}()
	if err := s.Ready(ctx); err == nil {
		t.Fatal("Ready succeeded with a caller that hung up")
	}
	slow.Store(false)
	must(t, "put after the caller gave up", s.PutSeeder(ih(1), peer4(1)))
}

// BenchmarkAnnounce measures one announce as the daemon makes it
// (Announce: the update and the peers in one round trip) in swarms of 20
// peers, numwant 50: the peers announce again in their role, as most
// announces do. It reports Redis' own time per announce from INFO
// commandstats: redis-µs/op sums every command's usec (a script's
// commands are counted both under EVALSHA and under their own names, so
// this counts them twice), redis-top-µs/op only what the driver sends
// (HLEN, GET, EVALSHA, HRANDFIELD); and redis-cpu-µs/op, the CPU time of
// the Redis process (INFO cpu: system and user), network included.
func BenchmarkAnnounce(b *testing.B) {
	const swarms, size = 1000, 20
	s, c, cpu := announceBench(b, swarms, size)
	b.ReportAllocs()
	b.ResetTimer()
	dst := make([]bittorrent.Peer, 0, 64)
	for i := range b.N {
		var err error
		if dst, err = announceAgain(s, dst, i%(swarms*size), swarms, false); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if testing.Verbose() {
		info, _ := c.Info(context.Background(), "commandstats").Result()
		b.Log(info)
	}
	reportRedis(b, c, cpu)
}

// announceBench starts the Redis and the store of an announce benchmark
// (edit applied to its config), stores swarms of size peers, and returns
// the store, a connection to the Redis, and the Redis' CPU time so far,
// its command statistics reset.
func announceBench(b *testing.B, swarms, size int, edit ...func(*Config)) (*PeerStore, *redis.Client, float64) {
	b.Helper()
	srv := startRedis(b)
	s := newStore(b, srv, edit...)
	fill(b, s, swarms, size)
	c := srv.Conn(b)
	must(b, "CONFIG RESETSTAT", c.ConfigResetStat(context.Background()).Err())
	return s, c, redisCPU(b, c)
}

// announceAgain announces peer j of a store filled by fill(…, swarms, …)
// again in its role (a third of the peers are seeders).
// udpAnnounce is s.AnnounceAddrs as the UDP frontend's announces call it:
// no peer IDs, no download count.
func udpAnnounce(s *PeerStore) func([]bittorrent.Peer, bittorrent.InfoHash, storage.Update, int, bittorrent.Peer) ([]bittorrent.Peer, storage.Counts, storage.Role, error) {
	return func(dst []bittorrent.Peer, ih bittorrent.InfoHash, u storage.Update, numWant int, p bittorrent.Peer) ([]bittorrent.Peer, storage.Counts, storage.Role, error) {
		return s.AnnounceAddrs(dst, ih, u, numWant, p, false)
	}
}

func announceAgain(s *PeerStore, dst []bittorrent.Peer, j, swarms int, addrs bool) ([]bittorrent.Peer, error) {
	u := storage.UpdateLeecher
	if j%3 == 0 {
		u = storage.UpdateSeeder
	}
	announce := s.Announce
	if addrs {
		announce = udpAnnounce(s)
	}
	dst, _, _, err := announce(dst[:0], ih(j%swarms), u, 50, peer4(j))
	return dst, err
}

// reportRedis reports Redis' time per operation since cpu was read (see
// BenchmarkAnnounce).
func reportRedis(b *testing.B, c *redis.Client, cpu float64) {
	b.Helper()
	cpu = redisCPU(b, c) - cpu
	all, top := commandUsec(b, c)
	n := float64(b.N)
	b.ReportMetric(all/n, "redis-µs/op")
	b.ReportMetric(top/n, "redis-top-µs/op")
	b.ReportMetric(cpu*1e6/n, "redis-cpu-µs/op")
}

// redisCPU returns the CPU seconds the Redis process has used (INFO cpu).
func redisCPU(tb testing.TB, c *redis.Client) float64 {
	tb.Helper()
	info, err := c.Info(context.Background(), "cpu").Result()
	must(tb, "INFO cpu", err)
	var sum float64
	for _, line := range strings.Split(info, "\r\n") {
		for _, f := range []string{"used_cpu_sys:", "used_cpu_user:"} {
			if v, ok := strings.CutPrefix(line, f); ok {
				n, _ := strconv.ParseFloat(v, 64)
				sum += n
			}
		}
	}
	return sum
}

// commandUsec sums the usec of INFO commandstats: over every command, and
// over the commands the driver sends itself on its hot path.
func commandUsec(tb testing.TB, c *redis.Client) (all, top float64) {
	tb.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	must(tb, "INFO commandstats", err)
	for _, line := range strings.Split(info, "\r\n") {
		name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":")
		if !ok || name == line || name == "config|resetstat" || name == "info" {
			continue
		}
		for _, f := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(f, "usec="); ok {
				n, _ := strconv.ParseFloat(v, 64)
				all += n
				// The commands an announce sends: on a single Redis its
				// update is plain HSET, HDEL (INCR) in a MULTI/EXEC; a script's inner
				// commands have those names too, so with scripts top
				// counts them as well.
				switch name {
				case "evalsha", "hrandfield", "hlen", "get", "hset", "hdel", "incr", "multi", "exec":
					top += n
				}
			}
		}
	}
	return all, top
}

// TestAnnounceAppliesTheUpdate checks storage.Announcer on the store:
// each announce answers with the swarm as it was before it (counts, the
// announcer's role) and applies its update, as PutLeecher, PutSeeder,
// GraduateLeecher and DeletePeer would.
func TestAnnounceAppliesTheUpdate(t *testing.T) {
	srv := startRedis(t)
	s := newStore(t, srv)
	must(t, "seeder", s.PutSeeder(ih(1), peer4(1)))
	p := peer4(2)
	steps := []struct {
		name      string
		u         storage.Update
		wantPeers int
		before    storage.Counts
		role      storage.Role
		after     storage.Counts
	}{
		{"started as a leecher", storage.UpdateLeecher, 1, storage.Counts{Seeders: 1}, storage.Absent, storage.Counts{Seeders: 1, Leechers: 1}},
		{"again as a leecher", storage.UpdateLeecher, 1, storage.Counts{Seeders: 1, Leechers: 1}, storage.Leecher, storage.Counts{Seeders: 1, Leechers: 1}},
		{"completed", storage.UpdateGraduate, 0, storage.Counts{Seeders: 1, Leechers: 1}, storage.Leecher, storage.Counts{Seeders: 2, Downloads: 1}},
		{"again as a seeder", storage.UpdateSeeder, 0, storage.Counts{Seeders: 2, Downloads: 1}, storage.Seeder, storage.Counts{Seeders: 2, Downloads: 1}},
		{"stopped", storage.UpdateDelete, 0, storage.Counts{Seeders: 2, Downloads: 1}, storage.Seeder, storage.Counts{Seeders: 1, Downloads: 1}},
		{"stopped again", storage.UpdateDelete, 0, storage.Counts{Seeders: 1, Downloads: 1}, storage.Absent, storage.Counts{Seeders: 1, Downloads: 1}},
	}
	for _, st := range steps {
		numWant := 50
		if st.u == storage.UpdateDelete {
			numWant = 0
		}
		peers, c, role, err := s.Announce(nil, ih(1), st.u, numWant, p)
		must(t, st.name, err)
		if len(peers) != st.wantPeers || (len(peers) == 1 && peers[0] != peer4(1)) {
			t.Errorf("%s: peers %v, want %d (the seeder)", st.name, peers, st.wantPeers)
		}
		if c != st.before || role != st.role {
			t.Errorf("%s: answered %+v role %d, want %+v role %d (the swarm before)", st.name, c, role, st.before, st.role)
		}
		got, err := s.ScrapeSwarm(ih(1), bittorrent.IPv4)
		must(t, "scrape", err)
		if got != st.after {
			t.Errorf("%s: then %+v, want %+v", st.name, got, st.after)
		}
	}
	stats, err := s.Stats()
	must(t, "Stats", err)
	if want := (storage.Stats{Swarms: [2]uint64{1, 0}, Seeders: [2]uint64{1, 0}}); stats != want {
		t.Errorf("stats %+v, want %+v", stats, want)
	}
}

// TestGoRedisLogNotAttributed: go-redis has one logger per process, which
// this package sets; the lines of other go-redis clients (the eventstream
// hook's) go through it too, so it must not name them as this driver's.
func TestGoRedisLogNotAttributed(t *testing.T) {
	std := logrus.StandardLogger()
	oldOut, oldLevel := std.Out, std.GetLevel()
	hook := logtest.NewGlobal()
	t.Cleanup(func() {
		std.SetOutput(oldOut)
		std.SetLevel(oldLevel)
		std.ReplaceHooks(make(logrus.LevelHooks))
	})
	std.SetOutput(io.Discard)
	std.SetLevel(logrus.DebugLevel)
	// A line of go-redis, as any of its clients in the process logs it.
	goRedisLog{}.Printf(context.Background(), "redis: %s", "another client's line")
	entries := hook.AllEntries()
	if len(entries) != 1 {
		t.Fatalf("%d lines logged, want 1", len(entries))
	}
	if e := entries[0]; e.Level != logrus.DebugLevel || strings.Contains(e.Message, "storage/redis") {
		t.Errorf("go-redis line %q at %s: want debug, not named as the storage driver's", e.Message, e.Level)
	}
}

// TestStopPastDeadlineCloses: Stop given a deadline that passes while
// collection still waits on a hung Redis returns the deadline's error,
// and still closes the connections, so that a stopped store (a reload,
// a library user) leaves none open behind it.
func TestStopPastDeadlineCloses(t *testing.T) {
	srv := startRedis(t)
	s := newUnstopped(t, srv, func(c *Config) {
		c.GarbageCollectionInterval, c.PeerLifetime = 50*time.Millisecond, time.Second
		c.RedisReadTimeout = 2 * time.Second
	})
	must(t, "put", s.PutSeeder(ih(1), peer4(1)))
	srv.Pause(t)
	time.Sleep(300 * time.Millisecond) // a collection round now waits on Redis
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := s.Stop(ctx)
	srv.Resume()
	t.Logf("Stop past its deadline: %v", err)
	// The daemon calls Stop once: once collection has given up, nothing
	// may be left open.
	must(t, "wait for collection", s.loops.Stop(context.Background()))
	if err := s.client.Ping(context.Background()).Err(); !errors.Is(err, redis.ErrClosed) {
		t.Errorf("after Stop, the client answers %v: its connections are still open", err)
	}
}
