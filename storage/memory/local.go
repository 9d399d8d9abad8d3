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
		for ci := range old.fam[af].cells {
			sw.loc.fam[af].addAll(&s.layouts[af], cls, &old.fam[af].cells[ci].family)
		}
	}
	return sw.loc
}

// addAll adds every record of src to the cells of f, as the seeder or
// leecher it is in src.
func (f *cellFamily) addAll(l *layout, cls *locality.Classifier, src *family) {
	for i := 0; i < int(src.n); i++ {
		rec := src.rec(l, i)
		ck := cls.Key(recAddr(l, rec))
		ci := f.lowerBound(ck)
		if ci == len(f.cells) || f.cells[ci].key != ck {
			f.cells = slices.Insert(f.cells, ci, cell{key: ck})
		}
		c := &f.cells[ci]
		j := c.add(l, rec[:l.keyLen], nil)
		f.n++
		if uint32(i) < src.nSeed {
			j = c.toSeeder(l, j)
			f.nSeed++
		}
		copy(c.rec(l, j)[l.keyLen:], rec[l.keyLen:])
	}
}

// Small swarms are kept flat. With locality by subnet, on an open tracker
// where most peers are alone in their /24, a cell per peer would cost a
// cell header and an allocation per peer and a cell visit per peer taken.
// So a swarm stays in its plain families (memory.go) while each holds at
// most flatMax peers, and an announce classifies the records as it reads
// them: a shift per record, over at most flatMax of them. The swarm moves
// into cells when a family outgrows flatMax, and back when collection
// leaves it at half that. With a topology, classifying a record takes map
// lookups, so every swarm is kept in cells.

// defaultFlatMax is the flatMax of a store with locality by subnet: the
// size below which a family keeps no hash index either.
const defaultFlatMax = indexThreshold

// maxFlatMax bounds flatMax: an announce marks a flat family's records in
// a 64-bit mask.
const maxFlatMax = 64

// localize moves a flat swarm's peers into cells. The caller holds the
// shard's write lock.
func (s *PeerStore) localize(sh *shard, sw *swarm, cls *locality.Classifier) {
	sw.loc = &localSwarm{cls: cls}
	for af := range sw.loc.fam {
		f := sw.fam(bittorrent.AddressFamily(af))
		sw.loc.fam[af].addAll(&s.layouts[af], cls, f)
		sh.spares.put(f.recs)
	}
	sw.v4, sw.v6 = family{}, nil
}

// flatten moves a local swarm's peers back into its plain families when
// both have at most flatMax/2 peers. Only collection calls it, so a swarm
// near the bound does not move to and fro with each announce. The caller
// holds the shard's write lock.
func (s *PeerStore) flatten(sh *shard, sw *swarm) {
	ls := sw.loc
	if s.flatMax == 0 || ls == nil || ls.fam[0].n > uint32(s.flatMax/2) || ls.fam[1].n > uint32(s.flatMax/2) {
		return
	}
	sw.loc = nil
	for af := range ls.fam {
		if ls.fam[af].n == 0 {
			continue
		}
		l := &s.layouts[af]
		f := sw.famForPut(bittorrent.AddressFamily(af))
		for ci := range ls.fam[af].cells {
			c := &ls.fam[af].cells[ci]
			for i := 0; i < int(c.n); i++ {
				rec := c.rec(l, i)
				j := f.add(l, rec[:l.keyLen], &sh.spares)
				if uint32(i) < c.nSeed {
					j = f.toSeeder(l, j)
				}
				copy(f.rec(l, j)[l.keyLen:], rec[l.keyLen:])
			}
			sh.spares.put(c.recs)
		}
	}
}

