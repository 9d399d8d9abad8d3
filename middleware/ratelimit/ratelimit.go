// Package ratelimit implements the `rate limit` hook: a token bucket per
// client address (or address prefix) for announces and another for
// scrapes. It keys on the request's RemoteAddr, the address the request
// really came from (behind a trusted reverse proxy, the client's address
// from the proxy's header), never on the address a client claims for
// itself.
package ratelimit

import (
	"context"
	"hash/maphash"
	"math"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/middleware"
	"github.com/chihaya/chihaya/pkg/clock"
)

// Name is the name operators write in the `prehooks` list.
const Name = "rate limit"

var evictions = prometheus.NewCounter(prometheus.CounterOpts{
	Namespace: "chihaya",
	Subsystem: "middleware",
	Name:      "rate_limit_evictions_total",
	Help:      "Tracked addresses forgotten, while their budget was still partly spent, to make room for another; a steady rate means max_tracked_addresses is too small.",
})

func init() {
	prometheus.MustRegister(evictions)
	middleware.Register(plugin)
}

// plugin decodes the hook's options and builds it.
var plugin = middleware.Plugin[Config]{
	Name:          Name,
	Defaults:      Config.WithDefaults,
	New:           func(c Config) (middleware.Hook, error) { return New(c), nil },
	Reasons:       []string{"rate_limited"},
	ScrapeReasons: []string{"rate_limited"},
}

// ways is the associativity of the table: a key may sit in one of this
// many slots of its set, and the least recently seen is replaced. Four
// 32-byte slots are two cache lines.
const ways = 4

// slot is one tracked address. last is 0 for a free slot.
type slot struct {
	key      [16]byte
	last     int64 // clock.Monotonic of the last refill; 0: a free slot
	announce float32
	scrape   float32
}

// shard is a lock and the sets it guards. The padding keeps two shards'
// locks off one cache line.
type shard struct {
	mu    sync.Mutex
	slots []slot
	_     [40]byte
}

// bucket is the token bucket of one action.
type bucket struct {
	rate  float64 // tokens per second; 0: not limited
	burst float32
	// refusals[n] says "retry in ns"; prepared at start so that refusing
	// (the common case under a flood) does not allocate.
	refusals []error
}

func newBucket(rate float64, burst int) bucket {
	b := bucket{rate: rate, burst: float32(burst)}
	if rate > 0 {
		// A refused client lacks less than one token, so it waits at most
		// 1/rate seconds.
		n := int(math.Ceil(1/rate)) + 1
		b.refusals = make([]error, n+1)
		for i := range b.refusals {
			b.refusals[i] = middleware.Refusal{
				Reason: "rate_limited",
				Err:    bittorrent.ClientError("rate limited: retry in " + strconv.Itoa(max(i, 1)) + "s"),
			}
		}
	}
	return b
}

// refusal returns the refusal for a client lacking `missing` tokens.
func (b *bucket) refusal(missing float32) error {
	// The small allowance keeps float32 rounding (0.6/0.2 = 3.0000001)
	// from adding a second.
	secs := int(math.Ceil(float64(missing)/b.rate - 1e-4))
	if secs >= len(b.refusals) {
		secs = len(b.refusals) - 1
	}
	return b.refusals[secs]
}

// Hook limits announces and scrapes per client address. Addresses are
// sharded by a keyed hash over many locks, each guarding a fixed,
// preallocated, set-associative table: memory is bounded from the start,
// a lookup touches a few slots, and nothing is allocated per request.
type Hook struct {
	announce, scrape bucket
	v4bits, v6bits   int

	seed   maphash.Seed
	shards []shard
	mask   uint64 // len(shards)-1
	sets   uint64 // sets per shard

	now func() int64 // clock.Monotonic: a wall clock stepped back would stop refills; tests step it
}

var _ middleware.Hook = (*Hook)(nil)

