package log

import (
	"sync/atomic"
	"time"
)

// DefaultSampleInterval is a Sampler's interval when it sets none.
const DefaultSampleInterval = time.Second

// Sampler lets a path that runs per packet or per request log a sample:
// Allow is true at most once per Interval. A flood of bad packets or a
// failing backend then cannot flood the log; the metrics carry the volume.
// The zero Sampler allows once per DefaultSampleInterval, and is safe for
// concurrent use.
type Sampler struct {
	Interval time.Duration
	last     atomic.Int64 // UnixNano of the last allowed event
}

// Allow reports whether this event may be logged.
func (s *Sampler) Allow() bool {
	every := s.Interval
	if every <= 0 {
		every = DefaultSampleInterval
	}
	now := time.Now().UnixNano()
	last := s.last.Load()
	return now-last >= int64(every) && s.last.CompareAndSwap(last, now)
}
