package redis

import (
	"context"
	"encoding/hex"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/locality"
	"github.com/chihaya/chihaya/storage/storagetest"
)

// TestPeerStoreLocality runs the whole contract with locality on, then the
// locality rules, on a real redis-server.
func TestPeerStoreLocality(t *testing.T) {
	srv := startRedis(t)
	withLocality := func(lc locality.Config) func(*Config) {
		return func(c *Config) { c.Locality = lc }
	}
	t.Run("Contract", func(t *testing.T) {
		storagetest.Run(t, func(t *testing.T) storage.PeerStore {
			return newUnstopped(t, srv, withLocality(locality.Config{Enabled: true}.WithDefaults()))
		})
	})
	t.Run("Rules", func(t *testing.T) {
		storagetest.RunLocality(t, func(t *testing.T, lc locality.Config) storage.PeerStore {
			return newUnstopped(t, srv, withLocality(lc))
		})
	})
}

func BenchmarkPeerStoreLocality(b *testing.B) {
	srv := startRedis(b)
	storagetest.RunBenchmarks(b, func(b *testing.B) storage.PeerStore {
		return newUnstopped(b, srv, func(c *Config) {
			c.Locality = locality.Config{Enabled: true, MinOutsideShare: 0.1}.WithDefaults()
		})
	})
}

// TestLocalityKeysCollected checks that deletes and collection leave no
// locality keys behind: the roles' orders go with their last peer, and no
// key is made per cell.
func TestLocalityKeysCollected(t *testing.T) {
	srv := startRedis(t)
	s := newStore(t, srv, func(c *Config) { c.Locality = locality.Config{Enabled: true}.WithDefaults() })
	ih := storagetest.InfoHash(1)
	for i := range 40 {
		p := storagetest.Peer4(i * 97) // spread over several /24s
		if i%3 == 0 {
			must(t, "PutSeeder", s.PutSeeder(ih, p))
		} else {
			must(t, "PutLeecher", s.PutLeecher(ih, p))
		}
		must(t, "PutLeecher", s.PutLeecher(ih, storagetest.Peer6(i)))
	}
	for i := 0; i < 40; i += 4 {
		must(t, "DeletePeer", s.DeletePeer(ih, storagetest.Peer4(i*97)))
		must(t, "GraduateLeecher", s.GraduateLeecher(ih, storagetest.Peer4(i*97+1)))
	}
	keys := func() []string {
		t.Helper()
		k, err := srv.Conn(t).Keys(context.Background(), s.cfg.KeyPrefix+"*").Result()
		must(t, "KEYS", err)
		sort.Strings(k)
		return k
	}
	swarm := s.cfg.KeyPrefix + "{" + hex.EncodeToString(ih[:]) + "}"
	want := []string{s.cfg.KeyPrefix + "i", s.cfg.KeyPrefix + "n", swarm + "4l", swarm + "4lz", swarm + "4s", swarm + "4sz",
		swarm + "6l", swarm + "6lz", swarm + "d"}
	if got := keys(); !reflect.DeepEqual(got, want) {
		t.Fatalf("before collection, keys %q, want %q", got, want)
	}
	must(t, "CollectGarbage", s.CollectGarbage(time.Now().Add(time.Hour)))
	want = []string{s.cfg.KeyPrefix + "n", swarm + "d"}
	if got := keys(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after collecting every peer, keys %q, want only %q", got, want)
	}
}

// BenchmarkAnnounceLocality is BenchmarkAnnounce with locality by /24,
// one announce in flight, and reports the same Redis figures (redis-µs/op
// is INFO commandstats, every command's usec summed). fill puts the peers
// of a swarm of 20 each in a /24 of its own (the spread an open tracker
// sees), and those of a swarm of 1000 about 13 to a /24 (racks).
func BenchmarkAnnounceLocality(b *testing.B) {
	for _, tc := range []struct {
		name         string
		swarms, size int
	}{
		{"spread/swarm=20", 1000, 20},
		{"racks/swarm=1000", 20, 1000},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s, c, cpu := announceBench(b, tc.swarms, tc.size, func(c *Config) {
				c.Locality = locality.Config{Enabled: true}.WithDefaults()
			})
			b.ReportAllocs()
			b.ResetTimer()
			dst := make([]bittorrent.Peer, 0, 64)
			for i := range b.N {
				var err error
				if dst, err = announceAgain(s, dst, i%(tc.swarms*tc.size), tc.swarms); err != nil {
					b.Fatal(err)
				}
				if len(dst) == 0 {
					b.Fatal("an answer without peers")
				}
			}
			b.StopTimer()
			if testing.Verbose() {
				info, _ := c.Info(context.Background(), "commandstats").Result()
				b.Log(info)
			}
			reportRedis(b, c, cpu)
		})
	}
}
