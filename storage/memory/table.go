package memory

import (
	"iter"

	"github.com/chihaya/chihaya/bittorrent"
)

// swarmTable is a shard's swarms by info hash: an open-addressing table
// with linear probing, in place of a Go map. A scrape reads ten swarms,
// each in a different shard, and a lookup in a Go map walks its header,
// directory, table and group before it reaches the slot: four or five
// cache lines, each likely a miss in a daemon whose caches the kernel's
// packet handling keeps evicting. Here the shard's line holds the slots'
// address, and a slot (32 bytes, two a line) holds the info hash and the
// swarm pointer: one line, then the swarm's. The slot is found by the low
// 32 bits of the keyed hash that picked the shard (PeerStore.locate), so a
// lookup hashes the info hash once, where the map hashed it again.
//
// Removal leaves a tombstone, so that nothing moves while collection walks
// the table with the lock released between batches; tombstones are
// cleared when the table is rebuilt, which an insert does when live slots
// and tombstones fill three quarters of it, and a removal when fewer than
// an eighth of the slots are live (so the table shrinks with the swarms,
// down to minTable slots). A rebuilt table is half full:
// its size is any multiple of minTable, not a power of two, so that it
// holds between 50 and 75 % live slots as a Go map holds 44 to 88 %, and
// costs per swarm what the map did (32 bytes a slot against its 33).
type swarmTable struct {
	slots []slot // a multiple of minTable long, or empty
	n     uint32 // live slots
	dead  uint32 // tombstones
}

// slot is one entry of a swarmTable. sw is nil in a free slot and
// &tombstone in a removed one.
type slot struct {
	ih bittorrent.InfoHash
	h  uint32 // the low half of the info hash's keyed hash
	sw *swarm
}

// tombstone marks a removed slot; it is never read.
var tombstone swarm

// minTable is the smallest number of slots a table holds.
const minTable = 8

// len returns the number of swarms in t.
func (t *swarmTable) len() int { return int(t.n) }

// home returns the first slot probed for hash h in a table of size
// slots: h scaled to the size, which needs no power of two.
func home(h uint32, size int) int { return int((uint64(h) * uint64(size)) >> 32) }

// get returns the swarm of ih, whose hash is h, or nil.
func (t *swarmTable) get(h uint32, ih bittorrent.InfoHash) *swarm {
	if len(t.slots) == 0 {
		return nil
	}
	for i := home(h, len(t.slots)); ; i++ {
		if i == len(t.slots) {
			i = 0
		}
		e := &t.slots[i]
		if e.sw == nil {
			return nil
		}
		if e.h == h && e.ih == ih && e.sw != &tombstone {
			return e.sw
		}
	}
}

// insert adds sw as the swarm of ih, whose hash is h; t holds no swarm of
// ih.
func (t *swarmTable) insert(h uint32, ih bittorrent.InfoHash, sw *swarm) {
	if (t.n+t.dead+1)*4 > uint32(len(t.slots))*3 {
		t.rebuild()
	}
	for i := home(h, len(t.slots)); ; i++ {
		if i == len(t.slots) {
			i = 0
		}
		e := &t.slots[i]
		if e.sw == nil || e.sw == &tombstone {
			if e.sw != nil {
				t.dead--
			}
			*e = slot{ih: ih, h: h, sw: sw}
			t.n++
			return
		}
	}
}

// remove drops the swarm of ih, whose hash is h, if t holds one.
func (t *swarmTable) remove(h uint32, ih bittorrent.InfoHash) {
	if len(t.slots) == 0 {
		return
	}
	for i := home(h, len(t.slots)); ; i++ {
		if i == len(t.slots) {
			i = 0
		}
		e := &t.slots[i]
		if e.sw == nil {
			return
		}
		if e.h == h && e.ih == ih && e.sw != &tombstone {
			// The info hash stays: a tombstone is matched by its pointer.
			e.sw = &tombstone
			t.n--
			t.dead++
			// A table whose swarms left gives its slots back once an
			// eighth of them is live: without this, a tracker that once
			// held a million swarms would keep their slots (and walk
			// them at every collection) for the few it holds now, since
			// only an insert rebuilds.
			if len(t.slots) > minTable && t.n*8 < uint32(len(t.slots)) {
				t.rebuild()
			}
			return
		}
	}
}

// rebuild moves the live slots, and room for one more, into a new array
// at most half full (one and a half times the old one when it grows),
// which drops the tombstones. The old array is left as it was:
// an iteration begun before goes on over it (see all).
func (t *swarmTable) rebuild() {
	size := (int(t.n+1)*2 + minTable - 1) / minTable * minTable
	old := t.slots
	t.slots = make([]slot, size)
	t.dead = 0
	for k := range old {
		e := &old[k]
		if e.sw == nil || e.sw == &tombstone {
			continue
		}
		i := home(e.h, size)
		for t.slots[i].sw != nil {
			if i++; i == size {
				i = 0
			}
		}
		t.slots[i] = *e
	}
}

// clear drops every swarm and the slots' array.
func (t *swarmTable) clear() { *t = swarmTable{} }

// all yields every swarm of t with its info hash. The caller holds the
// shard's lock while it calls all and between steps; the loop may remove
// the swarm it was given. A loop that releases the lock between steps (as
// collection does) may be given a swarm that was removed meanwhile, and
// must look it up again before it changes it; swarms added meanwhile may
// or may not be given.
func (t *swarmTable) all() iter.Seq2[bittorrent.InfoHash, *swarm] {
	return func(yield func(bittorrent.InfoHash, *swarm) bool) {
		slots := t.slots
		for k := range slots {
			e := &slots[k]
			if e.sw == nil || e.sw == &tombstone {
				continue
			}
			if !yield(e.ih, e.sw) {
				return
			}
		}
	}
}
