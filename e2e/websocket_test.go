package e2e

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v2"

	"github.com/chihaya/chihaya/internal/daemontest"
)

// TestWebSocketNeedsAKindKeepingStore: until the Redis driver keeps
// WebSocket peers apart, the daemon refuses to serve WebTorrent on it,
// rather than hand browsers' connection addresses to BitTorrent clients.
func TestWebSocketNeedsAKindKeepingStore(t *testing.T) {
	srv := startRedisServer(t, "redis-server")
	cfg := redisConfig(t, map[interface{}]interface{}{"redis_broker": "redis://" + srv.Addr + "/0"})
	section(section(cfg, "chihaya"), "websocket")["addr"] = "127.0.0.1:0"
	raw, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d := daemontest.Start(t, string(raw), daemontest.NoWait())
	if code := d.ExitCode(t); code == 0 {
		t.Fatalf("the daemon served WebSocket on the redis store (exit 0)")
	}
	const want = "storage driver does not keep WebSocket peers apart yet; use the memory driver"
	if !strings.Contains(d.Log(), want) {
		t.Errorf("the log does not say %q", want)
	}
}
