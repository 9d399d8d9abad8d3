package main

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	wsfrontend "github.com/chihaya/chihaya/frontend/websocket"
	"github.com/chihaya/chihaya/middleware"
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
		logic := middleware.NewLogic(middleware.Config{}.WithDefaults(), store, nil, nil)
		f, err := wsfrontend.NewFrontend(logic, wsfrontend.Config{Addr: "127.0.0.1:0"}.WithDefaults())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			f.Stop(ctx)
			logic.Stop(ctx)
			store.Stop(ctx)
		})
		addrs = append(addrs, f.Addr().(*net.TCPAddr).AddrPort())
	}
	cfg := testConfig(modeWSAnnounce, addrs[0])
	cfg.Target2 = addrs[1]
	cfg.Workload.Torrents, cfg.Sockets, cfg.Offers = 2, 20, 5
	cfg.Count, cfg.Duration, cfg.Timeout = 400, time.Minute, 10*time.Second
	r, err := run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Responses != 400 || r.ErrorsTotal != 0 {
		t.Errorf("%d announce replies, errors %v; want exactly --count 400 and none", r.Responses, r.Errors)
	}
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
