package memory

import (
	"math"
	"time"

	"github.com/chihaya/chihaya/pkg/clock"
)

// Last-seen times are kept in 16 bits: the time in units of 1<<shift
// seconds, modulo 2^16. A record is then 8 bytes an IPv4 peer (address,
// port, stamp), as opentracker's, instead of 10 with Unix seconds.
//
// A stamp is read as an age: now minus the stamp, taken as a signed 16-bit
// number, so ages up to 32,767 units are told apart. The unit is the
// smallest power of two seconds that keeps twice the longest a peer lives
// (peer_lifetime, plus up to one gc_interval until the collection that
// removes it) within that: one second with the defaults (31m, 3m), whose
// ages reach 9 hours; 8 seconds for a lifetime of a day. Stamps count
// the steady clock (clock.Steady), not the wall clock: a step of the wall
// clock by more than the range (NTP setting right a boot time hours ahead)
// would otherwise make every stamp read as older than it is, and
// collection would drop every peer at once. Times cross to and from the
// wall clock (snapshots, collection cutoffs) by the whole seconds the
// steady clock is ahead of it. A peer whose collection was held up for
// longer than the range (the process stopped for 9 hours with the
// defaults) reads as younger than it is, and is collected that much later.
const (
	stampLen     = 2
	fileStampLen = 4 // snapshots keep Unix seconds
)

// The clocks stamps are read from; tests step them. The steady clock is
// read as the wall clock plus the whole seconds it is ahead, so that
// without a step the two read alike and conversions lose nothing.
var (
	wallUnix     = clock.Unix
	steadyOffset = func() int64 {
		return int64(time.Duration(clock.Steady()-clock.UnixNano()).Round(time.Second) / time.Second)
	}
)

// steadyUnix returns the steady clock in seconds.
func steadyUnix() int64 { return wallUnix() + steadyOffset() }

// stamper converts between times and stamps.
type stamper struct{ shift uint }

// newStamper returns the stamper for peers living up to lifetime, and
// collected every gcInterval.
func newStamper(lifetime, gcInterval time.Duration) stamper {
	span := 2 * int64((lifetime+gcInterval+time.Second-1)/time.Second)
	var st stamper
	for span>>st.shift >= math.MaxInt16 {
		st.shift++
	}
	return st
}

// at returns the stamp of steady-clock second sec.
func (st stamper) at(sec int64) uint16 { return uint16(sec >> st.shift) }

// now returns the stamp of the present, by the cached steady clock.
func (st stamper) now() uint16 { return st.at(steadyUnix()) }

// fromUnix returns the stamp of wall-clock Unix time sec.
func (st stamper) fromUnix(sec int64) uint16 { return st.at(sec + steadyOffset()) }

// stampAge returns how many units before now stamp s was taken; 0 for a stamp
// from the future.
func stampAge(now, s uint16) int32 { return max(int32(int16(now-s)), 0) }

// unix returns the wall-clock Unix time of stamp s, read at wall time
// nowSec, to the unit.
func (st stamper) unix(s uint16, nowSec int64) int64 {
	off := steadyOffset()
	n := (nowSec + off) >> st.shift
	return (n-int64(stampAge(uint16(n), s)))<<st.shift - off
}

// oldest returns the oldest Unix time at nowSec that a stamp tells apart
// with room to spare: half the range, at least peer_lifetime plus
// gc_interval ago (newStamper), so such a peer is stale anyway.
func (st stamper) oldest(nowSec uint32) uint32 {
	return uint32(max(int64(nowSec)-int64(math.MaxInt16/2)<<st.shift, 0))
}

// cutoff tells the stamps of peers last seen before a collection's cutoff.
type cutoff struct {
	now    uint16
	maxAge int32 // stale when older; -1: all are
}

// cutoff returns the test for peers last seen before cut: those stamped in
// an earlier unit than cut's. A peer seen in cut's unit but before cut is
// kept, for at most one unit more.
func (st stamper) cutoff(cut time.Time) cutoff {
	off := steadyOffset()
	n := (wallUnix() + off) >> st.shift
	c := cutoff{now: uint16(n)}
	switch d := n - (cut.Unix()+off)>>st.shift; {
	case d < 0:
		c.maxAge = -1
	case d > math.MaxInt16:
		c.maxAge = math.MaxInt16
	default:
		c.maxAge = int32(d)
	}
	return c
}

// stale reports whether stamp s is before the cutoff.
func (c cutoff) stale(s uint16) bool { return stampAge(c.now, s) > c.maxAge }
