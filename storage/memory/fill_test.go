package memory

import (
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage/storagetest"
)

// BenchmarkFill fills a store with 1,000,000 IPv4 peers over 100,000
// torrents in three orders (and 2,000,000 over 10,000), and reports per peer what the figures of
// docs/performance.md are made of:
//
//   - live-B/peer: the heap the store holds after a collection;
//   - alloc-B/peer: all it allocated while filling, the live part and the
//     garbage left by growing swarms. Garbage is what the heap grows by
//     (up to GOGC percent of the live heap) between collections, and the
//     daemon's RSS keeps that growth;
//   - held-B/peer: heap memory obtained from the OS and not given back
//     (HeapSys - HeapReleased) when the fill ends, before a collection:
//     the heap's share of RSS.
//
// "torrents" fills one torrent after another, as `chihaya-bench fill`
// does; "random" announces each peer to a random torrent, as clients of a
// freshly started tracker do; "round-robin" gives every torrent its first
// peer, then its second, and so on, as `chihaya-bench fill --round-robin`
// does (the fresh-fill measurement).
func BenchmarkFill(b *testing.B) {
	if testing.Short() {
		b.Skip("fills 1,000,000 and 2,000,000 peers")
	}
	const peers, torrents = 1_000_000, 100_000
	orders := []struct {
		name            string
		peers, torrents int
		ih              func(rng *rand.Rand, j int) bittorrent.InfoHash
	}{
		{"order=torrents", peers, torrents, func(_ *rand.Rand, j int) bittorrent.InfoHash { return storagetest.InfoHash(j / (peers / torrents)) }},
		{"order=random", peers, torrents, func(rng *rand.Rand, _ int) bittorrent.InfoHash { return storagetest.InfoHash(rng.IntN(torrents)) }},
		{"order=round-robin", peers, torrents, func(_ *rand.Rand, j int) bittorrent.InfoHash { return storagetest.InfoHash(j % torrents) }},
		// The steady-state target's store: 10,000 torrents of 200.
		{"peers=2000000/torrents=10000/order=torrents", 2_000_000, 10_000, func(_ *rand.Rand, j int) bittorrent.InfoHash { return storagetest.InfoHash(j / 200) }},
	}
	for _, o := range orders {
		b.Run(o.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				var before, filled, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				s := newStore(b).(*PeerStore)
				rng := rand.New(rand.NewPCG(5, 6))
				for j := range o.peers {
					ih, p := o.ih(rng, j), storagetest.Peer4(j)
					var err error
					if j%10 < 7 {
						err = s.PutSeeder(ih, p)
					} else {
						err = s.PutLeecher(ih, p)
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				runtime.ReadMemStats(&filled)
				runtime.GC()
				runtime.ReadMemStats(&after)
				per := func(a, b uint64) float64 { return float64(int64(a)-int64(b)) / float64(o.peers) }
				b.ReportMetric(per(after.HeapAlloc, before.HeapAlloc), "live-B/peer")
				b.ReportMetric(per(filled.TotalAlloc, before.TotalAlloc), "alloc-B/peer")
				b.ReportMetric(per(filled.HeapSys-filled.HeapReleased, before.HeapSys-before.HeapReleased), "held-B/peer")
				storagetestStop(b, s)
				runtime.KeepAlive(s)
			}
		})
	}
}
