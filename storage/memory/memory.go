// Package memory is the in-process PeerStore: swarms sharded by info hash,
// one lock per shard, and peers kept as fixed-size records in pointer-free
// byte slices, so that a million peers cost the Go garbage collector almost
// nothing to scan.
//
// Layout of one swarm, per address family: a single []byte of records,
// seeders first and leechers after them. A record is the peer's address and
// port (4+2 bytes for IPv4, 16+2 for IPv6), its 20-byte peer ID and a 32-bit
// last-seen time in Unix seconds. Small families are searched linearly;
// larger ones get an open-addressing index from address+port to record
// slot. Removal swaps the last record into the hole, so every operation on
// a peer is O(1) and peer selection walks only the records it returns.
//
// Memory is paid per peer, so the swarm itself is kept to 64 bytes (its
// IPv6 family is allocated only when it has IPv6 peers), and record arrays
// a swarm outgrows are reused by the next swarm of the same shard that
// grows, instead of left for the garbage collector (see spares).
package memory

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/pkg/clock"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/locality"
)

func init() {
	storage.RegisterDriver("memory", func(configYAML []byte) (storage.PeerStore, error) {
		cfg, err := decodeConfig(configYAML)
		if err != nil {
			return nil, err
		}
		return New(cfg)
	})
}

const (
	idLen    = 20
	stampLen = 4

	// indexThreshold is the family size above which a hash index is kept.
	// Below it a linear scan over a few cache lines is as fast as hashing,
	// and most swarms are this small, so they pay nothing for an index.
	indexThreshold = 32

	// gcBatch is how many records collection examines per hold of a shard
	// lock before letting announces in.
	gcBatch = 2048
)

// errInvalidAddr is returned for a peer without an address; frontends never
// produce one, so it points at a bug upstream of the store.
var errInvalidAddr = errors.New("storage/memory: peer has no valid address")

// layout describes the records of one address family.
type layout struct {
	keyLen int // address + port
	stride int // keyLen + peer ID + last-seen stamp
	seed   maphash.Seed
}

// PeerStore is the memory driver's storage.PeerStore.
type PeerStore struct {
	cfg     Config
	shards  []shard
	layouts [2]layout
	seed    maphash.Seed
	// cls groups peers by locality; nil when locality is off. Reload
	// swaps it, and each swarm is regrouped on its next update.
	cls atomic.Pointer[locality.Classifier]
	// flatMax is the family size up to which a swarm with locality on is
	// kept flat, as without locality, and classified when read (local.go);
	// 0 keeps every swarm in cells.
	flatMax int

	done     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

var _ storage.PeerStore = (*PeerStore)(nil)

// shard is one lock's worth of swarms, with its totals kept as the swarms
// change so that Stats never walks a swarm.
type shard struct {
	mu       sync.RWMutex
	swarms   map[bittorrent.InfoHash]*swarm
	nSwarms  [2]uint64
	seeders  [2]uint64
	leechers [2]uint64
	spares   spares
	// Pads the shard to three cache lines so that neighbouring locks do
	// not share one (TestShardSize holds it).
	_ [192 - 24 - 8 - 6*8 - spareSlots*24]byte
}

// swarm is one torrent's peers. It is 60 bytes, in the runtime's 64-byte
// size class: with 10 peers a swarm, every 10 bytes here are a byte per
// peer, so the IPv6 family, which most swarms never have, is kept apart.
type swarm struct {
	v4 family
	// v6 is allocated by the swarm's first IPv6 peer and dropped by the
	// first collection after its last one left.
	v6 *family
	// loc holds the peers instead of v4 and v6 when locality is on
	// (local.go).
	loc       *localSwarm
	downloads uint32
}

// noPeers stands for an absent IPv6 family on the read paths. Nothing may
// write to it: every write path goes through swarm.famForPut.
var noPeers family

// fam returns family af of sw for reading: never nil.
func (sw *swarm) fam(af bittorrent.AddressFamily) *family {
	if af == bittorrent.IPv4 {
		return &sw.v4
	}
	if sw.v6 == nil {
		return &noPeers
	}
	return sw.v6
}

// famForPut returns family af of sw, allocating an IPv6 family on first
// use.
func (sw *swarm) famForPut(af bittorrent.AddressFamily) *family {
	if af == bittorrent.IPv4 {
		return &sw.v4
	}
	if sw.v6 == nil {
		sw.v6 = &family{}
	}
	return sw.v6
}

// family holds the peers of one address family of a swarm: records [0,
// nSeed) are seeders, [nSeed, n) leechers.
type family struct {
	recs  []byte
	idx   *index
	n     uint32
	nSeed uint32
}

// index maps address+port to slot+1 (0 marks an empty entry) by linear
// probing; it is kept at most half full.
type index struct {
	slots []uint32
	mask  uint32
}

// New builds a store and starts its collection and reporting goroutines.
// The config must have its defaults applied.
func New(cfg Config) (*PeerStore, error) { return newPeerStore(cfg, defaultFlatMax) }

// newPeerStore is New with locality's flatMax (local.go) as a parameter, for
// the tests of both layouts.
func newPeerStore(cfg Config, flatMax int) (*PeerStore, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &PeerStore{
		cfg:    cfg,
		shards: make([]shard, cfg.ShardCount),
		seed:   maphash.MakeSeed(),
		done:   make(chan struct{}),
	}
	s.layouts[bittorrent.IPv4] = layout{keyLen: 6, stride: 6 + idLen + stampLen, seed: maphash.MakeSeed()}
	s.layouts[bittorrent.IPv6] = layout{keyLen: 18, stride: 18 + idLen + stampLen, seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i].swarms = make(map[bittorrent.InfoHash]*swarm)
	}
	if cfg.Locality.Enabled {
		cls, err := locality.Load(cfg.Locality)
		if err != nil {
			return nil, err
		}
		s.cls.Store(cls)
		if cfg.Locality.TopologyFile == "" {
			s.flatMax = min(flatMax, maxFlatMax)
		}
	}

	storage.Every(s.done, &s.wg, cfg.GarbageCollectionInterval, func() {
		_ = s.CollectGarbage(clock.Now().Add(-cfg.PeerLifetime))
	})
	storage.Every(s.done, &s.wg, cfg.PrometheusReportingInterval, func() {
		st, _ := s.Stats()
		storage.ReportStats(st)
	})
	return s, nil
}

