package redis

import (
	"os"
	"strconv"
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

// BenchmarkWalk walks 100,000 swarms, or WALK_SWARMS (filling a million
// takes a minute or two).
func BenchmarkWalk(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("WALK_SWARMS")); err == nil && v > 0 {
		n = v
	}
	srv := startRedis(b)
	storagetest.BenchmarkWalk(b, newStore(b, srv), n)
}
