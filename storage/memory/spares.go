package memory

// spareSlots is how many record arrays a shard keeps for reuse.
const spareSlots = 4

// maxSpare is the largest record array a shard keeps for reuse: small
// swarms grow most often relative to their size, and a bound keeps what a
// shard holds back at spareSlots*maxSpare bytes (4 KiB).
const maxSpare = 1024

// spares are record arrays a shard's swarms gave up, when they grew or
// emptied, kept for the next swarm of the shard that needs one. A swarm
// growing from 0 to 10 peers goes through five arrays; without reuse the
// four it leaves behind are garbage that the Go heap grows by (up to
// GOGC percent of the live heap) before a collection returns them, and
// RSS keeps that growth. Reuse within a shard needs no lock of its own.
type spares [spareSlots][]byte

// get returns a spare array with a capacity in [need, want+max(want/8,
// 16)], or nil. The slack allowed matches the spacing of the allocator's
// size classes (16 bytes apart up to 128, then about an eighth), so an
// array of the class want rounds up to is taken.
func (sp *spares) get(need, want int) []byte {
	if sp == nil {
		return nil
	}
	for i, b := range sp {
		if c := cap(b); c >= need && c <= want+max(want/8, 16) {
			sp[i] = nil
			return b
		}
	}
	return nil
}

// put keeps b for reuse if it is small enough and a slot is free, or in
// place of a smaller one: larger arrays save more when reused.
func (sp *spares) put(b []byte) {
	c := cap(b)
	if sp == nil || c == 0 || c > maxSpare {
		return
	}
	j := -1
	for i := range sp {
		if sp[i] == nil {
			j = i
			break
		}
		if cap(sp[i]) < c && (j < 0 || cap(sp[i]) < cap(sp[j])) {
			j = i
		}
	}
	if j >= 0 {
		sp[j] = b[:0]
	}
}
