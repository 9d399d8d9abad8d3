package memory

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"slices"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
)

// AnnouncePeers appends up to numWant peers for the announcer to dst. It
// starts each walk at a random record and wraps around, so its cost is
// O(numWant) whatever the swarm's size.
func (s *PeerStore) AnnouncePeers(dst []bittorrent.Peer, ih bittorrent.InfoHash, seeder bool, numWant int, announcer bittorrent.Peer) ([]bittorrent.Peer, storage.Counts, storage.Role, error) {
	own, other := s, s.web.Load()
	if announcer.Kind != bittorrent.NativePeer {
		own, other = other, s
	}
	var (
		counts storage.Counts
		role   storage.Role
		err    error
	)
	if own != nil {
		dst, counts, role, err = own.announcePeers(dst, ih, seeder, numWant, announcer)
	} else if !announcer.AddrPort.IsValid() {
		storage.ObserveError("announce")
		err = errInvalidAddr
	}
	if err == nil && other != nil {
		c, _ := other.scrapeSwarm(ih, announcer.AddressFamily())
		counts = counts.Add(c)
	}
	return dst, counts, role, err
}

// announcePeers is AnnouncePeers within the store of the announcer's kind.
func (s *PeerStore) announcePeers(dst []bittorrent.Peer, ih bittorrent.InfoHash, seeder bool, numWant int, announcer bittorrent.Peer) ([]bittorrent.Peer, storage.Counts, storage.Role, error) {
	key, af, ok := peerKey(announcer)
	if !ok {
		storage.ObserveError("announce")
		return dst, storage.Counts{}, storage.Absent, errInvalidAddr
	}
	sh, h := s.locate(ih)

	sh.mu.RLock()
	defer sh.mu.RUnlock()
	sw := sh.swarms.get(h, ih)
	if sw == nil {
		return dst, storage.Counts{}, storage.Absent, nil
	}
	dst, counts, role, _ := s.answer(dst, nil, sw, af, key[:s.layouts[af].keyLen], announcer.AddrPort.Addr(), seeder, numWant)
	return dst, counts, role, nil
}

// answer appends the peers of sw for an announcer with key k and address
// a, and returns sw's counts, the announcer's role and, in a swarm
// without locality, its slot in family af (-1: absent; lookUp with
// locality). With compact set, a swarm without locality appends its peers
// to *compact in their compact form instead of to dst. The caller holds
// the shard's lock.
func (s *PeerStore) answer(dst []bittorrent.Peer, compact *[]byte, sw *swarm, af bittorrent.AddressFamily, k []byte, a netip.Addr, seeder bool, numWant int) ([]bittorrent.Peer, storage.Counts, storage.Role, int) {
	if sw.loc != nil {
		dst, counts, role := s.announceLocal(dst, sw, af, k, a, seeder, numWant)
		return dst, counts, role, lookUp
	}
	if classifier := s.classifier.Load(); classifier != nil {
		dst, counts, role := s.announceFlat(dst, sw, classifier, af, k, a, seeder, numWant)
		return dst, counts, role, lookUp
	}
	l := &s.layouts[af]
	f := sw.fam(af)
	counts := storage.Counts{Seeders: f.nSeed, Leechers: f.n - f.nSeed, Downloads: sw.downloads}
	self, role := f.findRole(l, k)
	if compact != nil {
		if numWant > 0 && !seeder {
			*compact = f.appendCompact(l, *compact, 0, int(f.nSeed), self, &numWant)
		}
		if numWant > 0 {
			*compact = f.appendCompact(l, *compact, int(f.nSeed), int(f.n), self, &numWant)
		}
		return dst, counts, role, self
	}
	if numWant > 0 && !seeder {
		dst = f.appendPeers(l, dst, 0, int(f.nSeed), self, &numWant)
	}
	if numWant > 0 {
		dst = f.appendPeers(l, dst, int(f.nSeed), int(f.n), self, &numWant)
	}
	return dst, counts, role, self
}

