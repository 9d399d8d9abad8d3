package memory

import (
	"testing"

	"github.com/chihaya/chihaya/storage"
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

func TestPeerStore(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.PeerStore { return newStore(t) })
}

func BenchmarkPeerStore(b *testing.B) {
	storagetest.RunBenchmarks(b, func(b *testing.B) storage.PeerStore { return newStore(b) })
}
