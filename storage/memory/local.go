package memory

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"slices"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/locality"
)

// Locality-aware swarms. With locality on, each family of a swarm keeps
// its peers in cells, one per locality cell key (the announcer's rack, or
// its rack-in-zone with a topology), sorted by key. A cell is a family of
// its own (records, seeders first, with its own index when large), so a
// peer's cell follows from its address, every update stays O(1), and the
// peers of one group at any tier are a contiguous run of cells: an
// announce walks only the cells it takes peers from.

// localSwarm holds a swarm's peers when locality is on.
type localSwarm struct {
	// cls is the classifier the cells were built with. A reload replaces
	// the store's classifier; the swarm is regrouped on its next update,
	// and until then reads keep using this one, so they stay consistent.
	cls *locality.Classifier
	fam [2]cellFamily
}

// cellFamily is one address family of a local swarm.
type cellFamily struct {
	cells    []cell // sorted by key; never an empty one
	n, nSeed uint32 // totals over the cells
}

type cell struct {
	key uint64
	family
}

// lowerBound returns the first cell whose key is >= key.
func (cf *cellFamily) lowerBound(key uint64) int {
	lo, hi := 0, len(cf.cells)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if cf.cells[m].key < key {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// upperBound returns the first cell whose key is > key.
func (cf *cellFamily) upperBound(key uint64) int {
	lo, hi := 0, len(cf.cells)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if cf.cells[m].key <= key {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// locate returns the index of the cell with key ck (or where it would be)
// and the slot of the record with key k in it, or -1.
func (cf *cellFamily) locate(l *layout, ck uint64, k []byte) (ci int, found bool, i int) {
	ci = cf.lowerBound(ck)
	if ci < len(cf.cells) && cf.cells[ci].key == ck {
		return ci, true, cf.cells[ci].find(l, k)
	}
	return ci, false, -1
}

// recAddr returns the address of a record's key.
func recAddr(l *layout, rec []byte) netip.Addr {
	if l.keyLen == 6 {
		return netip.AddrFrom4([4]byte(rec[:4]))
	}
	return netip.AddrFrom16([16]byte(rec[:16]))
}

// The daemon calls Reload on SIGUSR1 and SIGHUP when a store has it.
var _ storage.Reloader = (*PeerStore)(nil)

// Reload reads the locality topology file again; swarms are regrouped as
// they are next updated. Without locality, or with prefix grouping, there
// is nothing to read and Reload does nothing. A file that does not load
// leaves the running topology in place.
func (s *PeerStore) Reload() error {
	lc := s.cfg.Locality
	if !lc.Enabled || lc.TopologyFile == "" {
		return nil
	}
	cls, err := locality.Load(lc)
	if err != nil {
		return fmt.Errorf("storage/memory: reload: %w", err)
	}
	s.cls.Store(cls)
	return nil
}

// local returns sw's local swarm under cls, creating it or regrouping it
// when it was built under another classifier. The caller holds the shard's
// write lock.
func (s *PeerStore) local(sw *swarm, cls *locality.Classifier) *localSwarm {
	old := sw.loc
	if old != nil && old.cls == cls {
		return old
	}
	sw.loc = &localSwarm{cls: cls}
	if old == nil {
		return sw.loc
	}
	// Once per swarm per reload: O(swarm), like the collection of it.
	for af := range old.fam {
		l := &s.layouts[af]
		nf := &sw.loc.fam[af]
		for ci := range old.fam[af].cells {
			c := &old.fam[af].cells[ci]
			for i := 0; i < int(c.n); i++ {
				rec := c.rec(l, i)
				ck := cls.Key(recAddr(l, rec))
				ni := nf.lowerBound(ck)
				if ni == len(nf.cells) || nf.cells[ni].key != ck {
					nf.cells = slices.Insert(nf.cells, ni, cell{key: ck})
				}
				nc := &nf.cells[ni]
				j := nc.add(l, rec[:l.keyLen], nil)
				nf.n++
				if uint32(i) < c.nSeed {
					j = nc.toSeeder(l, j)
					nf.nSeed++
				}
				copy(nc.rec(l, j)[l.keyLen:], rec[l.keyLen:])
			}
		}
	}
	return sw.loc
}

// putLocal is put for a store with locality on. The caller holds the
// shard's write lock.
func (s *PeerStore) putLocal(sh *shard, sw *swarm, cls *locality.Classifier, af bittorrent.AddressFamily, k []byte, p bittorrent.Peer, role storage.Role, graduate bool, stamp uint32) {
	l := &s.layouts[af]
	f := &s.local(sw, cls).fam[af]
	ck := cls.Key(p.AddrPort.Addr())
	ci, found, i := f.locate(l, ck, k)
	was := storage.Absent
	if i < 0 {
		if f.n == 0 {
			sh.nSwarms[af]++
		}
		if !found {
			// Room for exactly one record: with locality by subnet on an
			// open tracker most cells hold one peer.
			f.cells = slices.Insert(f.cells, ci, cell{key: ck, family: family{recs: make([]byte, 0, l.stride)}})
		}
		i = f.cells[ci].add(l, k, &sh.spares)
		f.n++
		sh.leechers[af]++
	} else if uint32(i) < f.cells[ci].nSeed {
		was = storage.Seeder
	} else {
		was = storage.Leecher
	}
	c := &f.cells[ci]
	switch {
	case role == storage.Seeder && was != storage.Seeder:
		i = c.toSeeder(l, i)
		f.nSeed++
		sh.leechers[af]--
		sh.seeders[af]++
	case role == storage.Leecher && was == storage.Seeder:
		i = c.toLeecher(l, i)
		f.nSeed--
		sh.seeders[af]--
		sh.leechers[af]++
	}
	rec := c.rec(l, i)
	copy(rec[l.keyLen:], p.ID[:])
	binary.LittleEndian.PutUint32(rec[l.keyLen+idLen:], stamp)
	if graduate {
		sw.downloads++
	}
}

// deleteLocal removes the peer with key k, if present. It looks the peer
// up with the classifier the swarm was built with, so it needs no regroup.
func (s *PeerStore) deleteLocal(sh *shard, sw *swarm, af bittorrent.AddressFamily, k []byte, a netip.Addr) {
	l := &s.layouts[af]
	f := &sw.loc.fam[af]
	if ci, _, i := f.locate(l, sw.loc.cls.Key(a), k); i >= 0 {
		sh.removeLocal(l, sw, af, ci, i)
	}
}

// removeLocal removes record i of cell ci, keeping the totals, and drops
// the cell once it is empty. The caller holds the shard's write lock.
func (sh *shard) removeLocal(l *layout, sw *swarm, af bittorrent.AddressFamily, ci, i int) {
	f := &sw.loc.fam[af]
	c := &f.cells[ci]
	if uint32(i) < c.nSeed {
		sh.seeders[af]--
		f.nSeed--
	} else {
		sh.leechers[af]--
	}
	c.remove(l, i)
	f.n--
	if c.n == 0 {
		sh.spares.put(c.recs)
		f.cells = slices.Delete(f.cells, ci, ci+1)
	}
	if f.n == 0 {
		sh.nSwarms[af]--
		f.cells = nil
	}
}

// collectLocal removes the stale peers of a local swarm, releasing the
// shard's lock every gcBatch records. It returns false if the swarm was
// dropped meanwhile. After a release the cells may have moved; positions
// are re-checked, and a peer skipped is collected next time.
func (s *PeerStore) collectLocal(sh *shard, ih bittorrent.InfoHash, sw *swarm, cut uint32, budget, removed *int) bool {
	for af := range sw.loc.fam {
		l := &s.layouts[af]
		ci, pos := 0, 0
		for {
			f := &sw.loc.fam[af]
			if ci >= len(f.cells) {
				break
			}
			c := &f.cells[ci]
			if pos >= int(c.n) {
				c.shrink(l, &sh.spares)
				ci, pos = ci+1, 0
				continue
			}
			if *budget <= 0 {
				sh.mu.Unlock()
				sh.mu.Lock()
				*budget = gcBatch
				if sh.swarms[ih] != sw {
					return false
				}
				continue
			}
			*budget--
			if binary.LittleEndian.Uint32(c.rec(l, pos)[l.keyLen+idLen:]) < cut {
				// The record swapped into pos, or the next cell when this
				// one empties, has not been examined yet.
				last := c.n == 1
				sh.removeLocal(l, sw, bittorrent.AddressFamily(af), ci, pos)
				*removed++
				if last {
					pos = 0
				}
				continue
			}
			pos++
		}
	}
	return true
}

// announceLocal is AnnouncePeers for a local swarm. The caller holds the
// shard's read lock. The answer is filled in this order, each part
// seeders first when the announcer is a leecher and leechers only when it
// is a seeder:
//
//  1. the announcer's own group (tier 0), leaving room for
//  2. the reserve, min_outside_share of numWant, drawn from anywhere
//     outside the own group, so that no group is cut off from the swarm;
//  3. when the own group runs short, the rest from the nearest tiers out.
//
// Each part walks a contiguous (cyclic) run of cells from a random cell,
// and each cell from a random record, so the cost is that of the peers
// taken plus O(log cells) to find the runs.
func (s *PeerStore) announceLocal(dst []bittorrent.Peer, sw *swarm, af bittorrent.AddressFamily, k []byte, a netip.Addr, seeder bool, numWant int) ([]bittorrent.Peer, storage.Counts, storage.Role) {
	l := &s.layouts[af]
	ls := sw.loc
	cls := ls.cls
	f := &ls.fam[af]
	counts := storage.Counts{Seeders: f.nSeed, Leechers: f.n - f.nSeed, Downloads: sw.downloads}
	ck := cls.Key(a)
	ci, found, self := f.locate(l, ck, k)
	role := storage.Absent
	selfSeed, selfLeech := 0, 0
	if self >= 0 {
		if uint32(self) < f.cells[ci].nSeed {
			role, selfSeed = storage.Seeder, 1
		} else {
			role, selfLeech = storage.Leecher, 1
		}
	}
	if numWant <= 0 {
		return dst, counts, role
	}

	// The own group is the announcer's cell, when it is in a group at
	// tier 0; otherwise it is empty, at the place the cell would be.
	ownLo, ownHi := ci, ci
	avail, own := int(f.n-f.nSeed)-selfLeech, 0
	if !seeder {
		avail += int(f.nSeed) - selfSeed
	}
	if found && cls.Placed(ck, 0) {
		ownHi = ci + 1
		c := &f.cells[ci]
		own = int(c.n-c.nSeed) - selfLeech
		if !seeder {
			own += int(c.nSeed) - selfSeed
		}
	}
	total := min(numWant, avail)
	reserve := min(cls.Reserve(numWant), avail-own)
	y := min(own, total-reserve)
	pk := picker{l: l, cells: f.cells, selfCell: -1, self: -1, seeder: seeder, rng: rand.Uint64()}
	if self >= 0 {
		pk.selfCell, pk.self = ci, self
	}
	if y > 0 {
		dst = pk.cell(dst, ci, !seeder, &y, 0, 0)
		dst = pk.cell(dst, ci, false, &y, 0, 0)
	}
	outside := total - min(own, total-reserve)
	if outside <= 0 {
		return dst, counts, role
	}
	tiers := cls.Tiers()
	if tiers == 1 || outside == reserve {
		// One tier: the reserve's set and the rest's are the same.
		return pk.walk(dst, 0, len(f.cells), ownLo, ownHi, &outside, 0, 0), counts, role
	}
	from := len(dst)
	want := reserve
	dst = pk.walk(dst, 0, len(f.cells), ownLo, ownHi, &want, 0, 0)
	to := len(dst)
	want = outside - (to - from)
	holeLo, holeHi := ownLo, ownHi
	for t := 1; t <= tiers && want > 0; t++ {
		lo, hi := 0, len(f.cells)
		if t < tiers {
			if !cls.Placed(ck, t) {
				continue
			}
			m := cls.Mask(t)
			lo, hi = f.lowerBound(ck&m), f.upperBound(ck|^m)
		}
		dst = pk.walk(dst, lo, hi, holeLo, holeHi, &want, from, to)
		holeLo, holeHi = lo, hi
	}
	return dst, counts, role
}

// picker takes peers from runs of cells for one announce.
type picker struct {
	l        *layout
	cells    []cell
	selfCell int
	self     int
	seeder   bool // the announcer: then only leechers are taken
	// rng is a wyrand state: one draw from the runtime's generator per
	// announce, then a multiply per random start.
	rng uint64
}

// below returns a random number in [0, n).
func (pk *picker) below(n int) int {
	pk.rng += 0xa0761d6478bd642f
	hi, lo := bits.Mul64(pk.rng, pk.rng^0xe7037ed1a0b428db)
	r := hi ^ lo
	hi, _ = bits.Mul64(r, uint64(n))
	return int(hi)
}

// cell appends up to *want of cell j's seeders (or leechers), from a
// random record, skipping the announcer and the peers in dst[from:to].
func (pk *picker) cell(dst []bittorrent.Peer, j int, seeders bool, want *int, from, to int) []bittorrent.Peer {
	c := &pk.cells[j]
	a, b := int(c.nSeed), int(c.n)
	if seeders {
		a, b = 0, int(c.nSeed)
	}
	avail := b - a
	self := -1
	if j == pk.selfCell {
		self = pk.self
		if self >= a && self < b {
			avail--
		}
	}
	if avail <= 0 || *want <= 0 {
		return dst
	}
	start := a + pk.below(b-a)
	if to > from {
		return c.appendPeersExcept(pk.l, dst, a, b, self, want, from, to, start)
	}
	return c.appendPeersFrom(pk.l, dst, a, b, self, want, avail, start)
}

// walk appends up to *want peers from the cells [lo, hi) less the hole
// [holeLo, holeHi) inside it, seeders first unless the announcer is a
// seeder, skipping the announcer and any peer already in dst[from:to]. It
// starts at a random cell of the run and goes round it once.
func (pk *picker) walk(dst []bittorrent.Peer, lo, hi, holeLo, holeHi int, want *int, from, to int) []bittorrent.Peer {
	size := (hi - lo) - (holeHi - holeLo)
	if size <= 0 {
		return dst
	}
	for pass := 0; pass < 2 && *want > 0; pass++ {
		seeders := pass == 0
		if seeders && pk.seeder {
			continue
		}
		start := pk.below(size)
		for step := 0; step < size && *want > 0; step++ {
			p := start + step
			if p >= size {
				p -= size
			}
			j := holeHi + p
			if j >= hi {
				j = lo + (j - hi)
			}
			dst = pk.cell(dst, j, seeders, want, from, to)
		}
	}
	return dst
}

// appendPeersExcept is appendPeers that also skips the peers already in
// dst[from:to] (the reserve, when the nearest tiers are walked after it).
func (f *family) appendPeersExcept(l *layout, dst []bittorrent.Peer, lo, hi, self int, want *int, from, to, j int) []bittorrent.Peer {
	m := hi - lo
	for k := 0; k < m && *want > 0; k++ {
		if j != self {
			var p bittorrent.Peer
			f.fill(l, j, &p)
			dup := false
			for _, q := range dst[from:to] {
				if q.AddrPort == p.AddrPort {
					dup = true
					break
				}
			}
			if !dup {
				dst = append(dst, p)
				*want--
			}
		}
		if j++; j == hi {
			j = lo
		}
	}
	return dst
}
