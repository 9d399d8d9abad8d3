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