// New builds the hook from a validated config, allocating its table.
func New(cfg Config) *Hook {
	h := &Hook{
		announce: newBucket(cfg.AnnouncesPerSecond, cfg.AnnounceBurst),
		scrape:   newBucket(cfg.ScrapesPerSecond, cfg.ScrapeBurst),
		v4bits:   cfg.IPv4PrefixLength,
		v6bits:   cfg.IPv6PrefixLength,
		seed:     maphash.MakeSeed(),
		now:      clock.Monotonic,
	}
	// Enough shards that cores rarely meet on a lock.
	n := 16
	for n < 8*runtime.GOMAXPROCS(0) {
		n *= 2
	}
	h.shards = make([]shard, n)
	h.mask = uint64(n - 1)
	h.sets = uint64(max(1, cfg.MaxTrackedAddresses/(n*ways)))
	for i := range h.shards {
		h.shards[i].slots = make([]slot, h.sets*ways)
	}
	return h
}

// Capacity returns the number of addresses the table can hold.
func (h *Hook) Capacity() int { return len(h.shards) * int(h.sets) * ways }

// key groups an address with the others of its prefix. IPv4 keys are kept
// in their IPv4-mapped form, apart from every IPv6 key. a must be valid.
func (h *Hook) key(a netip.Addr) [16]byte {
	a = a.Unmap()
	bits := h.v6bits
	if a.Is4() {
		bits = h.v4bits
	}
	p, _ := a.Prefix(bits)
	return p.Addr().As16() // IPv4: the IPv4-mapped form
}

// allow spends one token of the action's bucket for addr, or returns the
// refusal telling when to retry. announce selects the bucket.
func (h *Hook) allow(addr netip.Addr, announce bool) error {
	b := &h.scrape
	if announce {
		b = &h.announce
	}
	if b.rate == 0 || !addr.IsValid() {
		return nil
	}
	k := h.key(addr)
	hv := maphash.Bytes(h.seed, k[:])
	s := &h.shards[hv&h.mask]
	set := (hv >> 32) % h.sets * ways
	now := h.now()

	s.mu.Lock()
	slots := s.slots[set : set+ways]
	e := &slots[0]
	found := false
	for i := range slots {
		if slots[i].last != 0 && slots[i].key == k {
			e, found = &slots[i], true
			break
		}
		if slots[i].last < e.last {
			e = &slots[i] // free (0) or least recently seen
		}
	}
	if !found {
		if e.last != 0 && (e.announce < h.announce.burst || e.scrape < h.scrape.burst) {
			evictions.Inc()
		}
		*e = slot{key: k, last: now, announce: h.announce.burst, scrape: h.scrape.burst}
	}
	if elapsed := float64(now-e.last) / float64(time.Second); elapsed > 0 {
		e.announce = min(h.announce.burst, e.announce+float32(elapsed*h.announce.rate))
		e.scrape = min(h.scrape.burst, e.scrape+float32(elapsed*h.scrape.rate))
		e.last = now
	}
	tokens := &e.scrape
	if announce {
		tokens = &e.announce
	}
	if *tokens >= 1 {
		*tokens--
		s.mu.Unlock()
		return nil
	}
	missing := 1 - *tokens
	s.mu.Unlock()
	return b.refusal(missing)
}

// HandleAnnounce refuses the announce when the client's announce budget is
// spent, telling it when to retry.
//
// A request without a RemoteAddr (a frontend that does not set it) is
// limited by its peer address, which is the connection's address unless
// the operator allows spoofing; a scrape without one is not limited, since
// sharing one budget among all such requests would shut the tracker.
func (h *Hook) HandleAnnounce(_ context.Context, req *bittorrent.AnnounceRequest, _ *bittorrent.AnnounceResponse) error {
	addr := req.RemoteAddr
	if !addr.IsValid() {
		addr = req.Peer.AddrPort.Addr()
	}
	return h.allow(addr, true)
}

// HandleScrape refuses the scrape when the client's scrape budget is spent.
func (h *Hook) HandleScrape(_ context.Context, req *bittorrent.ScrapeRequest, _ *bittorrent.ScrapeResponse) error {
	return h.allow(req.RemoteAddr, false)
}
