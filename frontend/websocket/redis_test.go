package websocket

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sirupsen/logrus"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/frontend/frontendtest"
	"github.com/chihaya/chihaya/middleware"
	"github.com/chihaya/chihaya/storage/redis"
	"github.com/chihaya/chihaya/storage/redis/redistest"
)

// The relay across instances: two trackers, each its own Redis store on
// one redis-server under one key prefix, as two instances behind a load
// balancer.

var prefixes atomic.Int64

// offerAcrossInstances starts two trackers on one Redis: browser a, a
// leecher on the first, and browser b on the second, whose announce
// carries one offer (offerN(1)) for a; the offer is a's to read.
func offerAcrossInstances(t *testing.T) (trs []*tracker, a, b *client) {
	t.Helper()
	srv := redistest.Start(t, "redis-server")
	trs = redisTrackers(t, srv.Addr, 2)
	a, b = trs[0].dial(t, "/"), trs[1].dial(t, "/")
	a.send(announceMsg(ih1, peerID(1), 100))
	a.read()
	b.send(announceMsg(ih1, peerID(2), 0, offerN(1)))
	b.read()
	return trs, a, b
}

// redisTrackers starts n trackers sharing the Redis at addr.
func redisTrackers(t testing.TB, addr string, n int, edit ...func(*Config)) []*tracker {
	t.Helper()
	prefix := "ws" + strconv.FormatInt(prefixes.Add(1), 10) + ":"
	var trs []*tracker
	for range n {
		cfg := redis.Config{RedisBroker: "redis://" + addr + "/0", KeyPrefix: prefix,
			RedisConnectTimeout: 5 * time.Second, RedisReadTimeout: 5 * time.Second, RedisWriteTimeout: 5 * time.Second,
			RelayHeartbeatInterval: 50 * time.Millisecond, RelayInstanceTimeout: time.Second}.WithDefaults()
		store, err := redis.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		logic := middleware.NewLogic(middleware.Config{}.WithDefaults(), store, nil, nil)
		wcfg := Config{Addr: "127.0.0.1:0"}
		for _, e := range edit {
			e(&wcfg)
		}
		wcfg = wcfg.WithDefaults()
		f, err := NewFrontend(logic, wcfg)
		if err != nil {
			t.Fatal(err)
		}
		trs = append(trs, &tracker{f: f, store: store, url: "ws://" + f.Addr().String()})
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = f.Stop(ctx)
			_ = logic.Stop(ctx)
			_ = store.Stop(ctx)
		})
	}
	return trs
}

// TestRelayAcrossInstances: a browser on instance A gets the offer of a
// browser on instance B, and its answer goes back; an answer that matches
// no offer relayed is refused there, as on one instance.
func TestRelayAcrossInstances(t *testing.T) {
	srv := redistest.Start(t, "redis-server")
	trs := redisTrackers(t, srv.Addr, 2)
	a, b := trs[0].dial(t, "/"), trs[1].dial(t, "/")
	forwarded := testutil.ToFloat64(relayed[relayOffer][relayForwarded])

	a.send(announceMsg(ih1, peerID(1), 100))
	if r := a.read(); num(r, "incomplete") != 1 {
		t.Fatalf("leecher's reply: %v", r)
	}
	b.send(announceMsg(ih1, peerID(2), 0, offerN(1), offerN(2)))
	if r := b.read(); num(r, "complete") != 1 || num(r, "incomplete") != 1 {
		t.Fatalf("seeder's reply on the other instance: %v (counts are shared)", r)
	}
	got := a.read()
	if got["peer_id"] != bsa(peerID(2)) || got["offer_id"] != bsa(offerN(1)) || got["info_hash"] != bs(ih1[:]) {
		t.Fatalf("offer relayed from the other instance: %v", got)
	}
	if o, _ := got["offer"].(map[string]any); o["sdp"] != "sdp of "+bsa(offerN(1)) {
		t.Errorf("offer object: %v", got)
	}
	if d := testutil.ToFloat64(relayed[relayOffer][relayForwarded]) - forwarded; d != 1 {
		t.Errorf("%v offers forwarded to the other instance, want 1 (one peer, two offers)", d)
	}

	answer := map[string]any{"action": "announce", "info_hash": bs(ih1[:]), "peer_id": bsa(peerID(1)),
		"to_peer_id": bsa(peerID(2)), "offer_id": bsa(offerN(1)), "answer": map[string]any{"type": "answer", "sdp": "answer sdp"}}
	a.send(answer)
	got = b.read()
	if got["peer_id"] != bsa(peerID(1)) || got["offer_id"] != bsa(offerN(1)) {
		t.Fatalf("answer relayed back: %v", got)
	}
	if ans, _ := got["answer"].(map[string]any); ans["sdp"] != "answer sdp" {
		t.Errorf("answer object: %v", got)
	}
	// Once answered, the offer is gone: the same answer is refused.
	a.send(answer)
	if r := a.read(); r["failure reason"] == nil {
		t.Errorf("a replayed answer across instances: %v, want a failure", r)
	}
	// An answer to an offer never relayed (the offerer on the other
	// instance never offered offerN(5)).
	answer["offer_id"] = bsa(offerN(5))
	a.send(answer)
	if r := a.read(); r["failure reason"] == nil {
		t.Errorf("an answer to no offer: %v, want a failure", r)
	}
}

