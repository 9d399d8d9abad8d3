package redis

import (
	"testing"

	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/locality"
	"github.com/chihaya/chihaya/storage/storagetest"
)

func TestLister(t *testing.T) {
	srv := startRedis(t)
	storagetest.RunLister(t, func(t *testing.T, lc locality.Config) storage.PeerStore {
		if lc.Enabled {
			return newUnstopped(t, srv, func(c *Config) { c.Locality = lc })
		}
		return newUnstopped(t, srv)
	})
}

// BenchmarkWalk walks 100,000 swarms (filling a million one round trip at
// a time would take minutes).
func BenchmarkWalk(b *testing.B) {
	srv := startRedis(b)
	storagetest.BenchmarkWalk(b, newStore(b, srv), 100_000)
}
