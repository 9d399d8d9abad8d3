package main

import (
	"math/bits"
	"time"
)

// histSubBits sets the histogram's precision: each power of two is cut into
// 2^histSubBits buckets, so a bucket is at most 1/32 (about 3 %) wide.
const histSubBits = 5

const (
	histSub     = 1 << histSubBits
	histBuckets = (64-histSubBits)*histSub + histSub
)

// Histogram counts durations in log-linear buckets (the HdrHistogram idea):
// recording is an index computation and an increment, so a worker records
// every request without allocating or sorting. It is not safe for
// concurrent use; each worker has its own and they are merged at the end.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	max    uint64
}

// histIndex returns v's bucket: values below 2*histSub have their own
// bucket, larger ones share a bucket with those of the same leading
// histSubBits+1 bits.
func histIndex(v uint64) int {
	if v < 2*histSub {
		return int(v)
	}
	shift := bits.Len64(v) - (histSubBits + 1)
	return shift*histSub + int(v>>uint(shift))
}

// histBounds returns the smallest and largest value of bucket i.
func histBounds(i int) (lo, hi uint64) {
	if i < 2*histSub {
		return uint64(i), uint64(i)
	}
	shift := uint(i/histSub - 1)
	top := uint64(i%histSub + histSub)
	return top << shift, (top+1)<<shift - 1
}

// Record counts one duration; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := uint64(0)
	if d > 0 {
		v = uint64(d)
	}
	h.counts[histIndex(v)]++
	h.n++
	if v > h.max {
		h.max = v
	}
}

// Count returns the number of recorded durations.
func (h *Histogram) Count() uint64 { return h.n }

// Max returns the largest recorded duration, exactly.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	if o.max > h.max {
		h.max = o.max
	}
}

// Quantile returns the duration below which a share q (0..1) of the
// recorded durations fall, as the middle of the bucket that holds it (never
// above the maximum). It is 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	if rank > h.n {
		rank = h.n
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := histBounds(i)
			mid := lo + (hi-lo)/2
			if mid > h.max {
				mid = h.max
			}
			return time.Duration(mid)
		}
	}
	return time.Duration(h.max)
}
