package memory

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage/storagetest"
)

// benchPeers and benchSwarms are the store of the targets:
// 2,000,000 peers, 10 a swarm, 7 seeders in 10, 1 in 10 over IPv6.
const benchPeers, benchSwarms = 2_000_000, 200_000

func fillBench(b *testing.B, s *PeerStore) {
	b.Helper()
	for j := 0; j < benchPeers; j++ {
		ih := storagetest.InfoHash(j % benchSwarms)
		p := storagetest.Peer4(j)
		if j%10 == 9 {
			p = storagetest.Peer6(j)
		}
		var err error
		if j/benchSwarms%10 < 7 {
			err = s.PutSeeder(ih, p)
		} else {
			err = s.PutLeecher(ih, p)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// filledStore returns a store of benchPeers peers that snapshots to path,
// a file in a temporary directory; under -short it skips the benchmark.
func filledStore(b *testing.B) (s *PeerStore, path string) {
	b.Helper()
	if testing.Short() {
		b.Skip("fills 2,000,000 peers")
	}
	path = filepath.Join(b.TempDir(), "swarms.snap")
	cfg := Config{}.WithDefaults()
	cfg.SnapshotPath = path
	s, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		s.snap.final.Store(true)
		_ = s.Stop(context.Background())
	})
	fillBench(b, s)
	return s, path
}

// BenchmarkSnapshot writes a snapshot of 2,000,000 peers to a file
// (fsyncs and rename included) and reports, per snapshot, its CPU time
// (the process's, user and system), the file's size per peer, and its
// allocations.
func BenchmarkSnapshot(b *testing.B) {
	s, path := filledStore(b)
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		if err := s.snapshot(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e9, "cpu-s/op")
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(fi.Size())/benchPeers, "file-B/peer")
	b.ReportMetric(float64(fi.Size())/(1<<20), "file-MiB")
}

// BenchmarkRestore builds a store from a snapshot of 2,000,000 peers, as
// start does (New reads the file before it returns), and reports the CPU
// time per restore and the heap it leaves per peer.
func BenchmarkRestore(b *testing.B) {
	s, path := filledStore(b)
	if err := s.snapshot(context.Background()); err != nil {
		b.Fatal(err)
	}
	s.snap.final.Store(true)
	_ = s.Stop(context.Background())
	s = nil
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	var cpu time.Duration
	for i := 0; i < b.N; i++ {
		cpu0 := cpuTime()
		cfg := Config{}.WithDefaults()
		cfg.SnapshotPath = path
		r, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime() - cpu0
		b.StopTimer()
		if st, _ := r.Stats(); st.Seeders[0]+st.Seeders[1]+st.Leechers[0]+st.Leechers[1] != benchPeers {
			b.Fatalf("restored %+v, want %d peers", st, benchPeers)
		}
		// Not written back: the next iteration reads the same file.
		r.snap.final.Store(true)
		_ = r.Stop(context.Background())
		runtime.GC()
		b.StartTimer()
	}
	b.ReportMetric(float64(cpu)/float64(b.N)/1e9, "cpu-s/op")
}

// BenchmarkAnnounceDuringSnapshot measures the latency of announces (an
// AnnouncePeers and a put, as the daemon does for each) on a store of
// 2,000,000 peers, first alone and then while snapshots are written back
// to back, and reports the 99th percentile of each and their ratio. The
// announcers run on GOMAXPROCS-1 goroutines, leaving the snapshot a core.
func BenchmarkAnnounceDuringSnapshot(b *testing.B) {
	s, _ := filledStore(b)
	runtime.GC()
	workers := max(1, runtime.GOMAXPROCS(0)-1)
	const perPhase = 400_000

	measure := func(during func(stop <-chan struct{})) []time.Duration {
		lat := make([][]time.Duration, workers)
		stop := make(chan struct{})
		var bg sync.WaitGroup
		if during != nil {
			bg.Add(1)
			go func() { defer bg.Done(); during(stop) }()
		}
		var wg sync.WaitGroup
		var next atomic.Int64
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(w), 9))
				dst := make([]bittorrent.Peer, 0, 50)
				l := make([]time.Duration, 0, perPhase/workers+1)
				for next.Add(1) <= perPhase {
					j := rng.IntN(benchPeers)
					ih, p := storagetest.InfoHash(j%benchSwarms), storagetest.Peer4(j)
					t0 := time.Now()
					dst, _, _, _ = s.AnnouncePeers(dst[:0], ih, false, 50, p)
					_ = s.PutLeecher(ih, p)
					l = append(l, time.Since(t0))
				}
				lat[w] = l
			}(w)
		}
		wg.Wait()
		close(stop)
		bg.Wait()
		return slices.Concat(lat...)
	}
	p99 := func(l []time.Duration) time.Duration {
		slices.Sort(l)
		return l[len(l)*99/100]
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		idle := p99(measure(nil))
		snaps := 0
		during := p99(measure(func(stop <-chan struct{}) {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := s.snapshot(context.Background()); err != nil {
					b.Error(err)
					return
				}
				snaps++
			}
		}))
		b.ReportMetric(float64(idle.Nanoseconds()), "p99-ns-alone")
		b.ReportMetric(float64(during.Nanoseconds()), "p99-ns-snapshot")
		b.ReportMetric(float64(during)/float64(idle), "p99-ratio")
		b.ReportMetric(float64(snaps), "snapshots")
	}
}
