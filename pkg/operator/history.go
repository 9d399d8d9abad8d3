package operator

import (
	"container/heap"
	"context"
	"encoding/binary"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
)

// What the status page keeps of the swarms' past, and its bounds.
const (
	// maxFollowed bounds the swarms whose history is kept.
	maxFollowed = 1000
	// topFollowed is how many of the largest swarms (by peers) are
	// followed at each walk.
	topFollowed = 100
	// topShown is how many of the largest swarms the front page lists.
	topShown = 20
	// quietAfter: a followed swarm that is neither among the largest nor
	// changed nor looked at for this long is dropped.
	quietAfter = time.Hour
	// dayStep and dayPoints make the day chart: a point every 5 minutes.
	dayStep   = 5 * time.Minute
	dayPoints = int(24 * time.Hour / dayStep)
	// maxHourPoints bounds the hour chart's points (at the shortest
	// history_interval, one a second would be 3,600).
	maxHourPoints = 720
	// pointBytes is the size of one point.
	pointBytes = 16
)

// HistoryBytes is the most memory the swarm history takes with history
// interval every: maxFollowed swarms, each with an hour ring and a day
// ring of 16-byte points (6.5 MB at the default 30s).
func HistoryBytes(every time.Duration) int {
	return maxFollowed * (hourPoints(every) + dayPoints) * pointBytes
}

func hourPoints(every time.Duration) int {
	return min(maxHourPoints, int((time.Hour+every-1)/every))
}

// point is one sample of a swarm.
type point struct {
	unix                        int64
	seeders, leechers, snatches uint32
	_                           uint32
}

// ring is a fixed-size circle of points, oldest overwritten first.
type ring struct {
	pts  []point
	next int
	n    int
}

func newRing(size int) ring { return ring{pts: make([]point, size)} }

func (r *ring) add(p point) {
	r.pts[r.next] = p
	r.next = (r.next + 1) % len(r.pts)
	r.n = min(r.n+1, len(r.pts))
}

// points returns the points, oldest first.
func (r *ring) points() []point {
	out := make([]point, 0, r.n)
	for i := r.n; i > 0; i-- {
		out = append(out, r.pts[(r.next-i+len(r.pts))%len(r.pts)])
	}
	return out
}

// followed is one swarm whose history is kept.
type followed struct {
	hour, day  ring
	last       point
	changed    time.Time // when its counts last changed
	viewed     time.Time // when someone last looked at it or approved it
	seenAt     time.Time // the walk that last saw it
	lastDayPut time.Time
}

// totals are the store's totals as of one walk.
type totals struct {
	at                 time.Time
	swarms, snatches   uint64
	seeders, leechers  uint64
	top                []Swarm // the largest by peers, largest first
	walkTook           time.Duration
	announces, scrapes float64 // per second, over the last minute
}

// history walks the store every interval, keeps the totals, and keeps the
// history of the swarms that are large, recently changed, or looked at.
type history struct {
	store    Store
	every    time.Duration
	gatherer prometheus.Gatherer
	now      func() time.Time

	mu       sync.Mutex
	swarms   map[[20]byte]*followed
	last     totals
	requests []requestSample

	walkMu sync.Mutex // one walk at a time
	// activity and walks belong to the walk (under walkMu).
	activity []activitySlot
	walks    uint32
	// learn is the walk that only fills the activity table: the first,
	// and each after the table was resized.
	learn uint32
}

// The table that tells the swarms that changed since the last walk has
// twice as many slots as there are swarms, between these bounds (16 bytes
// a slot: 4 MiB at most).
const (
	minActivitySlots = 1 << 10
	maxActivitySlots = 1 << 18
)

// activitySlot remembers one swarm's counts as of the last walk that saw
// it. The table is direct-mapped by info hash: a swarm that shares its
// slot with another, still present swarm is not watched (at a quarter of
// a million swarms or fewer, most are).
type activitySlot struct {
	key  uint64 // the info hash's first 8 bytes; 0 for an empty slot
	fp   uint32 // the counts, hashed
	walk uint32 // the walk that last saw it
}

// active reports whether sw changed since the last walk, or appeared
// since: the recently active swarms, whose history is worth keeping.
// The first walk only learns the counts.
func (h *history) active(sw *Swarm) bool {
	key := binary.LittleEndian.Uint64(sw.InfoHash[:8]) | 1
	slot := &h.activity[binary.LittleEndian.Uint64(sw.InfoHash[8:16])&uint64(len(h.activity)-1)]
	fp := uint32((uint64(sw.Seeders[0]+sw.Seeders[1])*0x9e3779b97f4a7c15 ^ uint64(sw.Leechers[0]+sw.Leechers[1])*0xc2b2ae3d27d4eb4f ^ uint64(sw.Downloads)*0x165667b19e3779f9) >> 32)
	switch {
	case slot.key == key:
		changed := slot.fp != fp
		slot.fp, slot.walk = fp, h.walks
		return changed && h.walks != h.learn
	case slot.key == 0 || slot.walk+1 < h.walks:
		// Empty, or held by a swarm the last walk did not see: this one
		// is new.
		*slot = activitySlot{key: key, fp: fp, walk: h.walks}
		return h.walks != h.learn
	}
	return false
}

