package storagetest

import (
	"math/rand/v2"
	"net/netip"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
)

// RunBenchmarks measures a driver on the paths an announce and a scrape
// take, and on collection. RunBenchmarks stops every store it asks newStore
// for. With -short it skips the benchmarks that fill millions of peers
// (store-size scaling and heap bytes per peer); the latter only means
// something for a driver that keeps its peers in the Go heap.
func RunBenchmarks(b *testing.B, newStore func(b *testing.B) storage.PeerStore) {
	b.Helper()

	// One announce as the tracker makes it: the peer list for the response,
	// then the swarm update.
	withStore(b, newStore, "Announce/swarm=1000", func(b *testing.B, s storage.PeerStore) {
		fillSwarm(b, s, InfoHash(0), 1000)
	}, func(b *testing.B, s storage.PeerStore) {
		ih := InfoHash(0)
		dst := make([]bittorrent.Peer, 0, 50)
		for i := 0; b.Loop(); i++ {
			p := Peer4(i % 1000)
			var err error
			if dst, err = trackerAnnounce(s, dst, ih, p); err != nil {
				b.Fatal(err)
			}
		}
	})

	withStore(b, newStore, "AnnounceParallel/swarms=10000", func(b *testing.B, s storage.PeerStore) {
		fillStore(b, s, 200_000, 10_000)
	}, func(b *testing.B, s storage.PeerStore) {
		var seq atomic.Uint64
		b.RunParallel(func(pb *testing.PB) {
			rng := rand.New(rand.NewPCG(seq.Add(1), 5))
			dst := make([]bittorrent.Peer, 0, 50)
			for pb.Next() {
				j := rng.IntN(200_000)
				ih, p := InfoHash(j%10_000), Peer4(j)
				var err error
				if dst, err = trackerAnnounce(s, dst, ih, p); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})

	// The peer list of a swarm of 1000 peers, each announcer asking for 50:
	// peers in four /24s; then locality's two extremes, a deployment as it
	// is meant for, with 10 subnets (racks) of 100, and a swarm of an open
	// tracker, where every peer is alone in its subnet.
	for _, g := range []struct {
		name string
		peer func(int) bittorrent.Peer
	}{{"", Peer4}, {"/racks=10", rackPeer}, {"/subnets=1000", subnetPeer}} {
		withStore(b, newStore, "AnnouncePeers/swarm=1000"+g.name, func(b *testing.B, s storage.PeerStore) {
			for i := range 1000 {
				put(b, s, InfoHash(0), i%5 == 0, g.peer(i))
			}
		}, func(b *testing.B, s storage.PeerStore) {
			ih := InfoHash(0)
			dst := make([]bittorrent.Peer, 0, 50)
			for i := 0; b.Loop(); i++ {
				var err error
				dst, _, _, err = s.AnnouncePeers(dst[:0], ih, false, 50, g.peer(i%1000))
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}

	withStore(b, newStore, "ScrapeSwarm", func(b *testing.B, s storage.PeerStore) {
		fillStore(b, s, 10_000, 1_000)
	}, func(b *testing.B, s storage.PeerStore) {
		for i := 0; b.Loop(); i++ {
			if _, err := s.ScrapeSwarm(InfoHash(i%1_000), bittorrent.IPv4); err != nil {
				b.Fatal(err)
			}
		}
	})

	// A scrape of 10 hashes, as a UDP client commonly sends.
	withStore(b, newStore, "ScrapeSwarms/hashes=10", func(b *testing.B, s storage.PeerStore) {
		fillStore(b, s, 10_000, 1_000)
	}, func(b *testing.B, s storage.PeerStore) {
		ihs := make([]bittorrent.InfoHash, 10)
		dst := make([]storage.Counts, len(ihs))
		for i := 0; b.Loop(); i++ {
			for j := range ihs {
				ihs[j] = InfoHash((i*10 + j) % 1_000)
			}
			if err := s.ScrapeSwarms(dst, ihs, bittorrent.IPv4); err != nil {
				b.Fatal(err)
			}
		}
	})

	// Collection that finds nothing stale: the cost paid every gc_interval.
	withStore(b, newStore, "CollectGarbage/scan/peers=200000", func(b *testing.B, s storage.PeerStore) {
		fillStore(b, s, 200_000, 20_000)
	}, func(b *testing.B, s storage.PeerStore) {
		cutoff := time.Now().Add(-time.Hour)
		for b.Loop() {
			if err := s.CollectGarbage(cutoff); err != nil {
				b.Fatal(err)
			}
		}
	})

	// Collection that removes every peer (the store is refilled untimed).
	withStore(b, newStore, "CollectGarbage/all/peers=200000", nil, func(b *testing.B, s storage.PeerStore) {
		for range b.N {
			b.StopTimer()
			fillStore(b, s, 200_000, 20_000)
			b.StartTimer()
			if err := s.CollectGarbage(time.Now().Add(time.Hour)); err != nil {
				b.Fatal(err)
			}
		}
	})

	if testing.Short() {
		return
	}

	// Throughput should not fall as the store grows: one announce of a
	// random stored peer, 10 peers per swarm on average.
	for _, peers := range []int{200_000, 2_000_000} {
		withStore(b, newStore, "AnnounceStoreSize/peers="+strconv.Itoa(peers), func(b *testing.B, s storage.PeerStore) {
			fillStore(b, s, peers, peers/10)
		}, func(b *testing.B, s storage.PeerStore) {
			rng := rand.New(rand.NewPCG(3, 4))
			dst := make([]bittorrent.Peer, 0, 50)
			for i := 0; b.Loop(); i++ {
				j := rng.IntN(peers)
				ih, p := InfoHash(j%(peers/10)), Peer4(j)
				var err error
				if dst, err = trackerAnnounce(s, dst, ih, p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}

	b.Run("HeapPerPeer/peers=1000000/torrents=100000", func(b *testing.B) {
		const peers, torrents = 1_000_000, 100_000
		for i := 0; i < b.N; i++ {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			s := newStore(b)
			// Torrents drawn at random, as real swarm sizes vary.
			rng := rand.New(rand.NewPCG(5, 6))
			for j := range peers {
				put(b, s, InfoHash(rng.IntN(torrents)), j%5 == 0, Peer4(j))
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/peers, "heap-B/peer")
			stop(b, s)
			runtime.KeepAlive(s)
		}
	})
}

// trackerAnnounce is one announce as the tracker makes it: the peer list
// for the response (50 peers into dst), then the swarm update.
func trackerAnnounce(s storage.PeerStore, dst []bittorrent.Peer, ih bittorrent.InfoHash, p bittorrent.Peer) ([]bittorrent.Peer, error) {
	dst, _, _, err := s.AnnouncePeers(dst[:0], ih, false, 50, p)
	if err != nil {
		return dst, err
	}
	return dst, s.PutLeecher(ih, p)
}

// withStore runs a sub-benchmark on one store, filled by setup once however
// many times the benchmark function is called to settle b.N, and reports
// its allocations.
func withStore(b *testing.B, newStore func(b *testing.B) storage.PeerStore, name string, setup, bench func(b *testing.B, s storage.PeerStore)) {
	b.Helper()
	var s storage.PeerStore
	b.Run(name, func(b *testing.B) {
		if s == nil {
			s = newStore(b)
			if setup != nil {
				setup(b, s)
			}
		}
		b.ReportAllocs()
		b.ResetTimer()
		bench(b, s)
	})
	if s != nil {
		stop(b, s)
	}
}

// fillSwarm puts n IPv4 peers in one swarm, a fifth of them seeders.
func fillSwarm(b *testing.B, s storage.PeerStore, ih bittorrent.InfoHash, n int) {
	b.Helper()
	for i := range n {
		put(b, s, ih, i%5 == 0, Peer4(i))
	}
}

// fillStore puts IPv4 peer j in swarm j%swarms for j < peers, a fifth of
// them seeders, so the benchmarks can find a stored peer's swarm.
func fillStore(b *testing.B, s storage.PeerStore, peers, swarms int) {
	b.Helper()
	for j := range peers {
		put(b, s, InfoHash(j%swarms), j%5 == 0, Peer4(j))
	}
}

// rackPeer returns peer i of 10 racks of 100: 10.0.<i/100>.<i%100+1>.
// subnetPeer returns peer i, alone in its /24.
func subnetPeer(i int) bittorrent.Peer {
	a := netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1})
	return bittorrent.Peer{ID: peerID(i), AddrPort: netip.AddrPortFrom(a, 6881)}
}

func rackPeer(i int) bittorrent.Peer {
	a := netip.AddrFrom4([4]byte{10, 0, byte(i / 100 % 256), byte(i%100 + 1)})
	return bittorrent.Peer{ID: peerID(i), AddrPort: netip.AddrPortFrom(a, 6881)}
}
