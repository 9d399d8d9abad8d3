package memory

import (
	"encoding/binary"
	"hash/maphash"
)

// family holds the peers of one address family of a swarm: records [0,
// nSeed) are seeders, [nSeed, n) leechers.
type family struct {
	recs  []byte
	idx   *index
	n     uint32
	nSeed uint32
}

// index maps address+port to slot+1 (0 marks an empty entry) by linear
// probing; it is kept at most half full. Its entries are 16 bits while it
// has at most 65,536 of them (a half-full table's slot+1 fits), and 32
// bits beyond: a 200-peer family's index is 1 KiB instead of 2, which at
// 10 bytes a record is 5 bytes a peer.
type index struct {
	narrow []uint16
	wide   []uint32
	mask   uint32
}

// newIndex returns an empty index of size entries, a power of two.
func newIndex(size int) *index {
	x := &index{mask: uint32(size - 1)}
	if size <= 1<<16 {
		x.narrow = make([]uint16, size)
	} else {
		x.wide = make([]uint32, size)
	}
	return x
}

func (x *index) get(e uint32) uint32 {
	if x.wide != nil {
		return x.wide[e]
	}
	return uint32(x.narrow[e])
}

func (x *index) set(e, v uint32) {
	if x.wide != nil {
		x.wide[e] = v
		return
	}
	x.narrow[e] = uint16(v)
}

func (x *index) size() int { return int(x.mask) + 1 }

// rec returns record i.
func (f *family) rec(l *layout, i int) []byte {
	off := i * l.stride
	return f.recs[off : off+l.stride : off+l.stride]
}

func (f *family) keyAt(l *layout, i int) []byte {
	off := i * l.stride
	return f.recs[off : off+l.keyLen : off+l.keyLen]
}

// find returns the slot of the record with key k, or -1.
func (f *family) find(l *layout, k []byte) int {
	if f.idx == nil {
		// Compared as integers: a string comparison of a key whose length
		// is not a constant is a call per record.
		n := int(f.n)
		if l.keyLen == 6 {
			a, port := binary.LittleEndian.Uint32(k), binary.LittleEndian.Uint16(k[4:])
			for i, off := 0, 0; i < n; i, off = i+1, off+l.stride {
				r := f.recs[off : off+6]
				if binary.LittleEndian.Uint32(r) == a && binary.LittleEndian.Uint16(r[4:]) == port {
					return i
				}
			}
			return -1
		}
		hi, lo, port := binary.LittleEndian.Uint64(k), binary.LittleEndian.Uint64(k[8:]), binary.LittleEndian.Uint16(k[16:])
		for i, off := 0, 0; i < n; i, off = i+1, off+l.stride {
			r := f.recs[off : off+18]
			if binary.LittleEndian.Uint64(r[8:]) == lo && binary.LittleEndian.Uint64(r) == hi && binary.LittleEndian.Uint16(r[16:]) == port {
				return i
			}
		}
		return -1
	}
	x := f.idx
	for e := uint32(maphash.Bytes(l.seed, k)) & x.mask; ; e = (e + 1) & x.mask {
		v := x.get(e)
		if v == 0 {
			return -1
		}
		if string(f.keyAt(l, int(v-1))) == string(k) {
			return int(v - 1)
		}
	}
}

// entry returns the index entry that points at the record with key k,
// which must be present.
func (x *index) entry(l *layout, k []byte, f *family) uint32 {
	for e := uint32(maphash.Bytes(l.seed, k)) & x.mask; ; e = (e + 1) & x.mask {
		if v := x.get(e); string(f.keyAt(l, int(v-1))) == string(k) {
			return e
		}
	}
}

func (x *index) insert(l *layout, k []byte, slot int) {
	e := uint32(maphash.Bytes(l.seed, k)) & x.mask
	for x.get(e) != 0 {
		e = (e + 1) & x.mask
	}
	x.set(e, uint32(slot)+1)
}

// add appends a record with key k as the last leecher and returns its slot;
// the caller fills in the peer ID and stamp. New record space comes from
// sp when it has some of the right size.
func (f *family) add(l *layout, k []byte, sp *spares) int {
	need := (int(f.n) + 1) * l.stride
	if need > cap(f.recs) {
		n := int(f.n)
		f.realloc(need-l.stride, need, (n+growth(n))*l.stride, sp)
	}
	f.recs = f.recs[:need]
	i := int(f.n)
	copy(f.recs[i*l.stride:], k)
	f.n++
	switch {
	case f.idx != nil && int(f.n)*2 > f.idx.size():
		f.reindex(l, f.idx.size()*2)
	case f.idx != nil:
		f.idx.insert(l, k, i)
	case f.n > indexThreshold:
		f.reindex(l, 4*indexThreshold)
	}
	return i
}

