package memory

import (
	"time"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
)

// CollectGarbage removes the peers last seen before cutoff, one shard at a
// time and at most gcBatch records per hold of a shard's lock.
func (s *PeerStore) CollectGarbage(cutoff time.Time) error {
	start := time.Now()
	cut := s.stamps.cutoff(cutoff)
	removed := 0
	for i := range s.shards {
		removed += s.collectShard(&s.shards[i], cut)
	}
	if w := s.web.Load(); w != nil {
		for i := range w.shards {
			removed += w.collectShard(&w.shards[i], cut)
		}
	}
	storage.ObserveGC(time.Since(start).Seconds(), removed)
	return nil
}

func (s *PeerStore) collectShard(sh *shard, cut cutoff) (removed int) {
	sh.mu.Lock()
	budget := gcBatch
	relocked := false
swarms:
	for ih, sw := range sh.swarms.all() {
		// With the lock released since the last swarm, DeletePeer may
		// have emptied and dropped this one, and a put made a new one.
		if relocked && !s.holds(sh, ih, sw) {
			continue
		}
		relocked = false
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
				if !s.holds(sh, ih, sw) {
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
			_, h := s.locate(ih)
			sh.swarms.remove(h, ih)
		}
		if budget--; budget <= 0 {
			sh.mu.Unlock()
			sh.mu.Lock()
			budget = gcBatch
			relocked = true
		}
	}
	sh.mu.Unlock()
	return removed
}

// holds reports whether sw is still the swarm of ih in sh, whose lock the
// caller holds again after releasing it.
func (s *PeerStore) holds(sh *shard, ih bittorrent.InfoHash, sw *swarm) bool {
	_, h := s.locate(ih)
	return sh.swarms.get(h, ih) == sw
}

// collectFamily examines records from pos on, removing stale ones, until
// the family ends (done) or the budget runs out; it returns where to resume.
func (sh *shard) collectFamily(l *layout, sw *swarm, af bittorrent.AddressFamily, pos int, cut cutoff, budget, removed *int) (int, bool) {
	f := sw.fam(af)
	for pos < int(f.n) {
		if *budget <= 0 {
			return pos, false
		}
		*budget--
		if cut.stale(l.stamp(f.rec(l, pos))) {
			// The record swapped into pos has not been examined yet.
			sh.removePeer(l, sw, af, pos)
			*removed++
			continue
		}
		pos++
	}
	return pos, true
}
