// Package memory is the in-process PeerStore: swarms sharded by info hash,
// one lock per shard, and peers kept as fixed-size records in pointer-free
// byte slices, so that a million peers cost the Go garbage collector almost
// nothing to scan.
//
// Layout of one swarm, per address family: a single []byte of records,
// seeders first and leechers after them. A record is the peer's address and
// port (4+2 bytes for IPv4, 16+2 for IPv6), its 20-byte peer ID only with
// keep_peer_ids, and a 16-bit last-seen stamp (stamp.go): 8 bytes an IPv4
// peer. Small families are searched linearly;
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
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/pkg/clock"
	"github.com/chihaya/chihaya/pkg/stopgroup"
	"github.com/chihaya/chihaya/pkg/yamlconf"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/locality"
)

func init() {
	storage.Register(driver)
}

var driver = storage.Driver[Config]{
	Name: "memory",
	// Keys are decoded over the defaults, so that one written as 0 is
	// rejected by Validate rather than silently replaced.
	Start: Config{}.WithDefaults(),
	New:   func(c Config) (storage.PeerStore, error) { return New(c) },
	Check: check,
}

const (
	idLen = 20

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
	keyLen   int // address + port
	idLen    int // peer ID: idLen, or 0 when peer IDs are not kept
	stampOff int // keyLen + idLen: where the last-seen stamp starts
	stride   int // stampOff + stampLen (stamp.go)
	seed     maphash.Seed
	kind     bittorrent.PeerKind // of every peer stored in this layout
}

// newLayout returns the layout of records with keys of keyLen bytes,
// with room for the peer ID when ids is set.
func newLayout(keyLen int, ids bool, k bittorrent.PeerKind) layout {
	l := layout{keyLen: keyLen, seed: maphash.MakeSeed(), kind: k}
	if ids {
		l.idLen = idLen
	}
	l.stampOff = keyLen + l.idLen
	l.stride = l.stampOff + stampLen
	return l
}

// stamp returns the last-seen stamp of rec (stamp.go).
func (l *layout) stamp(rec []byte) uint16 { return binary.LittleEndian.Uint16(rec[l.stampOff:]) }

// setPeer writes the peer ID (when kept) and the last-seen stamp of rec.
func (l *layout) setPeer(rec []byte, id *bittorrent.PeerID, stamp uint16) {
	if l.idLen != 0 {
		copy(rec[l.keyLen:l.keyLen+idLen], id[:])
	}
	binary.LittleEndian.PutUint16(rec[l.stampOff:], stamp)
}

// PeerStore is the memory driver's storage.PeerStore.
type PeerStore struct {
	cfg     Config
	shards  []shard
	layouts [2]layout
	stamps  stamper
	seed    maphash.Seed
	// classifier groups peers by locality; nil when locality is off. Reload
	// swaps it, and each swarm is regrouped on its next update.
	classifier atomic.Pointer[locality.Classifier]
	// flatMax is the family size up to which a swarm with locality on is
	// kept flat, as without locality, and classified when read (local.go);
	// 0 keeps every swarm in cells.
	flatMax int
	// web holds the WebSocket peers (kinds.go), made by the first one;
	// nil in the store web points to.
	web atomic.Pointer[PeerStore]
	// snap writes and restores snapshots (snapshot_file.go); nil when
	// snapshot_path is empty.
	snap *snapshots

	// bg runs collection and reporting.
	bg *stopgroup.Group
}

var _ storage.PeerStore = (*PeerStore)(nil)

