package memory

import (
	"fmt"
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
	// classifier is the one the cells were built with. A reload replaces
	// the store's classifier; the swarm is regrouped on its next update,
	// and until then reads keep using this one, so they stay consistent.
	classifier *locality.Classifier
	fam        [2]cellFamily
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
	classifier, err := locality.Reload(s.cfg.Locality)
	if err != nil {
		return fmt.Errorf("storage/memory: reload: %w", err)
	}
	if classifier != nil {
		s.classifier.Store(classifier)
	}
	return nil
}

// local returns sw's local swarm under classifier, creating it or
// regrouping it when it was built under another one. The caller holds the
// shard's write lock.
func (s *PeerStore) local(sw *swarm, classifier *locality.Classifier) *localSwarm {
	old := sw.loc
	if old != nil && old.classifier == classifier {
		return old
	}
	sw.loc = &localSwarm{classifier: classifier}
	if old == nil {
		return sw.loc
	}
	// Once per swarm per reload: O(swarm), like the collection of it.
	for af := range old.fam {
		for ci := range old.fam[af].cells {
			sw.loc.fam[af].addAll(&s.layouts[af], classifier, &old.fam[af].cells[ci].family)
		}
	}
	return sw.loc
}

// addAll adds every record of src to the cells of f, as the seeder or
// leecher it is in src.
func (f *cellFamily) addAll(l *layout, classifier *locality.Classifier, src *family) {
	for i := 0; i < int(src.n); i++ {
		rec := src.rec(l, i)
		ck := classifier.Key(recAddr(l, rec))
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
func (s *PeerStore) localize(sh *shard, sw *swarm, classifier *locality.Classifier) {
	sw.loc = &localSwarm{classifier: classifier}
	for af := range sw.loc.fam {
		f := sw.fam(bittorrent.AddressFamily(af))
		sw.loc.fam[af].addAll(&s.layouts[af], classifier, f)
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

// putLocal is put for a store with locality on. The caller holds the
// shard's write lock.
func (s *PeerStore) putLocal(sh *shard, sw *swarm, classifier *locality.Classifier, af bittorrent.AddressFamily, k []byte, p bittorrent.Peer, role storage.Role, graduate bool, stamp uint16) {
	l := &s.layouts[af]
	f := &s.local(sw, classifier).fam[af]
	ck := classifier.Key(p.AddrPort.Addr())
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
	l.setPeer(c.rec(l, i), &p.ID, stamp)
	if graduate {
		sw.downloads++
	}
}

// deleteLocal removes the peer with key k, if present. It looks the peer
// up with the classifier the swarm was built with, so it needs no regroup.
func (s *PeerStore) deleteLocal(sh *shard, sw *swarm, af bittorrent.AddressFamily, k []byte, a netip.Addr) {
	l := &s.layouts[af]
	f := &sw.loc.fam[af]
	if ci, _, i := f.locate(l, sw.loc.classifier.Key(a), k); i >= 0 {
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
func (s *PeerStore) collectLocal(sh *shard, ih bittorrent.InfoHash, sw *swarm, cut cutoff, budget, removed *int) bool {
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
				if !s.holds(sh, ih, sw) || sw.loc == nil {
					return false
				}
				continue
			}
			*budget--
			if cut.stale(l.stamp(c.rec(l, pos))) {
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