func (s *PeerStore) shardFor(ih bittorrent.InfoHash) *shard {
	// Info hashes are chosen by clients, so the shard comes from a keyed
	// hash: nobody can aim every swarm at one lock.
	h := maphash.Bytes(s.seed, ih[:]) >> 32
	return &s.shards[(h*uint64(len(s.shards)))>>32]
}

// peerKey returns the record key (address then big-endian port) of p.
func peerKey(p bittorrent.Peer) (k [18]byte, af bittorrent.AddressFamily, ok bool) {
	a := p.AddrPort.Addr()
	port := p.AddrPort.Port()
	switch {
	case a.Is4():
		a4 := a.As4()
		copy(k[:4], a4[:])
		binary.BigEndian.PutUint16(k[4:6], port)
		return k, bittorrent.IPv4, true
	case a.IsValid():
		a16 := a.As16()
		copy(k[:16], a16[:])
		binary.BigEndian.PutUint16(k[16:18], port)
		return k, bittorrent.IPv6, true
	}
	return k, 0, false
}

func stampNow() uint32 { return uint32(clock.Unix()) }

// PutSeeder stores p as a seeder of ih.
func (s *PeerStore) PutSeeder(ih bittorrent.InfoHash, p bittorrent.Peer) error {
	return s.put(ih, p, storage.Seeder, false)
}

// PutLeecher stores p as a leecher of ih.
func (s *PeerStore) PutLeecher(ih bittorrent.InfoHash, p bittorrent.Peer) error {
	return s.put(ih, p, storage.Leecher, false)
}

// GraduateLeecher stores p as a seeder of ih and counts a download.
func (s *PeerStore) GraduateLeecher(ih bittorrent.InfoHash, p bittorrent.Peer) error {
	return s.put(ih, p, storage.Seeder, true)
}

