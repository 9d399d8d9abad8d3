package redis

import (
	"context"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/locality"
	"github.com/chihaya/chihaya/storage/storagetest"
)

// pipelineCounter is a go-redis hook that counts the pipelines a client
// sends and the commands in them.
type pipelineCounter struct{ pipelines, cmds atomic.Int64 }

func (*pipelineCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (*pipelineCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (h *pipelineCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.pipelines.Add(1)
		h.cmds.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// TestAnnouncesShareRoundTrips sends announces from many goroutines at
// once, as a tracker's sockets do under load: they must share pipelines
// (fewer round trips than announces), and every announce must still get
// its own answer and apply its own update, with exact counts; with
// locality off and on (select.lua and the locality scripts).
func TestAnnouncesShareRoundTrips(t *testing.T) {
	srv := startRedis(t)
	t.Run("locality=off", func(t *testing.T) { testAnnouncesShareRoundTrips(t, newStore(t, srv)) })
	t.Run("locality=on", func(t *testing.T) {
		testAnnouncesShareRoundTrips(t, newStore(t, srv, func(c *Config) {
			c.Locality = locality.Config{Enabled: true}.WithDefaults()
		}))
	})
}

func testAnnouncesShareRoundTrips(t *testing.T, s *PeerStore) {
	var h pipelineCounter
	s.client.AddHook(&h)
	trips := s.roundTrips.Load()
	const peers, rounds = 200, 5
	// Round 0: every peer joins as a leecher; rounds 1-3 announce again;
	// in round 4 half the peers of each swarm complete, the others stop.
	var dls atomic.Int64
	for round := range rounds {
		storagetest.Parallel(t, peers, func(i int) error {
			u := storage.UpdateLeecher
			if round == rounds-1 {
				u = storage.UpdateGraduate
				if (i/4)%2 == 1 {
					u = storage.UpdateDelete
				}
			}
			got, c, role, err := s.Announce(nil, ih(1+i%4), u, 10, peer4(i))
			if err != nil {
				return err
			}
			for _, p := range got {
				if p == peer4(i) {
					t.Errorf("peer %d got itself", i)
				}
			}
			if want := storage.Leecher; round > 0 && role != want {
				t.Errorf("round %d, peer %d: role before %v, want %v", round, i, role, want)
			}
			if round == rounds-1 && u == storage.UpdateGraduate {
				dls.Add(1)
			}
			if c.Seeders+c.Leechers > peers/4 {
				t.Errorf("counts %+v in a swarm of at most %d", c, peers/4)
			}
			return nil
		})
	}
	for sw := range 4 {
		c, err := s.ScrapeSwarm(ih(1+sw), bittorrent.IPv4)
		must(t, "scrape", err)
		if want := (storage.Counts{Seeders: peers / 8, Downloads: peers / 8}); c != want {
			t.Errorf("swarm %d: %+v, want %+v", sw, c, want)
		}
	}
	st, err := s.Stats()
	must(t, "stats", err)
	if st.Seeders[bittorrent.IPv4] != peers/2 || st.Leechers[bittorrent.IPv4] != 0 || st.Swarms[bittorrent.IPv4] != 4 {
		t.Errorf("stats %+v, want %d seeders in 4 swarms", st, peers/2)
	}
	announces := int64(peers * rounds)
	// The announces' round trips, through go-redis (locality) or on the
	// wire path (resp.go).
	p := s.roundTrips.Load() - trips
	t.Logf("%d announces in %d round trips (go-redis: %d pipelines, %d commands)", announces, p, h.pipelines.Load(), h.cmds.Load())
	if p == 0 {
		t.Fatal("no round trip counted")
	}
	if p >= announces {
		t.Errorf("%d announces made %d round trips: none shared", announces, p)
	}
}

// BenchmarkAnnounceParallel is BenchmarkAnnounce with 16 announces in
// progress per CPU, as a loaded tracker has them: they share round trips
// (batch.go). Besides Redis' figures it reports cpu-µs/op, the CPU time of
// the benchmark's process (the tracker's side) per announce, which holds
// on a machine that others load too.
func BenchmarkAnnounceParallel(b *testing.B) {
	announceParallel(b, false)
}

// BenchmarkAnnounceAddrsParallel is BenchmarkAnnounceParallel through
// AnnounceAddrs as UDP announces call it: the peers' addresses without
// their values, and no download count.
func BenchmarkAnnounceAddrsParallel(b *testing.B) {
	announceParallel(b, true)
}

// BenchmarkAnnounceParallelNoIDs is BenchmarkAnnounceParallel with the
// driver's default, keep_peer_ids off (the other benchmarks keep IDs, as
// the storage contract's tests do).
func BenchmarkAnnounceParallelNoIDs(b *testing.B) {
	announceParallel(b, false, noIDs)
}

func announceParallel(b *testing.B, addrs bool, edit ...func(*Config)) {
	const swarms, size = 1000, 20
	s, c, rcpu := announceBench(b, swarms, size, edit...)
	cpu := processCPU(b)
	trips := s.roundTrips.Load()
	runParallel(b, s, swarms, size, addrs)
	cpu = processCPU(b) - cpu
	reportRedis(b, c, rcpu)
	n := float64(b.N)
	b.ReportMetric(cpu*1e6/n, "cpu-µs/op")
	if p := s.roundTrips.Load() - trips; p > 0 {
		b.ReportMetric(n/float64(p), "announces/pipeline")
	}
}

// runParallel times announces again (announceAgain) of the peers of a
// store filled by fill(…, swarms, size), 16 in progress per CPU.
func runParallel(b *testing.B, s *PeerStore, swarms, size int, addrs bool) {
	var next atomic.Int64
	b.SetParallelism(16)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		dst := make([]bittorrent.Peer, 0, 64)
		for pb.Next() {
			var err error
			if dst, err = announceAgain(s, dst, int(next.Add(1))%(swarms*size), swarms, addrs); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
}

// fill stores swarms of size peers each, a third of them seeders, sixteen
// writers at once.
func fill(tb testing.TB, s *PeerStore, swarms, size int) {
	tb.Helper()
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < swarms*size; i += 16 {
				var err error
				if i%3 == 0 {
					err = s.PutSeeder(ih(i%swarms), peer4(i))
				} else {
					err = s.PutLeecher(ih(i%swarms), peer4(i))
				}
				if err != nil {
					tb.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// processCPU returns the CPU seconds (user and system) this process has
// used.
func processCPU(tb testing.TB) float64 {
	tb.Helper()
	var ru syscall.Rusage
	must(tb, "getrusage", syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// TestAnnounceAllocations pins the tracker's allocations per announce
// (the daemon's path, one announce at a time, which shares its pipeline
// with no other: the worst case) at the bound of 30, with or
// without WebSocket peers in the store (whose counts a native announce
// then reads too). They do not grow with the peers returned: the replies
// are read raw, in place. Under the race detector sync.Pool drops items
// at random, so the bound is only logged there; scripts/test.sh runs this
// test without -race too, where the bound holds.
func TestAnnounceAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("allocations are counted with real Redis round trips")
	}
	srv := startRedis(t)
	for _, web := range []bool{false, true} {
		name := "no WebSocket peers"
		if web {
			name = "WebSocket peers exist"
		}
		t.Run(name, func(t *testing.T) {
			s := newStore(t, srv, func(c *Config) {
				// No collection or reporting while allocations are
				// counted.
				c.GarbageCollectionInterval, c.PrometheusReportingInterval = 30*time.Minute, time.Hour
			})
			fill(t, s, 10, 20)
			if web {
				browser := peer4(999)
				browser.Kind = bittorrent.WebSocketPeer
				must(t, "put browser", s.PutLeecher(ih(0), browser))
			}
			dst := make([]bittorrent.Peer, 0, 64)
			i := 0
			var c storage.Counts
			// Announce (HTTP with peer IDs), then AnnounceAddrs (UDP,
			// compact): the daemon's two paths.
			method := s.Announce
			announce := func() {
				u := storage.UpdateLeecher
				if i%3 == 0 {
					u = storage.UpdateSeeder
				}
				var err error
				if dst, c, _, err = method(dst[:0], ih(i%10), u, 50, peer4(i%200)); err != nil {
					t.Fatal(err)
				}
				i++
			}
			announce() // the scripts loaded, the connection dialled
			for _, m := range []struct {
				name string
				f    func([]bittorrent.Peer, bittorrent.InfoHash, storage.Update, int, bittorrent.Peer) ([]bittorrent.Peer, storage.Counts, storage.Role, error)
			}{{"Announce", s.Announce}, {"AnnounceAddrs", udpAnnounce(s)}} {
				method = m.f
				if n := testing.AllocsPerRun(200, announce); n > 30 && !raceDetector {
					t.Errorf("%s: %.1f allocations per announce, want at most 30", m.name, n)
				} else {
					t.Logf("%s: %.1f allocations per announce, %d peers in the last answer", m.name, n, len(dst))
				}
			}
			// The browser is counted in swarm 0's answers.
			i = 0
			announce()
			if want := uint32(20 + 1); web && c.Seeders+c.Leechers != want {
				t.Errorf("swarm 0 counts %+v, want %d peers with the browser", c, want)
			}
		})
	}
}