// requestSample is the tracker's request counters at one time, for rates.
type requestSample struct {
	at                 time.Time
	announces, scrapes float64
}

func newHistory(store Store, every time.Duration, g prometheus.Gatherer, now func() time.Time) *history {
	return &history{store: store, every: every, gatherer: g, now: now, swarms: map[[20]byte]*followed{}}
}

// run samples until ctx is done: the request counters every few seconds,
// the store every interval.
func (h *history) run(ctx context.Context) {
	rateEvery := min(5*time.Second, h.every)
	walks := time.NewTicker(h.every)
	defer walks.Stop()
	rates := time.NewTicker(rateEvery)
	defer rates.Stop()
	h.sampleRequests()
	h.walk(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-rates.C:
			h.sampleRequests()
		case <-walks.C:
			// Walks take at most a twentieth of the time: a store whose
			// walk takes 2 s (a large Redis) is walked every 40 s at most.
			h.walkIfOlder(ctx, h.spacing())
		}
	}
}

// sampleRequests reads the frontends' request counters and keeps a
// minute of them.
func (h *history) sampleRequests() {
	if h.gatherer == nil {
		return
	}
	mfs, err := h.gatherer.Gather()
	if err != nil {
		return
	}
	s := requestSample{at: h.now()}
	for _, mf := range mfs {
		if mf.GetName() != "chihaya_frontend_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() != "action" {
					continue
				}
				switch l.GetValue() {
				case "announce":
					s.announces += m.GetCounter().GetValue()
				case "scrape":
					s.scrapes += m.GetCounter().GetValue()
				}
			}
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.requests = append(h.requests, s)
	// Keep one sample a minute old or older as the base of the rate.
	for len(h.requests) > 2 && s.at.Sub(h.requests[1].at) >= time.Minute {
		h.requests = h.requests[1:]
	}
}

// rates returns announces and scrapes per second over the last minute.
// The caller holds h.mu.
func (h *history) rates() (announces, scrapes float64) {
	if len(h.requests) < 2 {
		return 0, 0
	}
	a, b := h.requests[0], h.requests[len(h.requests)-1]
	secs := b.at.Sub(a.at).Seconds()
	if secs <= 0 {
		return 0, 0
	}
	return round2((b.announces - a.announces) / secs), round2((b.scrapes - a.scrapes) / secs)
}

func round2(x float64) float64 { return float64(int64(x*100+0.5)) / 100 }

// bySize is a min-heap of swarms by peers, for the largest.
type bySize []Swarm

func (b bySize) Len() int { return len(b) }
func (b bySize) Less(i, j int) bool {
	pi, pj := b[i].Peers(), b[j].Peers()
	if pi != pj {
		return pi < pj
	}
	return lessHash(b[j].InfoHash, b[i].InfoHash)
}
func (b bySize) Swap(i, j int) { b[i], b[j] = b[j], b[i] }
func (b *bySize) Push(x any)   { *b = append(*b, x.(Swarm)) }
func (b *bySize) Pop() any {
	old := *b
	x := old[len(old)-1]
	*b = old[:len(old)-1]
	return x
}

func lessHash(a, b [20]byte) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// walk reads every swarm once: the totals, the largest swarms, and a
// point for each followed swarm.
func (h *history) walk(ctx context.Context) { h.walkIfOlder(ctx, 0) }