// announceFlat is AnnouncePeers for a flat swarm with locality on (by
// subnet: one tier). The caller holds the shard's read lock. The answer
// follows announceLocal's rules: the own group first, leaving room for
// the reserve, then peers from outside it, each part seeders first for a
// leecher and leechers only for a seeder.
func (s *PeerStore) announceFlat(dst []bittorrent.Peer, sw *swarm, cls *locality.Classifier, af bittorrent.AddressFamily, k []byte, a netip.Addr, seeder bool, numWant int) ([]bittorrent.Peer, storage.Counts, storage.Role) {
	l := &s.layouts[af]
	f := sw.fam(af)
	counts := storage.Counts{Seeders: f.nSeed, Leechers: f.n - f.nSeed, Downloads: sw.downloads}
	self, role := f.findRole(l, k)
	if numWant <= 0 || f.n == 0 {
		return dst, counts, role
	}

	// Bit i of own is set when record i is in the announcer's group; the
	// candidates are the records the announcer may get.
	var own uint64
	m4, m6, _ := cls.PrefixMasks()
	if l.keyLen == 6 {
		b := a.As4()
		mine := binary.BigEndian.Uint32(b[:]) & m4
		for i, off := 0, 0; i < int(f.n); i, off = i+1, off+l.stride {
			if binary.BigEndian.Uint32(f.recs[off:])&m4 == mine {
				own |= 1 << i
			}
		}
	} else {
		b := a.As16()
		mine := binary.BigEndian.Uint64(b[:]) & m6
		for i, off := 0, 0; i < int(f.n); i, off = i+1, off+l.stride {
			if binary.BigEndian.Uint64(f.recs[off:])&m6 == mine {
				own |= 1 << i
			}
		}
	}
	seeds := uint64(1)<<f.nSeed - 1
	cand := uint64(1)<<f.n - 1
	if seeder {
		cand &^= seeds
	}
	if self >= 0 {
		cand &^= 1 << self
	}
	avail, nOwn := bits.OnesCount64(cand), bits.OnesCount64(cand&own)
	total := min(numWant, avail)
	reserve := min(cls.Reserve(numWant), avail-nOwn)
	y := min(nOwn, total-reserve)
	outside := total - y
	rng := rand.Uint64()
	for _, part := range [...]struct {
		mask uint64
		want *int
	}{{cand & own & seeds, &y}, {cand & own &^ seeds, &y}, {cand &^ own & seeds, &outside}, {cand &^ own &^ seeds, &outside}} {
		dst = f.appendMasked(l, dst, part.mask, part.want, &rng)
	}
	return dst, counts, role
}

// appendMasked appends up to *want of the records whose bits are set in
// mask, starting at a random one and going round, and lowers *want by
// the number added.
func (f *family) appendMasked(l *layout, dst []bittorrent.Peer, mask uint64, want *int, rng *uint64) []bittorrent.Peer {
	n := bits.OnesCount64(mask)
	if n == 0 || *want <= 0 {
		return dst
	}
	take := min(*want, n)
	*want -= take
	// From a random set bit upwards, then the lower ones.
	from := mask
	for range below(rng, n) {
		from &= from - 1
	}
	n0 := len(dst)
	dst = slices.Grow(dst, take)[:n0+take]
	out := dst[n0:]
	for _, m := range [2]uint64{from, mask &^ from} {
		for ; m != 0 && len(out) > 0; m &= m - 1 {
			f.fill(l, bits.TrailingZeros64(m), &out[0])
			out = out[1:]
		}
	}
	return dst
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
				// Meanwhile another collection may have dropped the swarm,
				// or finished it and moved it back to the flat layout.
				if sh.swarms[ih] != sw || sw.loc == nil {
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
	// rng is a wyrand state (below): one draw from the runtime's
	// generator per announce, then a multiply per random start.
	rng uint64
}

func (pk *picker) below(n int) int { return below(&pk.rng, n) }

// below returns a random number in [0, n) from the wyrand state *rng.
func below(rng *uint64, n int) int {
	*rng += 0xa0761d6478bd642f
	hi, lo := bits.Mul64(*rng, *rng^0xe7037ed1a0b428db)
	hi, _ = bits.Mul64(hi^lo, uint64(n))
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
	start := a
	if b-a > 1 {
		start += pk.below(b - a)
	}
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
			// Checked here, before the call: in a swarm of many small
			// cells, most have none of the role wanted.
			if c := &pk.cells[j]; seeders && c.nSeed == 0 || !seeders && c.n == c.nSeed {
				continue
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