// growth returns how many records a family of n records that is full
// grows by. Large families grow by a quarter rather than double: most
// swarms are long-lived, so slack is paid for per peer, while copying is
// rare. Small ones grow by three quarters: when many swarms grow at once
// (a restarted tracker, its clients coming back) the arrays they leave
// are garbage until the next collection, and the Go heap, with RSS, grows
// by that much; a swarm growing to 10 peers leaves 2 arrays (88 bytes)
// instead of 4 (216 bytes) that quarter steps leave, for the same final
// array. The first array holds 2 records: most swarms never hold more.
func growth(n int) int {
	switch {
	case n == 0:
		return 2
	case n < 32:
		return max(3, n*3/4)
	}
	return n / 4
}

// realloc moves the first n bytes of records into new space of want bytes
// or a little more (at least need), and gives the old space to sp.
func (f *family) realloc(n, need, want int, sp *spares) {
	recs := sp.get(need, want)
	if recs == nil {
		// Appending to nil rounds the capacity up to the allocator's size
		// class: the bytes it would waste hold records instead.
		recs = append([]byte(nil), make([]byte, want)...)
	}
	recs = recs[:n]
	copy(recs, f.recs)
	sp.put(f.recs)
	f.recs = recs
}

// reindex rebuilds the index with size entries (a power of two), or drops
// it when size is 0.
func (f *family) reindex(l *layout, size int) {
	if size == 0 {
		f.idx = nil
		return
	}
	x := newIndex(size)
	for i := 0; i < int(f.n); i++ {
		x.insert(l, f.keyAt(l, i), i)
	}
	f.idx = x
}

// swap exchanges records i and j and the index entries that point at them.
func (f *family) swap(l *layout, i, j int) {
	if i == j {
		return
	}
	if f.idx != nil {
		// Both entries are found before either changes: the probe for one
		// key may pass over the other's entry.
		ei := f.idx.entry(l, f.keyAt(l, i), f)
		ej := f.idx.entry(l, f.keyAt(l, j), f)
		f.idx.set(ei, uint32(j)+1)
		f.idx.set(ej, uint32(i)+1)
	}
	var tmp [64]byte
	a, b := f.rec(l, i), f.rec(l, j)
	copy(tmp[:], a)
	copy(a, b)
	copy(b, tmp[:l.stride])
}

// toSeeder moves leecher i into the seeders and returns its new slot.
func (f *family) toSeeder(l *layout, i int) int {
	j := int(f.nSeed)
	f.swap(l, i, j)
	f.nSeed++
	return j
}

// toLeecher moves seeder i into the leechers and returns its new slot.
func (f *family) toLeecher(l *layout, i int) int {
	j := int(f.nSeed) - 1
	f.swap(l, i, j)
	f.nSeed--
	return j
}

// remove deletes record i, filling the hole from the end of its region.
func (f *family) remove(l *layout, i int) {
	if uint32(i) < f.nSeed {
		i = f.toLeecher(l, i)
	}
	last := int(f.n) - 1
	f.swap(l, i, last)
	if x := f.idx; x != nil {
		// Backward-shift deletion keeps every probe chain unbroken without
		// tombstones.
		e := x.entry(l, f.keyAt(l, last), f)
		x.set(e, 0)
		for j := (e + 1) & x.mask; x.get(j) != 0; j = (j + 1) & x.mask {
			v := x.get(j)
			home := uint32(maphash.Bytes(l.seed, f.keyAt(l, int(v-1)))) & x.mask
			// The entry may move into the hole unless its home lies
			// cyclically in (e, j].
			if (j-home)&x.mask < (j-e)&x.mask {
				continue
			}
			x.set(e, v)
			x.set(j, 0)
			e = j
		}
	}
	f.n--
	f.recs = f.recs[:int(f.n)*l.stride]
	if f.idx != nil {
		switch {
		case f.n <= indexThreshold/2:
			f.reindex(l, 0)
		case int(f.n)*8 < f.idx.size() && f.idx.size() > 4*indexThreshold:
			f.reindex(l, f.idx.size()/2)
		}
	}
}

// shrink gives back record space left by departed peers. Only collection
// calls it, so a swarm that shrinks and regrows between two collections
// does not reallocate.
func (f *family) shrink(l *layout, sp *spares) {
	switch {
	case f.n == 0:
		sp.put(f.recs)
		f.recs = nil
	case cap(f.recs) > 2*len(f.recs)+4*l.stride:
		n := int(f.n)
		f.realloc(len(f.recs), len(f.recs), (n+max(2, n/4))*l.stride, sp)
	}
}
