package memory

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"slices"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/locality"
)

// announceFlat is AnnouncePeers for a flat swarm with locality on (by
// subnet: one tier). The caller holds the shard's read lock. The answer
// follows announceLocal's rules: the own group first, leaving room for
// the reserve, then peers from outside it, each part seeders first for a
// leecher and leechers only for a seeder.
func (s *PeerStore) announceFlat(dst []bittorrent.Peer, sw *swarm, classifier *locality.Classifier, af bittorrent.AddressFamily, k []byte, a netip.Addr, seeder bool, numWant int) ([]bittorrent.Peer, storage.Counts, storage.Role) {
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
	m4, m6, _ := classifier.PrefixMasks()
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
	reserve := min(classifier.Reserve(numWant), avail-nOwn)
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
	classifier := ls.classifier
	f := &ls.fam[af]
	counts := storage.Counts{Seeders: f.nSeed, Leechers: f.n - f.nSeed, Downloads: sw.downloads}
	ck := classifier.Key(a)
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
	if found && classifier.Placed(ck, 0) {
		ownHi = ci + 1
		c := &f.cells[ci]
		own = int(c.n-c.nSeed) - selfLeech
		if !seeder {
			own += int(c.nSeed) - selfSeed
		}
	}
	total := min(numWant, avail)
	reserve := min(classifier.Reserve(numWant), avail-own)
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
	tiers := classifier.Tiers()
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
			if !classifier.Placed(ck, t) {
				continue
			}
			m := classifier.Mask(t)
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