func (s *PeerStore) put(ih bittorrent.InfoHash, p bittorrent.Peer, role storage.Role, graduate bool) error {
	key, af, ok := peerKey(p)
	if !ok {
		storage.ObserveError("put")
		return errInvalidAddr
	}
	l := &s.layouts[af]
	k := key[:l.keyLen]
	stamp := stampNow()
	sh := s.shardFor(ih)

	sh.mu.Lock()
	sw := sh.swarms[ih]
	if sw == nil {
		sw = &swarm{}
		sh.swarms[ih] = sw
	}
	cls := s.cls.Load()
	if cls != nil && (sw.loc != nil || s.flatMax == 0) {
		s.putLocal(sh, sw, cls, af, k, p, role, graduate, stamp)
		sh.mu.Unlock()
		return nil
	}
	f := sw.famForPut(af)
	i := f.find(l, k)
	was := storage.Absent
	if i < 0 {
		if f.n == 0 {
			sh.nSwarms[af]++
		}
		i = f.add(l, k, &sh.spares)
		sh.leechers[af]++
	} else if uint32(i) < f.nSeed {
		was = storage.Seeder
	} else {
		was = storage.Leecher
	}
	switch {
	case role == storage.Seeder && was != storage.Seeder:
		i = f.toSeeder(l, i)
		sh.leechers[af]--
		sh.seeders[af]++
	case role == storage.Leecher && was == storage.Seeder:
		i = f.toLeecher(l, i)
		sh.seeders[af]--
		sh.leechers[af]++
	}
	rec := f.rec(l, i)
	copy(rec[l.keyLen:], p.ID[:])
	binary.LittleEndian.PutUint32(rec[l.keyLen+idLen:], stamp)
	if graduate {
		sw.downloads++
	}
	if cls != nil && f.n > uint32(s.flatMax) {
		s.localize(sh, sw, cls)
	}
	sh.mu.Unlock()
	return nil
}

// DeletePeer removes p from ih's swarm.
func (s *PeerStore) DeletePeer(ih bittorrent.InfoHash, p bittorrent.Peer) error {
	key, af, ok := peerKey(p)
	if !ok {
		return nil // never stored, so nothing to remove
	}
	l := &s.layouts[af]
	sh := s.shardFor(ih)

	sh.mu.Lock()
	if sw := sh.swarms[ih]; sw != nil && sw.loc != nil {
		s.deleteLocal(sh, sw, af, key[:l.keyLen], p.AddrPort.Addr())
		if sw.empty() {
			delete(sh.swarms, ih)
		}
	} else if sw != nil {
		f := sw.fam(af)
		if i := f.find(l, key[:l.keyLen]); i >= 0 {
			sh.removePeer(l, sw, af, i)
			if sw.empty() {
				delete(sh.swarms, ih)
				sh.spares.put(sw.v4.recs)
				if sw.v6 != nil {
					sh.spares.put(sw.v6.recs)
				}
			}
		}
	}
	sh.mu.Unlock()
	return nil
}

// removePeer removes record i of family af of sw, keeping the shard's
// totals. The caller holds the shard's write lock.
func (sh *shard) removePeer(l *layout, sw *swarm, af bittorrent.AddressFamily, i int) {
	f := sw.fam(af)
	if uint32(i) < f.nSeed {
		sh.seeders[af]--
	} else {
		sh.leechers[af]--
	}
	f.remove(l, i)
	if f.n == 0 {
		sh.nSwarms[af]--
	}
}

func (sw *swarm) empty() bool {
	return sw.v4.n == 0 && (sw.v6 == nil || sw.v6.n == 0) && sw.downloads == 0 &&
		(sw.loc == nil || sw.loc.fam[0].n == 0 && sw.loc.fam[1].n == 0)
}