// TestExpiredOfferAcrossInstances: an answer that comes after
// offer_timeout is refused on the answerer's instance, and the offerer on
// the other never hears of it.
func TestExpiredOfferAcrossInstances(t *testing.T) {
	srv := redistest.Start(t, "redis-server")
	trs := redisTrackers(t, srv.Addr, 2, func(c *Config) { c.OfferTimeout = time.Second })
	a, b := trs[0].dial(t, "/"), trs[1].dial(t, "/")
	a.send(announceMsg(ih1, peerID(1), 100))
	a.read()
	b.send(announceMsg(ih1, peerID(2), 0, offerN(1)))
	b.read()
	if o := a.read(); o["offer_id"] != bsa(offerN(1)) {
		t.Fatalf("offer: %v", o)
	}
	unmatched := testutil.ToFloat64(relayed[relayAnswer][relayUnmatched])
	time.Sleep(2500 * time.Millisecond) // past the timeout, in whole seconds
	a.send(map[string]any{"action": "announce", "info_hash": bs(ih1[:]), "peer_id": bsa(peerID(1)),
		"to_peer_id": bsa(peerID(2)), "offer_id": bsa(offerN(1)), "answer": map[string]any{"type": "answer", "sdp": "late"}})
	if r := a.read(); r["failure reason"] == nil {
		t.Errorf("a late answer: %v, want a failure", r)
	}
	if d := testutil.ToFloat64(relayed[relayAnswer][relayUnmatched]) - unmatched; d != 1 {
		t.Errorf("%v answers counted unmatched, want 1", d)
	}
	b.send(map[string]any{"action": "scrape", "info_hash": bs(ih1[:])})
	if m := b.read(); m["action"] != "scrape" {
		t.Errorf("the offerer got %v, want nothing before its scrape reply", m)
	}
}

