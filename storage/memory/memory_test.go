package memory

import (
	"testing"

	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/locality"
	"github.com/chihaya/chihaya/storage/storagetest"
)

func newStore(tb testing.TB) storage.PeerStore {
	tb.Helper()
	s, err := New(Config{}.WithDefaults())
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// TestPeerStore runs the contract against the default store, which keeps
// no peer IDs (withoutIDs); TestPeerStoreKeepPeerIDs runs it with them.
func TestPeerStore(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.PeerStore { return newWithoutIDs(t, newStore(t).(*PeerStore)) })
}

func BenchmarkPeerStore(b *testing.B) {
	storagetest.RunBenchmarks(b, func(b *testing.B) storage.PeerStore { return newStore(b) })
}

func newLocalStore(tb testing.TB, lc locality.Config) storage.PeerStore {
	tb.Helper()
	cfg := Config{}.WithDefaults()
	cfg.Locality = lc
	s, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// TestPeerStoreLocality runs the whole contract with locality on (every
// peer the contract uses shares one /24 or /64, or is spread over a few),
// then the locality rules.
func TestPeerStoreLocality(t *testing.T) {
	t.Run("Contract", func(t *testing.T) {
		storagetest.Run(t, func(t *testing.T) storage.PeerStore {
			return newWithoutIDs(t, newLocalStore(t, locality.Config{Enabled: true}.WithDefaults()).(*PeerStore))
		})
	})
	t.Run("Rules", func(t *testing.T) {
		storagetest.RunLocality(t, func(t *testing.T, lc locality.Config) storage.PeerStore { return newLocalStore(t, lc) })
	})
}

func BenchmarkPeerStoreLocality(b *testing.B) {
	storagetest.RunBenchmarks(b, func(b *testing.B) storage.PeerStore {
		return newLocalStore(b, locality.Config{Enabled: true, MinOutsideShare: 0.1}.WithDefaults())
	})
}
