package redis

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/redis/redistest"
)

// relayConfig is quick heartbeats, for tests that wait for them.
func relayConfig(prefix string) func(*Config) {
	return func(c *Config) {
		if prefix != "" {
			c.KeyPrefix = prefix
		}
		c.RelayHeartbeatInterval = 50 * time.Millisecond
		c.RelayInstanceTimeout = 300 * time.Millisecond
	}
}

// connectedPair starts a Redis and two stores sharing it, each with its
// relay, and waits until a message from the first reaches the second
// (what it received is read from got).
func connectedPair(t *testing.T) (srv *server, a, b *PeerStore, ra, rb storage.Relay, got <-chan string) {
	t.Helper()
	srv = startRedis(t)
	a = newStore(t, srv, relayConfig(""))
	b = newStore(t, srv, relayConfig(a.cfg.KeyPrefix))
	ra, rb = a.Relay(), b.Relay()
	got = receiver(rb)
	waitFor(t, ra, rb, got, "before", 5*time.Second)
	return srv, a, b, ra, rb, got
}

// receiver returns a channel of the messages r receives.
func receiver(r storage.Relay) <-chan string {
	ch := make(chan string, 16)
	r.Receive(func(b []byte) { ch <- string(b) })
	return ch
}

// waitFor publishes msg from a to b until b receives it, or fails.
func waitFor(t *testing.T, a, b storage.Relay, got <-chan string, msg string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		a.Publish(b.Instance(), []byte(msg))
		select {
		case m := <-got:
			if m == msg {
				return
			}
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("instance %d never received %q from instance %d", b.Instance(), msg, a.Instance())
}

// TestRelayBetweenInstances: a message published for an instance reaches
// it; one for an instance that does not exist is dropped and counted.
func TestRelayBetweenInstances(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	a := newStore(t, srv, relayConfig(""))
	b := newStore(t, srv, relayConfig(a.cfg.KeyPrefix))
	ra, rb := a.Relay(), b.Relay()
	if ra.Instance() == 0 || ra.Instance() == rb.Instance() {
		t.Fatalf("instances %d and %d, want two distinct non-zero numbers", ra.Instance(), rb.Instance())
	}
	got := receiver(rb)
	waitFor(t, ra, rb, got, "offer \x00\xff", 5*time.Second)

	// After a heartbeat, a number nobody holds is known gone: its messages
	// are dropped before they reach Redis.
	time.Sleep(150 * time.Millisecond)
	gone := ra.Instance() + 1
	for gone == rb.Instance() || gone == 0 {
		gone++
	}
	before := testutil.ToFloat64(dropped[dropInstanceGone])
	ra.Publish(gone, []byte("lost"))
	if d := testutil.ToFloat64(dropped[dropInstanceGone]) - before; d != 1 {
		t.Errorf("%v messages for a gone instance counted as dropped, want 1", d)
	}
}

// TestRelayDropsStaleInstance: an instance that stops heartbeating
// without leaving (killed) is found gone: its WebSocket peers leave their
// swarms, and it is counted once.
func TestRelayDropsStaleInstance(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	live := newStore(t, srv, relayConfig(""))
	doomed := newStore(t, srv, relayConfig(live.cfg.KeyPrefix))
	live.Relay()
	doomed.Relay()
	browser := peer4(1)
	browser.Kind = bittorrent.WebSocketPeer
	must(t, "PutLeecher", doomed.PutLeecher(ih(1), browser))
	other := peer4(2)
	other.Kind = bittorrent.WebSocketPeer
	must(t, "PutSeeder", live.PutSeeder(ih(1), other))
	if c, _ := live.ScrapeSwarm(ih(1), bittorrent.IPv4); c.Leechers != 1 {
		t.Fatalf("before: %+v", c)
	}
	staleBefore := testutil.ToFloat64(relayStale)
	// Killed: its heartbeats stop, nothing is cleaned up.
	must(t, "stop loops", doomed.loops.Stop(t.Context()))
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := live.ScrapeSwarm(ih(1), bittorrent.IPv4)
		if err == nil && c == (storage.Counts{Seeders: 1}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gone instance's browser is still counted: %+v %v", c, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d := testutil.ToFloat64(relayStale) - staleBefore; d != 1 {
		t.Errorf("%v stale instances counted, want 1", d)
	}
	if n, _ := live.client.Exists(t.Context(), doomed.web.relay.Load().members(doomed.web.relay.Load().id)).Result(); n != 0 {
		t.Errorf("the gone instance's member set is left")
	}
}

// TestRelayReconnects: after Redis restarts (losing everything: no
// persistence), the subscription comes back and messages flow again.
func TestRelayReconnects(t *testing.T) {
	t.Parallel()
	srv, _, _, ra, rb, got := connectedPair(t)

	_, port, _ := net.SplitHostPort(srv.Addr)
	p, _ := strconv.Atoi(port)
	srv.Kill()
	var err error
	for range 50 {
		if _, err = redistest.StartOn(t, "redis-server", p); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("restart on port %d: %v", p, err)
	}
	waitFor(t, ra, rb, got, "after", 20*time.Second)
}

// testRelayCluster: on a Redis Cluster, messages reach the other
// instance through its shard channel, and a gone instance's browsers,
// whose swarms live on every master, are dropped.
func testRelayCluster(t *testing.T, c *redistest.Cluster) {
	var stores []*PeerStore
	for range 3 {
		edit := relayConfig("")
		if len(stores) > 0 {
			edit = relayConfig(stores[0].cfg.KeyPrefix)
		}
		s := clusterStore(t, c, edit)
		t.Cleanup(func() { _ = s.Stop(context.Background()) })
		stores = append(stores, s)
	}
	a, b, doomed := stores[0], stores[1], stores[2]
	ra, rb := a.Relay(), b.Relay()
	doomed.Relay()
	waitFor(t, ra, rb, receiver(rb), "to b", 10*time.Second)
	waitFor(t, rb, ra, receiver(ra), "to a", 10*time.Second)

	const swarms = 40 // spread over the masters' slots
	for i := range swarms {
		p := peer4(i)
		p.Kind = bittorrent.WebSocketPeer
		must(t, "PutLeecher", doomed.PutLeecher(ih(i), p))
	}
	must(t, "stop loops", doomed.loops.Stop(t.Context()))
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := 0
		for i := range swarms {
			c, err := a.ScrapeSwarm(ih(i), bittorrent.IPv4)
			must(t, "ScrapeSwarm", err)
			left += int(c.Leechers)
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the gone instance's %d browsers are still counted", left, swarms)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRelayKeepsInstanceThatBeatAgain: an instance read as silent past
// relay_instance_timeout that beats again before the reader drops it (it
// only froze, and came back) keeps its place and its browsers.
func TestRelayKeepsInstanceThatBeatAgain(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	hourly := func(c *Config) { c.RelayHeartbeatInterval, c.RelayInstanceTimeout = time.Hour, 3*time.Hour } // beats by hand below
	live := newStore(t, srv, hourly)
	frozen := newStore(t, srv, hourly, func(c *Config) { c.KeyPrefix = live.cfg.KeyPrefix })
	live.Relay()
	rf := frozen.Relay()
	browser := peer4(1)
	browser.Kind = bittorrent.WebSocketPeer
	must(t, "PutLeecher", frozen.PutLeecher(ih(1), browser))

	// live read frozen's heartbeat as stale (older than this cut)...
	cut := time.Now().UnixMilli()
	// ...and frozen beats before live drops it.
	time.Sleep(5 * time.Millisecond)
	frozen.web.relay.Load().beat()
	live.web.relay.Load().drop(rf.Instance(), cut)

	if c, err := frozen.ScrapeSwarm(ih(1), bittorrent.IPv4); err != nil || c.Leechers != 1 {
		t.Errorf("the browser of an instance that beat again: %+v (%v), want it still in its swarm", c, err)
	}
	if _, err := live.client.ZScore(t.Context(), live.web.relay.Load().beats, strconv.Itoa(int(rf.Instance()))).Result(); err != nil {
		t.Errorf("the instance that beat again lost its heartbeat: %v", err)
	}
}

// TestRelayQueueBoundedInBytes: while Redis does not answer, large
// messages (offers may be up to websocket.max_message_bytes) fill the
// publish queue by their size, not only their count: past 16 MiB waiting,
// more are dropped and counted, rather than held.
func TestRelayQueueBoundedInBytes(t *testing.T) {
	srv, _, _, ra, rb, _ := connectedPair(t)

	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer admin.Close()
	must(t, "CLIENT PAUSE", admin.ClientPause(t.Context(), 2*time.Second).Err())
	before := testutil.ToFloat64(dropped[dropQueueFull])
	msg := make([]byte, 60<<10)
	const n = 400 // 24 MiB, a tenth of the count bound
	for range n {
		ra.Publish(rb.Instance(), msg)
	}
	d := testutil.ToFloat64(dropped[dropQueueFull]) - before
	if d < float64(n-relayQueueBytes/len(msg)-1) {
		t.Errorf("%v of %d messages of 60 KiB dropped while Redis paused, want all past 16 MiB (%d)", d, n, n-relayQueueBytes/len(msg))
	}
}

// TestRelayResubscribes: when Redis drops the subscription to an
// instance's channel while the connection stays (what a Cluster does to
// shard channel subscribers when the channel's slot moves or its master
// becomes a replica), a heartbeat finds nobody listening and subscribes
// again, so messages reach the instance again.
func TestRelayResubscribes(t *testing.T) {
	t.Parallel()
	_, _, b, ra, rb, got := connectedPair(t)

	rel := b.web.relay.Load()
	must(t, "SUNSUBSCRIBE", rel.sub.Load().ps.SUnsubscribe(t.Context(), rel.channel(rel.id)))
	waitFor(t, ra, rb, got, "after", 5*time.Second)
}
