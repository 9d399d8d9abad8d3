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
	startOnce sync.Once
)

func start() {
	nanos.Store(time.Now().UnixNano())
	go func() {
		t := time.NewTicker(Resolution)
		for now := range t.C {
			nanos.Store(now.UnixNano())
		}
	}()
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
