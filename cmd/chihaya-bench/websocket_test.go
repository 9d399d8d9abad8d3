package main

import (
	"net"
	"net/netip"
	"testing"
	"time"

	wsfrontend "github.com/chihaya/chihaya/frontend/websocket"
	"github.com/chihaya/chihaya/internal/cleanup"
	"github.com/chihaya/chihaya/middleware"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/memory"
)

// wsTracker starts the WebSocket frontend over store and returns its
// address; the frontend, its logic and the store stop, in that order, when
// the test ends.
func wsTracker(t *testing.T, store storage.PeerStore) netip.AddrPort {
	t.Helper()
	cleanup.Stop(t, store.Stop)
	logic := middleware.NewLogic(middleware.Config{}.WithDefaults(), store, nil, nil)
	cleanup.Stop(t, logic.Stop)
	f, err := wsfrontend.NewFrontend(logic, wsfrontend.Config{Addr: "127.0.0.1:0"}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	cleanup.Stop(t, f.Stop)
	return f.Addr().(*net.TCPAddr).AddrPort()
}

// wsAnnounce runs ws-announce's small workload (400 announces from 20
// connections on 2 torrents, 5 offers each) against target, and target2
// when it is valid, and checks that every announce was answered.
func wsAnnounce(t *testing.T, target, target2 netip.AddrPort) Result {
	t.Helper()
	cfg := testConfig(modeWSAnnounce, target)
	cfg.Target2 = target2
	cfg.Workload.Torrents, cfg.Sockets, cfg.Offers = 2, 20, 5
	cfg.Count, cfg.Duration, cfg.Timeout = 400, time.Minute, 10*time.Second
	r, err := run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Responses != 400 || r.ErrorsTotal != 0 {
		t.Errorf("%d announce replies, errors %v; want exactly --count 400 and none", r.Responses, r.Errors)
	}
	return r
}

// TestWebSocketAgainstOurTracker runs ws-announce against the real
// WebSocket frontend: every announce is answered, offers are relayed to
// the generator's other connections, and its answers come back.
func TestWebSocketAgainstOurTracker(t *testing.T) {
	store, err := memory.New(memory.Config{}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	r := wsAnnounce(t, wsTracker(t, store), netip.AddrPort{})
	if r.Offers == 0 || r.Answers == 0 || r.OffersPS <= 0 {
		t.Errorf("relayed %d offers and %d answers, want some of each", r.Offers, r.Answers)
	}
	if r.Answers > r.Offers {
		t.Errorf("%d answers relayed for %d offers", r.Answers, r.Offers)
	}
}
