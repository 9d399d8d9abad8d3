package memory

import (
	"testing"

	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/locality"
	"github.com/chihaya/chihaya/storage/storagetest"
)

func TestLister(t *testing.T) {
	storagetest.RunLister(t, func(t *testing.T, lc locality.Config) storage.PeerStore { return newLocalStore(t, lc) })
}

func BenchmarkWalk(b *testing.B) {
	storagetest.BenchmarkWalk(b, newStore(b), 1_000_000)
}
