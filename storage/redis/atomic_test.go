package redis

import (
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