var (
	_ storage.Announcer        = (*PeerStore)(nil)
	_ storage.CompactAnnouncer = (*PeerStore)(nil)
)

// Announce answers an announce as AnnouncePeers does and applies its
// update u (storage.Announcer) under one hold of the swarm's shard lock:
// the swarm is looked up once and, without locality, the announcer's
// record found once, where the logic's two steps (AnnouncePeers, then
// PutSeeder, PutLeecher, GraduateLeecher or DeletePeer after the reply)
// take the lock twice and look both up twice. The counts and the role are
// those from before the update.
func (s *PeerStore) Announce(dst []bittorrent.Peer, ih bittorrent.InfoHash, u storage.Update, numWant int, announcer bittorrent.Peer) ([]bittorrent.Peer, storage.Counts, storage.Role, error) {
	return s.announce(dst, nil, ih, u, numWant, announcer)
}

// AnnounceCompact is Announce, except that the peers of a swarm without
// locality are appended to compact in their compact form, which is how
// the records hold their address and port (storage.CompactAnnouncer).
func (s *PeerStore) AnnounceCompact(dst []bittorrent.Peer, compact []byte, ih bittorrent.InfoHash, u storage.Update, numWant int, announcer bittorrent.Peer) ([]bittorrent.Peer, []byte, storage.Counts, storage.Role, error) {
	dst, counts, role, err := s.announce(dst, &compact, ih, u, numWant, announcer)
	return dst, compact, counts, role, err
}

// announce is Announce, and AnnounceCompact with compact set.
func (s *PeerStore) announce(dst []bittorrent.Peer, compact *[]byte, ih bittorrent.InfoHash, u storage.Update, numWant int, announcer bittorrent.Peer) ([]bittorrent.Peer, storage.Counts, storage.Role, error) {
	own, other := s, s.web.Load()
	if announcer.Kind != s.layouts[0].kind {
		own, other = s.ofKind(announcer.Kind, u != storage.UpdateDelete), s
	}
	key, af, ok := peerKey(announcer)
	if !ok {
		storage.ObserveError("announce")
		return dst, storage.Counts{}, storage.Absent, errInvalidAddr
	}
	var counts storage.Counts
	role := storage.Absent
	if own != nil {
		dst, counts, role = own.announceUpdate(dst, compact, ih, u, numWant, announcer, af, key[:own.layouts[af].keyLen])
	}
	if other != nil {
		c, _ := other.scrapeSwarm(ih, af)
		counts = counts.Add(c)
	}
	return dst, counts, role, nil
}

// announceUpdate is Announce within the store of the announcer's kind.
func (s *PeerStore) announceUpdate(dst []bittorrent.Peer, compact *[]byte, ih bittorrent.InfoHash, u storage.Update, numWant int, announcer bittorrent.Peer, af bittorrent.AddressFamily, k []byte) ([]bittorrent.Peer, storage.Counts, storage.Role) {
	stamp := s.stamps.now()
	sh, h := s.locate(ih)
	a := announcer.AddrPort.Addr()

	sh.mu.Lock()
	defer sh.mu.Unlock()
	var counts storage.Counts
	role, self := storage.Absent, -1
	sw := sh.swarms.get(h, ih)
	if sw != nil {
		dst, counts, role, self = s.answer(dst, compact, sw, af, k, a, u.Seeder(), numWant)
	}
	switch {
	case u == storage.UpdateDelete && sw != nil:
		s.deleteIn(sh, h, ih, sw, af, k, a, self)
	case u != storage.UpdateDelete:
		if sw == nil {
			sw = &swarm{}
			sh.swarms.insert(h, ih, sw)
		}
		r := storage.Leecher
		if u.Seeder() {
			r = storage.Seeder
		}
		s.putIn(sh, sw, af, k, announcer, r, u == storage.UpdateGraduate, stamp, self)
	}
	return dst, counts, role
}