// walkIfOlder walks unless a walk that ended while this one waited for
// its turn is younger than maxAge: callers that pile up behind a slow
// walk share its result.
func (h *history) walkIfOlder(ctx context.Context, maxAge time.Duration) {
	h.walkMu.Lock()
	defer h.walkMu.Unlock()
	if maxAge > 0 {
		h.mu.Lock()
		at := h.last.at
		h.mu.Unlock()
		if !at.IsZero() && h.now().Sub(at) <= maxAge {
			return
		}
	}
	begin, started := h.now(), time.Now()
	t := totals{at: begin}
	var top bySize
	var active []Swarm
	seen := map[[20]byte]Swarm{}
	h.walks++
	h.mu.Lock()
	lastSwarms := h.last.swarms
	h.mu.Unlock()
	if size := activitySize(lastSwarms); size != len(h.activity) {
		h.activity, h.learn = make([]activitySlot, size), h.walks
	}
	err := h.store.Walk(ctx, func(batch []Swarm) error {
		for i := range batch {
			if h.active(&batch[i]) && len(active) < maxFollowed {
				active = append(active, batch[i])
			}
		}
		for _, sw := range batch {
			t.swarms++
			t.snatches += uint64(sw.Downloads)
			t.seeders += uint64(sw.Seeders[0]) + uint64(sw.Seeders[1])
			t.leechers += uint64(sw.Leechers[0]) + uint64(sw.Leechers[1])
			if len(top) < topFollowed {
				heap.Push(&top, sw)
			} else if bySize([]Swarm{top[0], sw}).Less(0, 1) {
				top[0] = sw
				heap.Fix(&top, 0)
			}
		}
		h.mu.Lock()
		for _, sw := range batch {
			if _, ok := h.swarms[sw.InfoHash]; ok {
				seen[sw.InfoHash] = sw
			}
		}
		h.mu.Unlock()
		return nil
	})
	if err != nil {
		if ctx.Err() == nil {
			logrus.WithError(err).Warn("operator: walk of the store failed; the status page shows the last one")
		}
		return
	}
	t.walkTook = time.Since(started)
	t.top = make([]Swarm, len(top))
	for i := len(top) - 1; i >= 0; i-- {
		t.top[i] = heap.Pop(&top).(Swarm)
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	large := make(map[[20]byte]bool, len(t.top))
	for _, sw := range t.top {
		large[sw.InfoHash] = true
	}
	// The largest join the followed swarms, making room if need be; the
	// recently active ones join as room allows, so that on a busy tracker
	// the followed swarms do not churn with every walk.
	for _, sw := range t.top {
		if _, ok := h.swarms[sw.InfoHash]; !ok {
			if len(h.swarms) >= maxFollowed && !h.evictQuietest(large) {
				continue
			}
			h.swarms[sw.InfoHash] = h.newFollowed()
			seen[sw.InfoHash] = sw
		}
	}
	for _, sw := range active {
		if _, ok := h.swarms[sw.InfoHash]; !ok && len(h.swarms) < maxFollowed {
			h.swarms[sw.InfoHash] = h.newFollowed()
			seen[sw.InfoHash] = sw
		}
	}
	for ih, f := range h.swarms {
		sw, ok := seen[ih]
		if !ok {
			sw = Swarm{InfoHash: ih}
		}
		h.record(f, sw, begin)
		if !large[ih] && begin.Sub(f.changed) > quietAfter && begin.Sub(f.viewed) > quietAfter {
			delete(h.swarms, ih)
		}
	}
	h.last = t
}

// activitySize is the activity table's size for a store of swarms.
func activitySize(swarms uint64) int {
	n := minActivitySlots
	for uint64(n) < 2*swarms && n < maxActivitySlots {
		n *= 2
	}
	return n
}

// evictQuietest drops the followed swarm, not among large, that changed
// or was looked at least recently. The caller holds h.mu.
func (h *history) evictQuietest(large map[[20]byte]bool) bool {
	var victim [20]byte
	var last time.Time
	found := false
	for ih, f := range h.swarms {
		if large[ih] {
			continue
		}
		at := f.changed
		if f.viewed.After(at) {
			at = f.viewed
		}
		if !found || at.Before(last) {
			victim, last, found = ih, at, true
		}
	}
	if found {
		delete(h.swarms, victim)
	}
	return found
}

func (h *history) newFollowed() *followed {
	now := h.now()
	return &followed{hour: newRing(hourPoints(h.every)), day: newRing(dayPoints), changed: now, viewed: now}
}

// record adds a point for sw to f. The caller holds h.mu.
func (h *history) record(f *followed, sw Swarm, at time.Time) {
	p := point{
		unix:     at.Unix(),
		seeders:  sw.Seeders[0] + sw.Seeders[1],
		leechers: sw.Leechers[0] + sw.Leechers[1],
		snatches: sw.Downloads,
	}
	if f.hour.n == 0 || p.seeders != f.last.seeders || p.leechers != f.last.leechers || p.snatches != f.last.snatches {
		f.changed = at
	}
	f.last = p
	f.seenAt = at
	f.hour.add(p)
	if at.Sub(f.lastDayPut) >= dayStep {
		f.day.add(p)
		f.lastDayPut = at
	}
}

// follow starts keeping the history of ih (someone looks at it, or
// approved it), if there is room.
func (h *history) follow(ih [20]byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if f, ok := h.swarms[ih]; ok {
		f.viewed = h.now()
		return
	}
	if len(h.swarms) < maxFollowed {
		h.swarms[ih] = h.newFollowed()
	}
}

// series returns the hour and day points of ih, oldest first, or nil
// when it is not followed.
func (h *history) series(ih [20]byte) (hour, day []point, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f, ok := h.swarms[ih]
	if !ok {
		return nil, nil, false
	}
	return f.hour.points(), f.day.points(), true
}

// current returns the totals of the last walk, walking now when that is
// older than maxAge (or there was none).
func (h *history) current(ctx context.Context, maxAge time.Duration) totals {
	maxAge = max(maxAge, h.spacing())
	h.mu.Lock()
	t := h.last
	h.mu.Unlock()
	if t.at.IsZero() || h.now().Sub(t.at) > maxAge {
		h.walkIfOlder(ctx, maxAge)
		h.mu.Lock()
		t = h.last
		h.mu.Unlock()
	}
	h.mu.Lock()
	t.announces, t.scrapes = h.rates()
	h.mu.Unlock()
	return t
}

// walkDuty is the most of the time walks of the store may take.
const walkDuty = 20

// spacing is the shortest time between two walks: walkDuty times the
// last walk's duration.
func (h *history) spacing() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return walkDuty * h.last.walkTook
}

// followedCount returns the number of swarms whose history is kept.
func (h *history) followedCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.swarms)
}