// AnnouncePeers appends up to numWant peers for the announcer to dst. It
// starts each walk at a random record and wraps around, so its cost is
// O(numWant) whatever the swarm's size.
func (s *PeerStore) AnnouncePeers(dst []bittorrent.Peer, ih bittorrent.InfoHash, seeder bool, numWant int, announcer bittorrent.Peer) ([]bittorrent.Peer, storage.Counts, storage.Role, error) {
	key, af, ok := peerKey(announcer)
	if !ok {
		storage.ObserveError("announce")
		return dst, storage.Counts{}, storage.Absent, errInvalidAddr
	}
	l := &s.layouts[af]
	sh := s.shardFor(ih)

	sh.mu.RLock()
	defer sh.mu.RUnlock()
	sw := sh.swarms[ih]
	if sw == nil {
		return dst, storage.Counts{}, storage.Absent, nil
	}
	if sw.loc != nil {
		dst, counts, role := s.announceLocal(dst, sw, af, key[:l.keyLen], announcer.AddrPort.Addr(), seeder, numWant)
		return dst, counts, role, nil
	}
	if cls := s.cls.Load(); cls != nil {
		dst, counts, role := s.announceFlat(dst, sw, cls, af, key[:l.keyLen], announcer.AddrPort.Addr(), seeder, numWant)
		return dst, counts, role, nil
	}
	f := sw.fam(af)
	counts := storage.Counts{Seeders: f.nSeed, Leechers: f.n - f.nSeed, Downloads: sw.downloads}
	self, role := f.findRole(l, key[:l.keyLen])
	if numWant > 0 && !seeder {
		dst = f.appendPeers(l, dst, 0, int(f.nSeed), self, &numWant)
	}
	if numWant > 0 {
		dst = f.appendPeers(l, dst, int(f.nSeed), int(f.n), self, &numWant)
	}
	return dst, counts, role, nil
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
	m := hi - lo
	avail := m
	if self >= lo && self < hi {
		avail--
	}
	if avail <= 0 {
		return dst
	}
	return f.appendPeersFrom(l, dst, lo, hi, self, want, avail, lo+int(rand.Uint32N(uint32(m))))
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

// fill sets *p from record i.
func (f *family) fill(l *layout, i int, p *bittorrent.Peer) {
	rec := f.rec(l, i)
	p.ID = bittorrent.PeerID(rec[l.keyLen : l.keyLen+idLen])
	var a netip.Addr
	if l.keyLen == 6 {
		a = netip.AddrFrom4([4]byte(rec[:4]))
	} else {
		a = netip.AddrFrom16([16]byte(rec[:16]))
	}
	p.AddrPort = netip.AddrPortFrom(a, binary.BigEndian.Uint16(rec[l.keyLen-2:l.keyLen]))
}

// ScrapeSwarm returns the counts of ih's swarm for af.
func (s *PeerStore) ScrapeSwarm(ih bittorrent.InfoHash, af bittorrent.AddressFamily) (storage.Counts, error) {
	if af > bittorrent.IPv6 {
		return storage.Counts{}, nil
	}
	sh := s.shardFor(ih)
	sh.mu.RLock()
	var c storage.Counts
	if sw := sh.swarms[ih]; sw != nil && sw.loc != nil {
		f := &sw.loc.fam[af]
		c = storage.Counts{Seeders: f.nSeed, Leechers: f.n - f.nSeed, Downloads: sw.downloads}
	} else if sw != nil {
		f := sw.fam(af)
		c = storage.Counts{Seeders: f.nSeed, Leechers: f.n - f.nSeed, Downloads: sw.downloads}
	}
	sh.mu.RUnlock()
	return c, nil
}

// CollectGarbage removes the peers last seen before cutoff, one shard at a
// time and at most gcBatch records per hold of a shard's lock.
func (s *PeerStore) CollectGarbage(cutoff time.Time) error {
	start := time.Now()
	var cut uint32
	switch u := cutoff.Unix(); {
	case u <= 0:
		cut = 0
	case u > math.MaxUint32:
		cut = math.MaxUint32
	default:
		cut = uint32(u)
	}
	removed := 0
	for i := range s.shards {
		removed += s.collectShard(&s.shards[i], cut)
	}
	storage.ObserveGC(time.Since(start).Seconds(), removed)
	return nil
}

func (s *PeerStore) collectShard(sh *shard, cut uint32) (removed int) {
	sh.mu.Lock()
	budget := gcBatch
swarms:
	for ih, sw := range sh.swarms {
		if sw.loc != nil {
			if !s.collectLocal(sh, ih, sw, cut, &budget, &removed) {
				continue swarms
			}
			s.flatten(sh, sw)
		}
		for af := range s.layouts {
			if af == int(bittorrent.IPv6) && sw.v6 == nil {
				continue
			}
			l := &s.layouts[af]
			pos := 0
			for {
				var done bool
				pos, done = sh.collectFamily(l, sw, bittorrent.AddressFamily(af), pos, cut, &budget, &removed)
				if done {
					break
				}
				sh.mu.Unlock()
				sh.mu.Lock()
				budget = gcBatch
				if sh.swarms[ih] != sw {
					// Emptied and dropped by DeletePeer meanwhile.
					continue swarms
				}
			}
			// Another collection may have dropped the IPv6 family while
			// the lock was released.
			if af == int(bittorrent.IPv4) {
				sw.v4.shrink(l, &sh.spares)
			} else if sw.v6 != nil {
				sw.v6.shrink(l, &sh.spares)
			}
		}
		if sw.v6 != nil && sw.v6.n == 0 {
			sw.v6 = nil
		}
		if sw.empty() {
			delete(sh.swarms, ih)
		}
		if budget--; budget <= 0 {
			sh.mu.Unlock()
			sh.mu.Lock()
			budget = gcBatch
		}
	}
	sh.mu.Unlock()
	return removed
}

// collectFamily examines records from pos on, removing stale ones, until
// the family ends (done) or the budget runs out; it returns where to resume.
func (sh *shard) collectFamily(l *layout, sw *swarm, af bittorrent.AddressFamily, pos int, cut uint32, budget, removed *int) (int, bool) {
	f := sw.fam(af)
	for pos < int(f.n) {
		if *budget <= 0 {
			return pos, false
		}
		*budget--
		rec := f.rec(l, pos)
		if binary.LittleEndian.Uint32(rec[l.keyLen+idLen:]) < cut {
			// The record swapped into pos has not been examined yet.
			sh.removePeer(l, sw, af, pos)
			*removed++
			continue
		}
		pos++
	}
	return pos, true
}

// Stats returns the store's totals.
func (s *PeerStore) Stats() (storage.Stats, error) {
	var st storage.Stats
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for af := range st.Swarms {
			st.Swarms[af] += sh.nSwarms[af]
			st.Seeders[af] += sh.seeders[af]
			st.Leechers[af] += sh.leechers[af]
		}
		sh.mu.RUnlock()
	}
	return st, nil
}

