package memory

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage/locality"
	"github.com/chihaya/chihaya/storage/storagetest"
)

// TestStamperUnit checks the unit of the 16-bit stamps: one second while
// twice the longest a peer lives fits in 32,767 of them, larger beyond.
func TestStamperUnit(t *testing.T) {
	for _, tc := range []struct {
		lifetime, gc time.Duration
		unit         int64 // seconds
	}{
		{31 * time.Minute, 3 * time.Minute, 1},
		{time.Second, time.Second, 1},
		{4 * time.Hour, 30 * time.Minute, 1},
		{5 * time.Hour, time.Hour, 2},
		{24 * time.Hour, 3 * time.Minute, 8},
	} {
		st := newStamper(tc.lifetime, tc.gc)
		if got := int64(1) << st.shift; got != tc.unit {
			t.Errorf("peer_lifetime %s, gc_interval %s: unit %ds, want %ds", tc.lifetime, tc.gc, got, tc.unit)
		}
		if span := 2 * (tc.lifetime + tc.gc); span > time.Duration(32767<<st.shift)*time.Second {
			t.Errorf("peer_lifetime %s: ages of %s not told apart", tc.lifetime, span)
		}
	}
}

// TestStampAges reads stamps as ages across the 16-bit wrap: a stamp taken
// 10 units before now is 10 units old whatever now is, and one from the
// future is new.
func TestStampAges(t *testing.T) {
	st := stamper{}
	for _, now := range []int64{1_800_000_000, 1_800_000_000 + 65_536 - 5, 65_540} {
		stepClocks(t, func() int64 { return now }, func() int64 { return now })
		n := st.at(now)
		if got := stampAge(n, st.at(now-10)); got != 10 {
			t.Errorf("now %d: age of a stamp 10s old = %d", now, got)
		}
		if got := stampAge(n, st.at(now+30)); got != 0 {
			t.Errorf("now %d: age of a stamp 30s ahead = %d, want 0", now, got)
		}
		if got := st.unix(st.at(now-1234), now); got != now-1234 {
			t.Errorf("now %d: stamp of %d read back as %d", now, now-1234, got)
		}
		// The collection's test, as CollectGarbage builds it from the
		// distance between now and the cutoff.
		for _, tc := range []struct {
			seen, cut int64
			stale     bool
		}{
			{now - 100, now - 50, true},
			{now - 50, now - 50, false}, // seen at the cutoff: kept
			{now - 10, now - 50, false},
			{now, now + 3600, true}, // a cutoff in the future takes all
			{now + 5, now + 3600, true},
			{now - 5, now - 3600, false},
		} {
			d := now - tc.cut
			c := cutoff{now: n, maxAge: int32(max(min(d, 32767), -1))}
			if got := c.stale(st.at(tc.seen)); got != tc.stale {
				t.Errorf("now %d: seen %+ds, cutoff %+ds: stale %v, want %v", now, tc.seen-now, tc.cut-now, got, tc.stale)
			}
		}
	}
}

// stepClocks makes the store's clocks read wall and steady seconds from
// the given functions for the rest of the test.
func stepClocks(t *testing.T, wall, steady func() int64) {
	oldWall, oldOffset := wallUnix, steadyOffset
	wallUnix, steadyOffset = wall, func() int64 { return steady() - wall() }
	t.Cleanup(func() { wallUnix, steadyOffset = oldWall, oldOffset })
}

// TestCollectAcrossWallClockSteps: peers that announced while the wall
// clock was 10 hours ahead (a boot before NTP set it right) are not all
// dropped when it is stepped back; a step forward does not keep them
// longer than peer_lifetime; and a peer never seen again over three days
// of collections goes at the first one past its lifetime, not before.
func TestCollectAcrossWallClockSteps(t *testing.T) {
	const lifetime, gcEvery = 31 * 60, 3 * 60 // seconds: the defaults
	start := time.Now().Unix()
	for _, step := range []int64{-10 * 3600, 10 * 3600, -20 * 3600, 3 * 24 * 3600} {
		t.Run(fmt.Sprintf("step %+dh", step/3600), func(t *testing.T) {
			var elapsed int64 // steady seconds since start
			stepped := false
			stepClocks(t, func() int64 {
				if stepped {
					return start + elapsed
				}
				return start + elapsed - step
			}, func() int64 { return start + elapsed })
			s := newLayoutStore(t, locality.Config{}, defaultFlatMax)
			t.Cleanup(func() { storagetestStop(t, s) })
			ih := storagetest.InfoHash(7)
			p := bittorrent.Peer{AddrPort: netip.MustParseAddrPort("10.0.0.1:6881")}
			if err := s.PutLeecher(ih, p); err != nil {
				t.Fatal(err)
			}
			stepped = true
			for elapsed = 0; elapsed <= 3*24*3600; elapsed += gcEvery {
				if err := s.CollectGarbage(time.Unix(wallUnix()-lifetime, 0)); err != nil {
					t.Fatal(err)
				}
				st, _ := s.Stats()
				switch kept := st.Leechers[bittorrent.IPv4] == 1; {
				case elapsed <= lifetime && !kept:
					t.Fatalf("collected %ds after its announce, within peer_lifetime (%ds)", elapsed, lifetime)
				case elapsed > lifetime+gcEvery && kept:
					t.Fatalf("still kept %ds after its announce (peer_lifetime %ds)", elapsed, lifetime)
				}
			}
		})
	}
}
