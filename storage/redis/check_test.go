package redis

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chihaya/chihaya/storage"
)

// TestCheckConnectsToNothing: `chihaya validate` checks a redis storage
// configuration through storage.Check, which must not connect to the
// broker (it may be on a network the validating machine must not reach),
// while New, given the same configuration, does connect to report its
// gauges. A loopback listener counts the connections.
func TestCheckConnectsToNothing(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var accepted atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	cfg := []byte("redis_broker: redis://" + l.Addr().String() + "/0\nprometheus_reporting_interval: 100ms\n")
	// Long enough for several reporting rounds of a running store.
	const watch = 500 * time.Millisecond

	if err := storage.Check(context.Background(), "redis", cfg); err != nil {
		t.Fatalf("Check: %v", err)
	}
	time.Sleep(watch)
	if n := accepted.Load(); n != 0 {
		t.Fatalf("Check connected to the broker %d times", n)
	}

	// The same configuration, run: the listener does see the store.
	s, err := storage.New("redis", cfg)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(watch)
	_ = s.Stop(context.Background())
	if accepted.Load() == 0 {
		t.Fatal("a running store never connected: the listener would not notice Check connecting either")
	}

	// Check reports what New would: here a CA file that does not exist.
	bad := append(append([]byte(nil), cfg...), "redis_tls_ca_path: /nonexistent/ca.pem\n"...)
	bad = []byte(strings.Replace(string(bad), "redis://", "rediss://", 1))
	if err := storage.Check(context.Background(), "redis", bad); err == nil || !strings.Contains(err.Error(), "redis_tls_ca_path") {
		t.Fatalf("Check with a missing CA file: %v", err)
	}
}
