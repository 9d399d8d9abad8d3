package redis

import (
	"bytes"
	"context"
	"net"
	"sync/atomic"

	"testing"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
)

// TestUpdateAllOrNothing: an announce whose update Redis refuses in part
// (out of memory: Redis refuses HSET and INCR but would still run HDEL)
// changes nothing. Two trackers share one Redis: a peer stored as a
// leecher by one, the other's announce of it as a seeder refused, the peer
// is still the leecher it was (not gone from both roles), and the totals
// say so.
func TestUpdateAllOrNothing(t *testing.T) {
	srv := startRedis(t, "maxmemory-policy noeviction")
	a := newStore(t, srv)
	b := newStore(t, srv, func(c *Config) { c.KeyPrefix = a.cfg.KeyPrefix })
	h := ih(13)
	for _, n := range []int{1, 2} {
		_, _, _, err := a.Announce(nil, h, storage.UpdateLeecher, 0, peer4(n))
		must(t, "Announce", err)
	}
	c := srv.Conn(t)
	must(t, "CONFIG SET", c.ConfigSet(t.Context(), "maxmemory", "1").Err())
	for _, u := range []storage.Update{storage.UpdateSeeder, storage.UpdateGraduate} {
		if _, _, _, err := b.Announce(nil, h, u, 0, peer4(1)); err == nil {
			t.Errorf("%v with Redis out of memory: no error", u)
		}
	}
	must(t, "CONFIG SET", c.ConfigSet(t.Context(), "maxmemory", "0").Err())
	got, err := a.ScrapeSwarm(h, bittorrent.IPv4)
	must(t, "ScrapeSwarm", err)
	if want := (storage.Counts{Leechers: 2}); got != want {
		t.Errorf("after refused updates: %+v, want %+v (the peer still a leecher)", got, want)
	}
	_, err = b.Stats()
	must(t, "Stats", err)
	st, err := a.Stats()
	must(t, "Stats", err)
	want := storage.Stats{}
	want.Leechers[bittorrent.IPv4], want.Swarms[bittorrent.IPv4] = 2, 1
	if st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
}

// cuttingConn writes, once armed, only what comes before the first HDEL
// of a write, then closes the connection: a pipeline cut half way, as a
// write timeout or a tracker killed between two writes of a large batch
// leave it.
type cuttingConn struct {
	net.Conn
	armed *atomic.Bool
}

func (c cuttingConn) Write(b []byte) (int, error) {
	if i := bytes.Index(b, []byte("$4\r\nhdel\r\n")); i >= 0 && c.armed.CompareAndSwap(true, false) {
		i = bytes.LastIndexByte(b[:i], '*')
		_, _ = c.Conn.Write(b[:i])
		c.Conn.Close()
		return i, net.ErrClosed
	}
	return c.Conn.Write(b)
}

// TestCutPipelineAppliesNothing: an announce whose pipeline reaches Redis
// only up to its HSET (the connection cut there) changes nothing: the
// leecher announcing as a seeder is still only a leecher, not in both
// roles.
func TestCutPipelineAppliesNothing(t *testing.T) {
	srv := startRedis(t)
	a := newStore(t, srv)
	var armed atomic.Bool
	cut := newDialing(t, srv, func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		return cuttingConn{Conn: c, armed: &armed}, err
	}, func(c *Config) { c.KeyPrefix = a.cfg.KeyPrefix })
	h := ih(14)
	_, _, _, err := a.Announce(nil, h, storage.UpdateLeecher, 0, peer4(1))
	must(t, "Announce", err)
	armed.Store(true)
	// The swarm's plain path (its announces but the first go by
	// tiny.lua while it holds one peer: bucket.go).
	k := cut.keys(h)
	cut.tiny.setBig(k.rawIH, bittorrent.IPv4, 2)
	if _, _, _, err := cut.Announce(nil, h, storage.UpdateSeeder, 0, peer4(1)); err == nil {
		t.Fatal("an announce whose connection was cut: no error")
	}
	if armed.Load() {
		t.Fatal("the announce sent no HDEL")
	}
	got, err := a.ScrapeSwarm(h, bittorrent.IPv4)
	must(t, "ScrapeSwarm", err)
	if want := (storage.Counts{Leechers: 1}); got != want {
		t.Errorf("after a cut announce: %+v, want %+v (the peer still a leecher, only)", got, want)
	}
}
