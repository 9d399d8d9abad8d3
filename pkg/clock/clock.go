// Package clock is a cached coarse clock: hot paths read the time with one
// atomic load instead of a time.Now call per request.
package clock

import (
	"sync"
	"sync/atomic"
	"time"
)

// Resolution is how often the cached time is refreshed.
const Resolution = 100 * time.Millisecond

var (
	nanos     atomic.Int64
	mono      atomic.Int64
	startOnce sync.Once
	// wallBase is the wall time at start less monoStart: Steady's origin.
	wallBase int64
)

// monoStart is where Monotonic starts counting: above zero, so that
// callers may use 0 for "never".
const monoStart = int64(time.Second)

func start() {
	base := time.Now()
	wallBase = base.UnixNano() - monoStart
	nanos.Store(base.UnixNano())
	mono.Store(monoStart)
	go func() {
		t := time.NewTicker(Resolution)
		for now := range t.C {
			nanos.Store(now.UnixNano())
			mono.Store(monoStart + int64(now.Sub(base)))
		}
	}()
}

// Monotonic returns the cached time in nanoseconds on the monotonic clock,
// counted from a point before the first call (and above zero). Unlike
// UnixNano it never goes back when the wall clock is stepped, so it is
// the one to measure intervals with. It lags by at most Resolution.
func Monotonic() int64 {
	startOnce.Do(start)
	return mono.Load()
}

// Steady returns the cached time in nanoseconds since the Unix epoch as
// the wall clock read at the first call and the monotonic clock since: it
// keeps pace with UnixNano, but a step of the wall clock (NTP correcting a
// wrong boot time, an operator's date command) does not move it. Use it
// for stamps that are compared with each other over hours.
func Steady() int64 {
	startOnce.Do(start)
	return wallBase + mono.Load()
}

// UnixNano returns the cached time in nanoseconds since the Unix epoch; it
// lags the real time by at most Resolution.
func UnixNano() int64 {
	startOnce.Do(start)
	return nanos.Load()
}

// Unix returns the cached time in seconds since the Unix epoch.
func Unix() int64 { return UnixNano() / int64(time.Second) }

// Now returns the cached time.
func Now() time.Time { return time.Unix(0, UnixNano()) }