// shard is one lock's worth of swarms, with its totals kept as the swarms
// change so that Stats never walks a swarm.
type shard struct {
	mu       sync.RWMutex
	swarms   swarmTable
	nSwarms  [2]uint64
	seeders  [2]uint64
	leechers [2]uint64
	spares   spares
	// Pads the shard to four cache lines so that neighbouring locks do
	// not share one (TestShardSize holds it). The lock and the slots'
	// address, all a lookup reads of the shard, are in its first line.
	_ [256 - 24 - 32 - 6*8 - spareSlots*24]byte
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

// New builds a store and starts its collection and reporting goroutines.
// The config must have its defaults applied.
func New(cfg Config) (*PeerStore, error) { return newPeerStore(cfg, defaultFlatMax) }

// newPeerStore is New with locality's flatMax (local.go) as a parameter, for
// the tests of both layouts.
func newPeerStore(cfg Config, flatMax int) (*PeerStore, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := newShards(cfg, bittorrent.NativePeer)
	if cfg.Locality.Enabled {
		classifier, err := locality.Load(cfg.Locality)
		if err != nil {
			return nil, yamlconf.Under(err, "locality")
		}
		s.classifier.Store(classifier)
		if cfg.Locality.TopologyFile == "" {
			s.flatMax = min(flatMax, maxFlatMax)
		}
	}
	if cfg.SnapshotPath != "" {
		// Before collection starts, and before the store is returned to
		// the daemon, which opens its listeners only then.
		if err := checkSnapshotDir(cfg.SnapshotPath); err != nil {
			return nil, err
		}
		s.startSnapshots()
	}

	s.bg.Every(cfg.GarbageCollectionInterval, func() {
		_ = s.CollectGarbage(clock.Now().Add(-cfg.PeerLifetime))
	})
	s.bg.Every(cfg.PrometheusReportingInterval, func() {
		st, _ := s.Stats()
		storage.ReportStats(st)
	})
	return s, nil
}

// newShards builds the shards of a store whose peers are of kind k, with
// no background work.
func newShards(cfg Config, k bittorrent.PeerKind) *PeerStore {
	s := &PeerStore{
		cfg:    cfg,
		shards: make([]shard, cfg.ShardCount),
		stamps: newStamper(cfg.PeerLifetime, cfg.GarbageCollectionInterval),
		seed:   maphash.MakeSeed(),
		bg:     stopgroup.New(),
	}
	// WebSocket peers keep their IDs whatever keep_peer_ids says: a
	// browser's offers and answers are addressed by peer ID.
	ids := cfg.KeepPeerIDs || k != bittorrent.NativePeer
	s.layouts[bittorrent.IPv4] = newLayout(6, ids, k)
	s.layouts[bittorrent.IPv6] = newLayout(18, ids, k)
	return s
}

// locate returns the shard of ih and the hash its swarm table is probed
// with. Info hashes are chosen by clients, so both come from one keyed
// hash: nobody can aim every swarm at one lock or one chain of slots. The
// high half picks the shard, the low half the slot.
func (s *PeerStore) locate(ih bittorrent.InfoHash) (*shard, uint32) {
	h := maphash.Bytes(s.seed, ih[:])
	return &s.shards[((h>>32)*uint64(len(s.shards)))>>32], uint32(h)
}

// shardFor returns the shard of ih.
func (s *PeerStore) shardFor(ih bittorrent.InfoHash) *shard {
	sh, _ := s.locate(ih)
	return sh
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
	if p.Kind != s.layouts[0].kind {
		return s.ofKind(p.Kind, true).put(ih, p, role, graduate)
	}
	key, af, ok := peerKey(p)
	if !ok {
		storage.ObserveError("put")
		return errInvalidAddr
	}
	k := key[:s.layouts[af].keyLen]
	stamp := s.stamps.now()
	sh, h := s.locate(ih)

	sh.mu.Lock()
	sw := sh.swarms.get(h, ih)
	if sw == nil {
		sw = &swarm{}
		sh.swarms.insert(h, ih, sw)
	}
	s.putIn(sh, sw, af, k, p, role, graduate, stamp, lookUp)
	sh.mu.Unlock()
	return nil
}

// lookUp, as putIn's or deleteIn's slot, asks them to find the peer.
const lookUp = -2

// putIn is put once the caller holds the shard's write lock and sw is in
// its table. i is the peer's slot in family af of a swarm without
// locality when the caller has just looked it up (-1: absent), and
// lookUp otherwise.
func (s *PeerStore) putIn(sh *shard, sw *swarm, af bittorrent.AddressFamily, k []byte, p bittorrent.Peer, role storage.Role, graduate bool, stamp uint16, i int) {
	l := &s.layouts[af]
	classifier := s.classifier.Load()
	if classifier != nil && (sw.loc != nil || s.flatMax == 0) {
		s.putLocal(sh, sw, classifier, af, k, p, role, graduate, stamp)
		return
	}
	f := sw.famForPut(af)
	if i == lookUp {
		i = f.find(l, k)
	}
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
	l.setPeer(f.rec(l, i), &p.ID, stamp)
	if graduate {
		sw.downloads++
	}
	if classifier != nil && f.n > uint32(s.flatMax) {
		s.localize(sh, sw, classifier)
	}
}

// DeletePeer removes p from ih's swarm.
func (s *PeerStore) DeletePeer(ih bittorrent.InfoHash, p bittorrent.Peer) error {
	if p.Kind != s.layouts[0].kind {
		if o := s.ofKind(p.Kind, false); o != nil {
			return o.DeletePeer(ih, p)
		}
		return nil
	}
	key, af, ok := peerKey(p)
	if !ok {
		return nil // never stored, so nothing to remove
	}
	l := &s.layouts[af]
	sh, h := s.locate(ih)

	sh.mu.Lock()
	if sw := sh.swarms.get(h, ih); sw != nil {
		s.deleteIn(sh, h, ih, sw, af, key[:l.keyLen], p.AddrPort.Addr(), lookUp)
	}
	sh.mu.Unlock()
	return nil
}

// deleteIn is DeletePeer once the caller holds the shard's write lock and
// has found sw, the swarm of ih (table hash h); i is as putIn's. It drops
// the swarm when nothing is left of it.
func (s *PeerStore) deleteIn(sh *shard, h uint32, ih bittorrent.InfoHash, sw *swarm, af bittorrent.AddressFamily, k []byte, a netip.Addr, i int) {
	if sw.loc != nil {
		s.deleteLocal(sh, sw, af, k, a)
		if sw.empty() {
			sh.swarms.remove(h, ih)
		}
		return
	}
	l := &s.layouts[af]
	if i == lookUp {
		i = sw.fam(af).find(l, k)
	}
	if i < 0 {
		return
	}
	sh.removePeer(l, sw, af, i)
	if sw.empty() {
		sh.swarms.remove(h, ih)
		sh.spares.put(sw.v4.recs)
		if sw.v6 != nil {
			sh.spares.put(sw.v6.recs)
		}
	}
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
	if w := s.web.Load(); w != nil {
		ws, _ := w.Stats()
		for af := range st.Swarms {
			st.Swarms[af] += ws.Swarms[af]
			st.Seeders[af] += ws.Seeders[af]
			st.Leechers[af] += ws.Leechers[af]
		}
	}
	return st, nil
}

// Ready reports an error once the store is stopped.
func (s *PeerStore) Ready(context.Context) error {
	select {
	case <-s.bg.Done():
		return errors.New("storage/memory: stopped")
	default:
		return nil
	}
}

// Stop ends collection, reporting and periodic snapshots, then writes the
// final snapshot. It may be called more than once.
func (s *PeerStore) Stop(ctx context.Context) error {
	if err := s.bg.Stop(ctx); err != nil {
		return fmt.Errorf("storage/memory: stop: %w", err)
	}
	return s.stopSnapshots(ctx)
}
