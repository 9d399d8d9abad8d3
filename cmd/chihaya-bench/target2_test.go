package main

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/chihaya/chihaya/storage/redis"
	"github.com/chihaya/chihaya/storage/redis/redistest"
)

// TestWebSocketAcrossTwoInstances runs ws-announce with --target2 against
// two WebSocket frontends sharing a Redis: half the connections on each,
// so offers and answers relayed between them cross instances.
func TestWebSocketAcrossTwoInstances(t *testing.T) {
	srv := redistest.Start(t, "redis-server")
	var addrs []netip.AddrPort
	for range 2 {
		store, err := redis.New(redis.Config{RedisBroker: "redis://" + srv.Addr + "/0", KeyPrefix: "bench:"}.WithDefaults())
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, wsTracker(t, store))
	}
	r := wsAnnounce(t, addrs[0], addrs[1])
	if r.Offers == 0 || r.Answers == 0 {
		t.Errorf("relayed %d offers and %d answers across the instances, want some of each", r.Offers, r.Answers)
	}
}

func TestCLIRefusesNonLoopbackTarget2(t *testing.T) {
	var out bytes.Buffer
	root := newRootCmd(&out)
	root.SetArgs([]string{modeWSAnnounce, "--target", "127.0.0.1:6969", "--target2", "192.0.2.1:6969", "--duration", "1s"})
	err := root.Execute()
	if err == nil || !strings.HasPrefix(err.Error(), "--target2") || !strings.Contains(err.Error(), `refusing "192.0.2.1:6969"`) {
		t.Fatalf("got %v, want --target2 refused", err)
	}
	if out.Len() != 0 {
		t.Errorf("printed %q, want nothing: no run may take place", out.String())
	}
}
