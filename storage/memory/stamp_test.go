package memory

import (
	"testing"
	"time"
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
