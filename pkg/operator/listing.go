package operator

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"slices"
	"sync"
	"time"
)

// A walk through the sorted torrent list is served from a snapshot of the
// ranking taken by its first page, so that later pages neither repeat nor
// skip a torrent however the swarms change meanwhile. The snapshots are
// bounded in number and age.
const (
	// maxListings is how many walks can be under way at once; a new walk
	// beyond it ends the least recently used one.
	maxListings = 4
	// listingTTL ends a walk whose next page is not asked for in time.
	listingTTL = 10 * time.Minute
	// entryBytes is the size of one torrent in a snapshot.
	entryBytes = 32
)

// ListingBytes is the most memory the walks take, for a store of swarms.
func ListingBytes(swarms int) int { return maxListings * swarms * entryBytes }

// sortKey is what the torrent list is ordered by, largest first.
type sortKey uint8

const (
	sortPeers sortKey = iota
	sortSeeders
	sortLeechers
	sortSnatches
)

var sortNames = []string{"peers", "seeders", "leechers", "snatches"}

func parseSort(s string) (sortKey, bool) {
	for i, n := range sortNames {
		if s == n {
			return sortKey(i), true
		}
	}
	return 0, false
}

// entry is one torrent in a snapshot.
type entry struct {
	ih                          [20]byte
	seeders, leechers, snatches uint32
}

func (e *entry) value(k sortKey) uint64 {
	switch k {
	case sortSeeders:
		return uint64(e.seeders)
	case sortLeechers:
		return uint64(e.leechers)
	case sortSnatches:
		return uint64(e.snatches)
	}
	return uint64(e.seeders) + uint64(e.leechers)
}

type listing struct {
	id      [8]byte
	sort    sortKey
	entries []entry
	used    time.Time
}

type listings struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[[8]byte]*listing
	// building is held by the first page being taken: one walk and copy
	// of the whole store at a time, so that the memory the walks take is
	// the kept ones' and one more, however many ask at once.
	building chan struct{}
}

func newListings(now func() time.Time) *listings {
	return &listings{now: now, m: map[[8]byte]*listing{}, building: make(chan struct{}, 1)}
}

// cursor is where a walk stands: which snapshot, the offset of the next
// torrent, and the sort (so that a cursor is not used with another).
type cursor struct {
	id     [8]byte
	offset uint32
	sort   sortKey
}

func (c cursor) String() string {
	var b [13]byte
	copy(b[:8], c.id[:])
	binary.BigEndian.PutUint32(b[8:12], c.offset)
	b[12] = byte(c.sort)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

var errBadCursor = errors.New("malformed cursor")

func parseCursor(s string) (cursor, error) {
	if len(s) != 18 {
		return cursor{}, errBadCursor
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != 13 || int(b[12]) >= len(sortNames) {
		return cursor{}, errBadCursor
	}
	var c cursor
	copy(c.id[:], b[:8])
	c.offset = binary.BigEndian.Uint32(b[8:12])
	c.sort = sortKey(b[12])
	return c, nil
}

// errExpired is a well-formed cursor whose walk is no longer kept.
var errExpired = errors.New("expired or unknown: start the walk again without cursor")

// first takes the snapshot of a new walk and returns its first page, and
// the cursor of the next one if there is more.
func (ls *listings) first(ctx context.Context, store Store, k sortKey, limit int) ([]entry, string, error) {
	select {
	case ls.building <- struct{}{}:
	case <-ctx.Done():
		return nil, "", ctx.Err()
	}
	defer func() { <-ls.building }()
	var all []entry
	err := store.Walk(ctx, func(batch []Swarm) error {
		for i := range batch {
			sw := &batch[i]
			all = append(all, entry{ih: sw.InfoHash, seeders: sw.Seeders[0] + sw.Seeders[1], leechers: sw.Leechers[0] + sw.Leechers[1], snatches: sw.Downloads})
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	slices.SortFunc(all, func(a, b entry) int {
		va, vb := a.value(k), b.value(k)
		switch {
		case va > vb:
			return -1
		case va < vb:
			return 1
		case lessHash(a.ih, b.ih):
			return -1
		case a.ih == b.ih:
			return 0
		}
		return 1
	})
	if len(all) <= limit {
		return all, "", nil
	}
	l := &listing{sort: k, entries: all, used: ls.now()}
	if _, err := rand.Read(l.id[:]); err != nil {
		return nil, "", err
	}
	ls.mu.Lock()
	ls.expire()
	if len(ls.m) >= maxListings {
		evictOldest(ls.m, func(l *listing) time.Time { return l.used })
	}
	ls.m[l.id] = l
	ls.mu.Unlock()
	return all[:limit], cursor{id: l.id, offset: uint32(limit), sort: k}.String(), nil
}

// next returns the page at c.
func (ls *listings) next(c cursor, limit int) ([]entry, string, error) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.expire()
	l, ok := ls.m[c.id]
	if !ok || int(c.offset) > len(l.entries) {
		return nil, "", errExpired
	}
	l.used = ls.now()
	end := min(len(l.entries), int(c.offset)+limit)
	page := slices.Clone(l.entries[c.offset:end])
	if end == len(l.entries) {
		return page, "", nil
	}
	return page, cursor{id: l.id, offset: uint32(end), sort: l.sort}.String(), nil
}

// expire drops the walks not used for listingTTL. The caller holds ls.mu.
func (ls *listings) expire() {
	now := ls.now()
	for id, l := range ls.m {
		if now.Sub(l.used) > listingTTL {
			delete(ls.m, id)
		}
	}
}
