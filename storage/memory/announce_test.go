package memory

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/storagetest"
)

// BenchmarkAnnounceCold is the tracker's announce against the UDP
// comparison's population (scripts/bench-compare.sh: 10,000 swarms of 200
// peers, 2,000,000 in all), a random peer of a random swarm each time, so
// that the swarm, its index and its records are mostly out of the caches,
// as in the daemon: steps=two answers with AnnouncePeers and then applies
// the update with PutSeeder or PutLeecher (the logic's way for a store
// without storage.Announcer), steps=one with Announce, steps=one/compact
// with AnnounceCompact (the UDP frontend's).
func BenchmarkAnnounceCold(b *testing.B) {
	const swarms, peers = 10_000, 2_000_000
	s, err := New(Config{}.WithDefaults())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Stop(context.Background()) })
	seeder := func(j int) bool { return j%10 < 7 }
	compact := make([]byte, 0, 50*18)
	for j := range peers {
		if seeder(j / swarms) {
			err = s.PutSeeder(storagetest.InfoHash(j%swarms), storagetest.Peer4(j))
		} else {
			err = s.PutLeecher(storagetest.InfoHash(j%swarms), storagetest.Peer4(j))
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	for _, bc := range []struct {
		name     string
		announce func(dst []bittorrent.Peer, ih bittorrent.InfoHash, u storage.Update, p bittorrent.Peer) ([]bittorrent.Peer, error)
	}{
		{"steps=two", func(dst []bittorrent.Peer, ih bittorrent.InfoHash, u storage.Update, p bittorrent.Peer) ([]bittorrent.Peer, error) {
			dst, _, _, err := s.AnnouncePeers(dst, ih, u.Seeder(), 50, p)
			if err != nil {
				return dst, err
			}
			if u.Seeder() {
				return dst, s.PutSeeder(ih, p)
			}
			return dst, s.PutLeecher(ih, p)
		}},
		{"steps=one", func(dst []bittorrent.Peer, ih bittorrent.InfoHash, u storage.Update, p bittorrent.Peer) ([]bittorrent.Peer, error) {
			dst, _, _, err := s.Announce(dst, ih, u, 50, p)
			return dst, err
		}},
		{"steps=one/compact", func(dst []bittorrent.Peer, ih bittorrent.InfoHash, u storage.Update, p bittorrent.Peer) ([]bittorrent.Peer, error) {
			var err error
			dst, compact, _, _, err = s.AnnounceCompact(dst, compact[:0], ih, u, 50, p)
			return dst, err
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			dst := make([]bittorrent.Peer, 0, 50)
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				j := r.IntN(peers)
				u := storage.UpdateLeecher
				if seeder(j / swarms) {
					u = storage.UpdateSeeder
				}
				if dst, err = bc.announce(dst[:0], storagetest.InfoHash(j%swarms), u, storagetest.Peer4(j)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// TestAnnouncer checks Announce and AnnounceCompact against the model of
// storagetest.RunAnnouncer, without locality, with locality's flat small
// swarms, with every swarm in cells, and for WebSocket peers beside native
// ones.
func TestAnnouncer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		flatMax int
		cfg     func(*Config)
	}{
		{"plain", defaultFlatMax, func(*Config) {}},
		{"locality flat", defaultFlatMax, func(c *Config) { c.Locality.Enabled = true }},
		{"locality cells", 0, func(c *Config) { c.Locality.Enabled = true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			storagetest.RunAnnouncer(t, func(t *testing.T) storage.PeerStore {
				cfg := Config{}.WithDefaults()
				tc.cfg(&cfg)
				s, err := newPeerStore(cfg, tc.flatMax)
				if err != nil {
					t.Fatal(err)
				}
				return s
			})
		})
	}
}

// TestAnnounceDoesNotAllocate holds Announce (the HTTP and WebSocket
// frontends' way) and AnnounceCompact (UDP's) at 0 allocations once the
// swarm and the buffers exist.
func TestAnnounceDoesNotAllocate(t *testing.T) {
	s, err := New(Config{}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	ih := storagetest.InfoHash(1)
	for j := range 100 {
		if err := s.PutSeeder(ih, storagetest.Peer4(j)); err != nil {
			t.Fatal(err)
		}
	}
	p := storagetest.Peer4(1000)
	dst, compact := make([]bittorrent.Peer, 0, 50), make([]byte, 0, 50*18)
	if n := testing.AllocsPerRun(100, func() {
		dst, _, _, _ = s.Announce(dst[:0], ih, storage.UpdateLeecher, 50, p)
	}); n != 0 || len(dst) != 50 {
		t.Errorf("Announce: %v allocations, %d peers; want 0 and 50", n, len(dst))
	}
	if n := testing.AllocsPerRun(100, func() {
		dst, compact, _, _, _ = s.AnnounceCompact(dst[:0], compact[:0], ih, storage.UpdateLeecher, 50, p)
	}); n != 0 || len(compact) != 50*6 || len(dst) != 0 {
		t.Errorf("AnnounceCompact: %v allocations, %d bytes, %d peers; want 0, 300 and 0", n, len(compact), len(dst))
	}
}
