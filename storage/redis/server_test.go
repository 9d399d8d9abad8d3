package redis

import (
	"testing"

	"github.com/chihaya/chihaya/storage/redis/redistest"
)

// server is a redis-server or redis-sentinel started by a test.
type server = redistest.Server

// startRedis runs redis-server on a free loopback port, without
// persistence; extra is appended to its configuration ("replicaof ...").
func startRedis(t testing.TB, extra ...string) *server {
	t.Helper()
	return redistest.Start(t, "redis-server", extra...)
}

// startSentinel runs redis-sentinel with the given configuration lines.
func startSentinel(t testing.TB, conf ...string) *server {
	t.Helper()
	return redistest.Start(t, "redis-sentinel", conf...)
}