// TestClosedConnectionLeavesAcrossInstances: a browser whose socket
// closes leaves the swarm (with the Redis store, which applies updates
// with the answer, too), and the offers awaiting its answer are dropped
// at once.
func TestClosedConnectionLeavesAcrossInstances(t *testing.T) {
	trs, a, _ := offerAcrossInstances(t)
	a.read() // the offer
	trs[0].f.offerMu.Lock()
	pending := len(trs[0].f.offers)
	trs[0].f.offerMu.Unlock()
	if pending != 1 {
		t.Fatalf("%d connections await answers, want a's", pending)
	}
	a.ws.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := trs[1].store.ScrapeSwarm(ih1, bittorrent.IPv4)
		trs[0].f.offerMu.Lock()
		pending = len(trs[0].f.offers)
		trs[0].f.offerMu.Unlock()
		if err == nil && c.Leechers == 0 && pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the leecher's socket closed: counts %+v (%v), %d connections awaiting answers; want no leecher and none", c, err, pending)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRedisDownAnnounceFails: with Redis gone, an announce gets the
// generic failure (never Redis' words), counted, and the connection stays.
func TestRedisDownAnnounceFails(t *testing.T) {
	srv := redistest.Start(t, "redis-server")
	trs := redisTrackers(t, srv.Addr, 1)
	a := trs[0].dial(t, "/")
	a.send(announceMsg(ih1, peerID(1), 100))
	a.read()
	before := frontendtest.ErrorsCounted("websocket", "internal")
	srv.Kill()
	a.send(announceMsg(ih1, peerID(1), 100))
	if r := a.read(); r["failure reason"] != string(bittorrent.ErrInternal) || r["info_hash"] != bs(ih1[:]) {
		t.Fatalf("announce with Redis down: %v, want the generic failure", r)
	}
	if d := frontendtest.ErrorsCounted("websocket", "internal") - before; d != 1 {
		t.Errorf("%v internal errors counted, want 1", d)
	}
	a.send(map[string]any{"action": "scrape", "info_hash": bs(ih1[:])})
	if r := a.read(); r["failure reason"] != string(bittorrent.ErrInternal) {
		t.Errorf("scrape with Redis down: %v", r)
	}
}

// BenchmarkRelayLatency measures, over loopback, how long an offer and an
// answer take from one browser's socket to the other's: both browsers on
// one instance (memory store, then Redis store), and on two instances
// sharing a Redis (the answer then goes through Redis pub/sub). Per
// round: the leecher announces with one offer; offer-p50-µs (and p99) is
// until the seeder has the offer (the announce's own store round trip included),
// answer-p50-µs from the seeder's answer until the leecher has it (the relay
// alone). Needs redis-server.
func BenchmarkRelayLatency(b *testing.B) {
	srv := redistest.Start(b, "redis-server")
	// The stores' start-up lines would break the benchmark's output lines.
	level := logrus.GetLevel()
	logrus.SetLevel(logrus.WarnLevel)
	b.Cleanup(func() { logrus.SetLevel(level) })
	for _, bc := range []struct {
		name string
		make func() (seeders, leechers *tracker)
	}{
		{"one instance, memory", func() (*tracker, *tracker) { tr := newTracker(b, Config{}); return tr, tr }},
		{"one instance, redis", func() (*tracker, *tracker) { trs := redisTrackers(b, srv.Addr, 1); return trs[0], trs[0] }},
		{"two instances, redis", func() (*tracker, *tracker) { trs := redisTrackers(b, srv.Addr, 2); return trs[0], trs[1] }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			st, lt := bc.make()
			ih, seeder, leecher, offer := id20("latency-swarm-------"), id20("latency-seeder------"), id20("latency-leecher-----"), id20("latency-offer-------")
			enc := func(v map[string]any) []byte {
				m, err := json.Marshal(v)
				if err != nil {
					b.Fatal(err)
				}
				return frame(m)
			}
			s, l := dialRaw(b, st), dialRaw(b, lt)
			s.write(b, enc(announceMsg(ih, seeder, 0)))
			s.read(b)
			announce := enc(announceMsg(ih, leecher, 100, offer))
			answer := enc(map[string]any{"action": "announce", "info_hash": bsa(ih), "peer_id": bsa(seeder), "to_peer_id": bsa(leecher),
				"offer_id": bsa(offer), "answer": map[string]any{"type": "answer", "sdp": "sdp of the answer"}})
			var offers, answers []time.Duration
			round := func() {
				start := time.Now()
				l.write(b, announce)
				if m := s.read(b); len(m) < 10 || !bytes.Contains(m, []byte(`"offer"`)) {
					b.Fatalf("seeder got %q, want the offer", m)
				}
				mid := time.Now()
				s.write(b, answer)
				// The announce reply and the answer, in either order: the
				// offer leaves before the reply is queued.
				first := bytes.Contains(l.read(b), []byte(`"answer"`))
				if second := bytes.Contains(l.read(b), []byte(`"answer"`)); first == second {
					b.Fatalf("leecher got %d answers with its announce reply, want 1", map[bool]int{true: 2, false: 0}[first])
				}
				offers, answers = append(offers, mid.Sub(start)), append(answers, time.Since(mid))
			}
			round() // the leecher joins
			offers, answers = offers[:0], answers[:0]
			for b.Loop() {
				round()
			}
			report := func(ds []time.Duration, unit string) {
				// Percentiles rather than means: on a shared machine a
				// few rounds wait for a CPU far longer than any relay.
				slices.Sort(ds)
				b.ReportMetric(float64(ds[len(ds)/2].Microseconds()), unit+"-p50-µs")
				b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds()), unit+"-p99-µs")
			}
			report(offers, "offer")
			report(answers, "answer")
		})
	}
}
