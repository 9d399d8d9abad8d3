package memory

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"math"

	"github.com/chihaya/chihaya/bittorrent"
)

// Restoring a checked block of a snapshot (the format is in snapshot.go).

// restoreBlock adds the swarms of one checked payload, whose records hold
// peer IDs of idLen bytes, to the store.
func (s *PeerStore) restoreBlock(payload []byte, nSwarms uint32, idLen int, cut, now uint32, got *copyCounts, rc *restoreCounts) error {
	p := payloadReader{b: payload}
	classifier := s.classifier.Load()
	for i := uint32(0); i < nSwarms; i++ {
		ihb := p.bytes(20)
		if p.err != nil {
			return fmt.Errorf("swarm %d: %w", i+1, p.err)
		}
		ih := bittorrent.InfoHash(ihb)
		downloads := uint32(p.uvarint(math.MaxUint32))
		var counts [2][2]uint64 // [af]{seeders, leechers}
		for af := range counts {
			// A family holds at most what a block can: no count can
			// exceed the payload's length.
			counts[af][0] = p.uvarint(uint64(len(payload)))
			counts[af][1] = p.uvarint(uint64(len(payload)))
		}
		if p.err != nil {
			return fmt.Errorf("swarm %d: %w", i+1, p.err)
		}
		sh, h := s.locate(ih)
		if sh.swarms.get(h, ih) != nil {
			return fmt.Errorf("swarm %x appears twice", ih[:])
		}
		sw := &swarm{downloads: downloads}
		for af := range counts {
			l := &s.layouts[af]
			src := recordShape{keyLen: l.keyLen, idLen: idLen}
			nSeed, nLeech := counts[af][0], counts[af][1]
			recs := p.bytes((nSeed + nLeech) * uint64(src.stride()))
			if p.err != nil {
				return fmt.Errorf("swarm %x: %w", ih[:], p.err)
			}
			got.peers[af] += nSeed + nLeech
			if nSeed+nLeech == 0 {
				continue
			}
			f := sw.famForPut(bittorrent.AddressFamily(af))
			if err := f.restore(l, s.stamps, src, recs, int(nSeed), cut, now); err != nil {
				return fmt.Errorf("swarm %x: %w", ih[:], err)
			}
			rc.expired += nSeed + nLeech - uint64(f.n)
			rc.peers += uint64(f.n)
			if f.n > 0 {
				sh.nSwarms[af]++
			}
			sh.seeders[af] += uint64(f.nSeed)
			sh.leechers[af] += uint64(f.n - f.nSeed)
		}
		got.swarms++
		if sw.v6 != nil && sw.v6.n == 0 {
			sw.v6 = nil
		}
		if sw.empty() {
			continue
		}
		if classifier != nil && (sw.v4.n > 0 || sw.v6 != nil) &&
			(s.flatMax == 0 || sw.v4.n > uint32(s.flatMax) || sw.v6 != nil && sw.v6.n > uint32(s.flatMax)) {
			s.localize(sh, sw, classifier)
		}
		sh.swarms.insert(h, ih, sw)
		rc.swarms++
	}
	if len(p.b) != 0 {
		return fmt.Errorf("%d bytes after the last swarm", len(p.b))
	}
	return nil
}

// recordShape is the shape of a file's records: the store's layout, with
// or without peer IDs.
type recordShape struct{ keyLen, idLen int }

func (r recordShape) stride() int { return r.keyLen + r.idLen + fileStampLen }

// restore fills an empty family from recs, records of shape src with the
// first nSeed seeders, dropping those last seen before cut. A peer listed
// twice is an error: the store keeps each address and port once.
func (f *family) restore(l *layout, st stamper, src recordShape, recs []byte, nSeed int, cut, now uint32) error {
	stride, stampOff := src.stride(), src.keyLen+src.idLen
	total := len(recs) / stride
	kept := 0
	for i := 0; i < total; i++ {
		if binary.LittleEndian.Uint32(recs[i*stride+stampOff:]) >= cut {
			kept++
		}
	}
	if kept == 0 {
		return nil
	}
	// Appending to nil rounds the capacity up to the allocator's size
	// class, as add does.
	f.recs = append([]byte(nil), make([]byte, kept*l.stride)...)[:0]
	for i := 0; i < total; i++ {
		rec := recs[i*stride : (i+1)*stride]
		stamp := binary.LittleEndian.Uint32(rec[stampOff:])
		if stamp < cut {
			continue
		}
		// A clock that went back: the peer expires as if it had
		// announced now, not never. One older than stamps tell apart
		// (only with a cut below peer_lifetime) is as old as they do.
		stamp = max(min(stamp, now), st.oldest(now))
		f.recs = append(f.recs, rec[:l.keyLen]...)
		var id bittorrent.PeerID
		copy(id[:], rec[src.keyLen:stampOff])
		f.recs = f.recs[:len(f.recs)+l.stride-l.keyLen]
		l.setPeer(f.recs[len(f.recs)-l.stride:], &id, st.fromUnix(int64(stamp)))
		if i < nSeed {
			f.nSeed++
		}
		f.n++
	}
	if f.n > indexThreshold {
		size := 4 * indexThreshold
		for size < 2*int(f.n) {
			size *= 2
		}
		x := newIndex(size)
		for i := 0; i < int(f.n); i++ {
			if !x.insertNew(l, f, i) {
				return fmt.Errorf("peer %s listed twice", recAddr(l, f.rec(l, i)))
			}
		}
		f.idx = x
		return nil
	}
	for i := 1; i < int(f.n); i++ {
		if f.find(l, f.keyAt(l, i)) < i {
			return fmt.Errorf("peer %s listed twice", recAddr(l, f.rec(l, i)))
		}
	}
	return nil
}

// insertNew indexes record slot of f, unless its key is indexed already.
func (x *index) insertNew(l *layout, f *family, slot int) bool {
	k := f.keyAt(l, slot)
	e := uint32(maphash.Bytes(l.seed, k)) & x.mask
	for x.get(e) != 0 {
		if string(f.keyAt(l, int(x.get(e)-1))) == string(k) {
			return false
		}
		e = (e + 1) & x.mask
	}
	x.set(e, uint32(slot)+1)
	return true
}
