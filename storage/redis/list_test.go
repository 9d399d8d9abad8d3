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
