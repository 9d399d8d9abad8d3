package redis

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/chihaya/chihaya/bittorrent"
)

// staleBucket rewrites the stamp of the peer of k's swarm in its bucket
// (family f), if it has one there, to stamp.
func staleBucket(t *testing.T, c *redis.Client, k *swarmKeys, f bittorrent.AddressFamily, stamp int64) {
	t.Helper()
	v, err := c.HGet(context.Background(), k.bucket[f], k.rawIH).Bytes()
	if err == redis.Nil {
		return
	}
	must(t, "HGET bucket", err)
	binary.BigEndian.PutUint32(v[len(v)-5:], uint32(stamp))
	must(t, "HSET bucket", c.HSet(context.Background(), k.bucket[f], k.rawIH, v).Err())
}
