package main

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	wsfrontend "github.com/chihaya/chihaya/frontend/websocket"
	"github.com/chihaya/chihaya/middleware"
	"github.com/chihaya/chihaya/storage/memory"
)

// TestWebSocketAgainstOurTracker runs ws-announce against the real
// WebSocket frontend: every announce is answered, offers are relayed to
// the generator's other connections, and its answers come back.
func TestWebSocketAgainstOurTracker(t *testing.T) {
	store, err := memory.New(memory.Config{}.WithDefaults())
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
	cfg := testConfig(modeWSAnnounce, netip.MustParseAddrPort(f.Addr().(*net.TCPAddr).AddrPort().String()))
	cfg.Workload.Torrents, cfg.Sockets, cfg.Offers = 2, 20, 5
	cfg.Count, cfg.Duration, cfg.Timeout = 400, time.Minute, 10*time.Second
	r, err := run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Responses != 400 || r.ErrorsTotal != 0 {
		t.Errorf("%d announce replies, errors %v; want exactly --count 400 and none", r.Responses, r.Errors)
	}
	if r.Offers == 0 || r.Answers == 0 || r.OffersPS <= 0 {
		t.Errorf("relayed %d offers and %d answers, want some of each", r.Offers, r.Answers)
	}
	if r.Answers > r.Offers {
		t.Errorf("%d answers relayed for %d offers", r.Answers, r.Offers)
	}
}
