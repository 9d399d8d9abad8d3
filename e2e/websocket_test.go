package e2e

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	gws "github.com/gorilla/websocket"
	"go.yaml.in/yaml/v2"

	"github.com/chihaya/chihaya/internal/daemontest"
)

// The WebSocket frontend on the Redis store, across daemons: browsers
// connected to different instances find each other, and an instance that
// dies without leaving is found out.

// wsDaemon starts a daemon with the WebSocket frontend on the Redis at
// addr, under one key prefix with the other daemons of the test.
func wsDaemon(t *testing.T, addr string) *daemontest.Daemon {
	t.Helper()
	cfg := redisConfig(t, map[interface{}]interface{}{
		"redis_broker":             "redis://" + addr + "/0",
		"relay_heartbeat_interval": "100ms",
		"relay_instance_timeout":   "1s",
	})
	section(section(cfg, "chihaya"), "websocket")["addr"] = "127.0.0.1:0"
	raw, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return daemontest.Start(t, string(raw))
}

// browser is a WebSocket connection speaking the WebTorrent tracker
// protocol, with ASCII IDs (the binary-string rule is the frontend's own
// tests' business).
type browser struct {
	t  *testing.T
	ws *gws.Conn
}

func dialWS(t *testing.T, d *daemontest.Daemon) *browser {
	t.Helper()
	ws, _, err := gws.DefaultDialer.Dial("ws://"+d.Addr(t, "ws")+"/announce", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return &browser{t: t, ws: ws}
}

func (b *browser) send(m map[string]any) {
	b.t.Helper()
	if err := b.ws.WriteJSON(m); err != nil {
		b.t.Fatal(err)
	}
}

func (b *browser) read() map[string]any {
	b.t.Helper()
	_ = b.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, raw, err := b.ws.ReadMessage()
	if err != nil {
		b.t.Fatalf("read: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		b.t.Fatalf("%s: %v", raw, err)
	}
	return m
}

const wsInfoHash = "ws-e2e-info-hash-01."

func wsAnnounce(peerID string, left int, offerIDs ...string) map[string]any {
	m := map[string]any{"action": "announce", "info_hash": wsInfoHash, "peer_id": peerID,
		"uploaded": 0, "downloaded": 0, "left": left, "numwant": len(offerIDs)}
	var offers []any
	for _, id := range offerIDs {
		offers = append(offers, map[string]any{"offer_id": id, "offer": map[string]any{"type": "offer", "sdp": "sdp " + id}})
	}
	if offers != nil {
		m["offers"] = offers
	}
	return m
}

func wsCount(m map[string]any, key string) int {
	f, _ := m[key].(float64)
	return int(f)
}

// TestWebSocketRelayAcrossDaemons: a seeder on one daemon and a leecher on
// another, on one Redis: the leecher gets the seeder's offer and the
// seeder its answer. Then a third daemon is killed with its browser
// connected: the others find it gone, drop its browser from the swarm,
// and offer to it no more.
func TestWebSocketRelayAcrossDaemons(t *testing.T) {
	srv := startRedisServer(t, "redis-server")
	da, db, dc := wsDaemon(t, srv.Addr), wsDaemon(t, srv.Addr), wsDaemon(t, srv.Addr)
	leecher, seeder, doomed := dialWS(t, da), dialWS(t, db), dialWS(t, dc)

	leecher.send(wsAnnounce("-WW0100-leecher-0001", 100))
	leecher.read()
	seeder.send(wsAnnounce("-WW0100-seeder--0001", 0, "offer-number-0000001"))
	if r := seeder.read(); wsCount(r, "complete") != 1 || wsCount(r, "incomplete") != 1 {
		t.Fatalf("seeder's reply: %v, want the leecher of the other daemon counted", r)
	}
	offer := leecher.read()
	if offer["peer_id"] != "-WW0100-seeder--0001" || offer["offer_id"] != "offer-number-0000001" {
		t.Fatalf("the leecher got %v, want the seeder's offer from the other daemon", offer)
	}
	leecher.send(map[string]any{"action": "announce", "info_hash": wsInfoHash, "peer_id": "-WW0100-leecher-0001",
		"to_peer_id": "-WW0100-seeder--0001", "offer_id": "offer-number-0000001",
		"answer": map[string]any{"type": "answer", "sdp": "the answer"}})
	answer := seeder.read()
	if answer["peer_id"] != "-WW0100-leecher-0001" || answer["offer_id"] != "offer-number-0000001" {
		t.Fatalf("the seeder got %v, want the leecher's answer", answer)
	}
	if ans, _ := answer["answer"].(map[string]any); ans["sdp"] != "the answer" {
		t.Errorf("answer object: %v", answer)
	}

	// The third daemon's browser joins, then its daemon dies without
	// leaving (SIGKILL: no close frames, no clean-up in Redis).
	doomed.send(wsAnnounce("-WW0100-doomed--0001", 100))
	doomed.read()
	dc.Signal(t, syscall.SIGKILL)
	_ = dc.Wait(t)
	deadline := time.Now().Add(15 * time.Second)
	for {
		seeder.send(map[string]any{"action": "scrape", "info_hash": wsInfoHash})
		r := seeder.read()
		files, _ := r["files"].(map[string]any)
		f, _ := files[wsInfoHash].(map[string]any)
		if wsCount(f, "incomplete") == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("scrape %v: the dead daemon's browser is still in the swarm", r)
		}
		time.Sleep(100 * time.Millisecond)
	}
	stale := da.Metric(t, "chihaya_storage_redis_relay_stale_instances_total", nil) +
		db.Metric(t, "chihaya_storage_redis_relay_stale_instances_total", nil)
	dropped := da.Metric(t, "chihaya_storage_redis_relay_stale_peers_total", nil) +
		db.Metric(t, "chihaya_storage_redis_relay_stale_peers_total", nil)
	if stale != 1 || dropped != 1 {
		t.Errorf("stale instances dropped %v, their peers %v; want 1 and 1 (by one of the survivors)", stale, dropped)
	}
	// Offers now find only the leecher.
	seeder.send(wsAnnounce("-WW0100-seeder--0001", 0, "offer-number-0000002", "offer-number-0000003"))
	if r := seeder.read(); wsCount(r, "incomplete") != 1 {
		t.Errorf("seeder's reply after the kill: %v", r)
	}
	if o := leecher.read(); o["offer_id"] != "offer-number-0000002" && o["offer_id"] != "offer-number-0000003" {
		t.Errorf("leecher got %v", o)
	}
	if strings.Contains(db.Log(), "panic") || strings.Contains(da.Log(), "panic") {
		t.Errorf("a daemon panicked")
	}
}
