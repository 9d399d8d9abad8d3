package memory

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/storagetest"
)

// TestScrapeSwarmsSharedShards checks a scrape whose hashes share shards
// (a store of 2 shards, 20 hashes, repeats among them) against ScrapeSwarm
// hash by hash, and a scrape too large to be grouped.
func TestScrapeSwarmsSharedShards(t *testing.T) {
	cfg := Config{ShardCount: 2}.WithDefaults()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	for i := range 40 {
		ih := storagetest.InfoHash(i % 12)
		if i%3 == 0 {
			err = s.PutSeeder(ih, storagetest.Peer4(i))
		} else {
			err = s.PutLeecher(ih, storagetest.Peer4(i))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []int{20, maxGrouped + 6} {
		ihs := make([]bittorrent.InfoHash, n)
		for i := range ihs {
			ihs[i] = storagetest.InfoHash(i * 7 % 15) // 12 to 14 are unknown
		}
		got := make([]storage.Counts, n)
		if err := s.ScrapeSwarms(got, ihs, bittorrent.IPv4); err != nil {
			t.Fatal(err)
		}
		for i, ih := range ihs {
			want, _ := s.ScrapeSwarm(ih, bittorrent.IPv4)
			if got[i] != want {
				t.Errorf("%d hashes: ScrapeSwarms[%d] = %+v, ScrapeSwarm = %+v", n, i, got[i], want)
			}
		}
	}
}

// BenchmarkScrapeSwarmsCold scrapes 10 random swarms of 200,000 (a store
// of 2,000,000 peers, far larger than the caches), so that, as in a
// daemon whose caches the kernel's packet handling keeps evicting, most
// reads of a shard, a map and a swarm miss the caches.
func BenchmarkScrapeSwarmsCold(b *testing.B) {
	const swarms, peers = 200_000, 2_000_000
	s, err := New(Config{}.WithDefaults())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Stop(context.Background()) })
	for j := range peers {
		if err := s.PutLeecher(storagetest.InfoHash(j%swarms), storagetest.Peer4(j)); err != nil {
			b.Fatal(err)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	ihs := make([]bittorrent.InfoHash, 10)
	dst := make([]storage.Counts, len(ihs))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for j := range ihs {
			ihs[j] = storagetest.InfoHash(r.IntN(swarms))
		}
		if err := s.ScrapeSwarms(dst, ihs, bittorrent.IPv4); err != nil {
			b.Fatal(err)
		}
	}
}