// findRole returns the slot of the record with key k, or -1, and whether
// it is a seeder or a leecher.
func (f *family) findRole(l *layout, k []byte) (int, storage.Role) {
	switch i := f.find(l, k); {
	case i < 0:
		return i, storage.Absent
	case uint32(i) < f.nSeed:
		return i, storage.Seeder
	default:
		return i, storage.Leecher
	}
}

// appendPeers appends up to *want peers of records [lo, hi), skipping slot
// self, starting at a random record; it lowers *want by the number added.
func (f *family) appendPeers(l *layout, dst []bittorrent.Peer, lo, hi, self int, want *int) []bittorrent.Peer {
	avail := others(lo, hi, self)
	if avail <= 0 {
		return dst
	}
	return f.appendPeersFrom(l, dst, lo, hi, self, want, avail, lo+int(rand.Uint32N(uint32(hi-lo))))
}

// others is the number of records in [lo, hi) other than slot self.
func others(lo, hi, self int) int {
	if self >= lo && self < hi {
		return hi - lo - 1
	}
	return hi - lo
}

// appendPeersFrom is appendPeers starting at record j, with avail the
// number of records in [lo, hi) other than self (> 0).
func (f *family) appendPeersFrom(l *layout, dst []bittorrent.Peer, lo, hi, self int, want *int, avail, j int) []bittorrent.Peer {
	take := min(*want, avail)
	*want -= take
	// Peers are written in place: building each one and appending it
	// copies the 56-byte struct twice.
	n0 := len(dst)
	dst = slices.Grow(dst, take)[:n0+take]
	out := dst[n0:]
	for k := 0; k < len(out); {
		if j != self {
			f.fill(l, j, &out[k])
			k++
		}
		if j++; j == hi {
			j = lo
		}
	}
	return dst
}

// appendCompact is appendPeers for peers in their compact form: each
// record's key, its address then its big-endian port, copied as it is.
func (f *family) appendCompact(l *layout, dst []byte, lo, hi, self int, want *int) []byte {
	avail := others(lo, hi, self)
	if avail <= 0 {
		return dst
	}
	take := min(*want, avail)
	*want -= take
	j := lo + int(rand.Uint32N(uint32(hi-lo)))
	n0, kl := len(dst), l.keyLen
	// An IPv4 key (6 bytes) is copied as the 8 bytes that start its
	// record (stride >= 8), each copy overwriting the last one's tail:
	// copies of a constant length, with 2 bytes of slack at the end.
	dst = slices.Grow(dst, take*kl+2)[:n0+take*kl+2]
	out := dst[n0:]
	for k, o := 0, 0; k < take; {
		if j != self {
			off := j * l.stride
			if kl == 6 {
				*(*[8]byte)(out[o:]) = *(*[8]byte)(f.recs[off:])
			} else {
				*(*[18]byte)(out[o:]) = *(*[18]byte)(f.recs[off:])
			}
			o += kl
			k++
		}
		if j++; j == hi {
			j = lo
		}
	}
	return dst[:n0+take*kl]
}

// fill sets *p from record i.
func (f *family) fill(l *layout, i int, p *bittorrent.Peer) {
	rec := f.rec(l, i)
	// Without IDs kept the ID is all zeros, which the HTTP frontend
	// leaves out of non-compact replies. Copies of a constant length:
	// one of a variable length is a call per peer.
	if l.idLen != 0 {
		p.ID = bittorrent.PeerID(rec[l.keyLen : l.keyLen+idLen])
	} else {
		p.ID = bittorrent.PeerID{}
	}
	p.Kind = l.kind
	var a netip.Addr
	if l.keyLen == 6 {
		a = netip.AddrFrom4([4]byte(rec[:4]))
	} else {
		a = netip.AddrFrom16([16]byte(rec[:16]))
	}
	p.AddrPort = netip.AddrPortFrom(a, binary.BigEndian.Uint16(rec[l.keyLen-2:l.keyLen]))
}