// Ready reports an error once the store is stopped.
func (s *PeerStore) Ready(context.Context) error {
	select {
	case <-s.done:
		return errors.New("storage/memory: stopped")
	default:
		return nil
	}
}

// Stop ends collection and reporting. It may be called more than once.
func (s *PeerStore) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() { close(s.done) })
	if err := storage.WaitBackground(ctx, &s.wg); err != nil {
		return fmt.Errorf("storage/memory: stop: %w", err)
	}
	return nil
}

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
		v := x.slots[e]
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
		if v := x.slots[e]; string(f.keyAt(l, int(v-1))) == string(k) {
			return e
		}
	}
}

func (x *index) insert(l *layout, k []byte, slot int) {
	e := uint32(maphash.Bytes(l.seed, k)) & x.mask
	for x.slots[e] != 0 {
		e = (e + 1) & x.mask
	}
	x.slots[e] = uint32(slot) + 1
}

// add appends a record with key k as the last leecher and returns its slot;
// the caller fills in the peer ID and stamp. New record space comes from
// sp when it has some of the right size.
func (f *family) add(l *layout, k []byte, sp *spares) int {
	need := (int(f.n) + 1) * l.stride
	if need > cap(f.recs) {
		// Grow by a quarter rather than double: most swarms are small and
		// long-lived, so slack is paid for per peer, while copying is rare.
		n := int(f.n)
		f.realloc(need-l.stride, need, (n+max(2, n/4))*l.stride, sp)
	}
	f.recs = f.recs[:need]
	i := int(f.n)
	copy(f.recs[i*l.stride:], k)
	f.n++
	switch {
	case f.idx != nil && int(f.n)*2 > len(f.idx.slots):
		f.reindex(l, len(f.idx.slots)*2)
	case f.idx != nil:
		f.idx.insert(l, k, i)
	case f.n > indexThreshold:
		f.reindex(l, 4*indexThreshold)
	}
	return i
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
	x := &index{slots: make([]uint32, size), mask: uint32(size - 1)}
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
		f.idx.slots[ei], f.idx.slots[ej] = uint32(j)+1, uint32(i)+1
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
		x.slots[e] = 0
		for j := (e + 1) & x.mask; x.slots[j] != 0; j = (j + 1) & x.mask {
			v := x.slots[j]
			home := uint32(maphash.Bytes(l.seed, f.keyAt(l, int(v-1)))) & x.mask
			// The entry may move into the hole unless its home lies
			// cyclically in (e, j].
			if (j-home)&x.mask < (j-e)&x.mask {
				continue
			}
			x.slots[e], x.slots[j] = v, 0
			e = j
		}
	}
	f.n--
	f.recs = f.recs[:int(f.n)*l.stride]
	if f.idx != nil {
		switch {
		case f.n <= indexThreshold/2:
			f.reindex(l, 0)
		case int(f.n)*8 < len(f.idx.slots) && len(f.idx.slots) > 4*indexThreshold:
			f.reindex(l, len(f.idx.slots)/2)
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

// get returns a spare array with a capacity in [need, want+want/8], or
// nil. The slack allowed matches the spacing of the allocator's size
// classes, so an array of the class want rounds up to is taken.
func (sp *spares) get(need, want int) []byte {
	if sp == nil {
		return nil
	}
	for i, b := range sp {
		if c := cap(b); c >= need && c <= want+want/8 {
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
