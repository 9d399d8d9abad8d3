package memory

import (
	"context"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/locality"
)

var _ storage.Lister = (*PeerStore)(nil)

// Walk calls fn with the swarms of one shard at a time: each shard's
// swarms are copied out under its read lock, and fn runs after the lock
// is released. A batch is one shard, so it holds about swarms/shard_count
// entries (1,000 for a million swarms with the default 1,024 shards).
// WebSocket peers (kinds.go) are added to their swarm's counts; swarms
// with only WebSocket peers come after the others.
func (s *PeerStore) Walk(ctx context.Context, keep func(bittorrent.InfoHash) bool, fn func([]storage.Swarm) error) error {
	w := s.web.Load()
	err := s.walkKind(ctx, keep, func(batch []storage.Swarm) error {
		if w != nil {
			for i := range batch {
				w.addCounts(&batch[i])
			}
		}
		return fn(batch)
	})
	if err != nil || w == nil {
		return err
	}
	var only []storage.Swarm
	return w.walkKind(ctx, keep, func(batch []storage.Swarm) error {
		only = only[:0]
		for _, sw := range batch {
			if !s.has(sw.InfoHash) {
				only = append(only, sw)
			}
		}
		if len(only) == 0 {
			return nil
		}
		return fn(only)
	})
}

// addCounts adds the counts of c's swarm in this store to c.
func (s *PeerStore) addCounts(c *storage.Swarm) {
	sh, h := s.locate(c.InfoHash)
	sh.mu.RLock()
	if sw := sh.swarms.get(h, c.InfoHash); sw != nil {
		o := sw.counts(c.InfoHash)
		for af := range c.Seeders {
			c.Seeders[af] += o.Seeders[af]
			c.Leechers[af] += o.Leechers[af]
		}
		c.Downloads += o.Downloads
	}
	sh.mu.RUnlock()
}

// has reports whether this store has a swarm ih.
func (s *PeerStore) has(ih bittorrent.InfoHash) bool {
	sh, h := s.locate(ih)
	sh.mu.RLock()
	ok := sh.swarms.get(h, ih) != nil
	sh.mu.RUnlock()
	return ok
}

// walkKind is Walk over the peers of this store's kind.
func (s *PeerStore) walkKind(ctx context.Context, keep func(bittorrent.InfoHash) bool, fn func([]storage.Swarm) error) error {
	var batch []storage.Swarm
	for i := range s.shards {
		if err := ctx.Err(); err != nil {
			return err
		}
		sh := &s.shards[i]
		batch = batch[:0]
		sh.mu.RLock()
		for ih, sw := range sh.swarms.all() {
			if keep != nil && !keep(ih) {
				continue
			}
			batch = append(batch, sw.counts(ih))
		}
		sh.mu.RUnlock()
		if len(batch) == 0 {
			continue
		}
		if err := fn(batch); err != nil {
			return err
		}
	}
	return nil
}

// counts returns sw's counts. The caller holds the shard's lock.
func (sw *swarm) counts(ih bittorrent.InfoHash) storage.Swarm {
	c := storage.Swarm{InfoHash: ih, Downloads: sw.downloads}
	for af := range c.Seeders {
		var n, nSeed uint32
		if sw.loc != nil {
			n, nSeed = sw.loc.fam[af].n, sw.loc.fam[af].nSeed
		} else {
			f := sw.fam(bittorrent.AddressFamily(af))
			n, nSeed = f.n, f.nSeed
		}
		c.Seeders[af], c.Leechers[af] = nSeed, n-nSeed
	}
	return c
}

// Groups counts ih's peers by locality group of the nearest tier: a cell
// of a swarm kept in cells, or a record of a flat one classified as it is
// read. WebSocket peers, whose addresses are their connections', are left
// out.
func (s *PeerStore) Groups(ih bittorrent.InfoHash) ([]storage.Group, error) {
	classifier := s.classifier.Load()
	if classifier == nil {
		return nil, nil
	}
	type gk struct {
		af  int
		key uint64
	}
	counts := map[gk]*storage.Group{}
	add := func(classifier *locality.Classifier, af int, key uint64, seeders, leechers uint32) {
		g := counts[gk{af, key}]
		if g == nil {
			g = &storage.Group{Name: classifier.GroupName(key, af == int(bittorrent.IPv6)), Family: bittorrent.AddressFamily(af)}
			counts[gk{af, key}] = g
		}
		g.Seeders += seeders
		g.Leechers += leechers
	}
	sh, h := s.locate(ih)
	sh.mu.RLock()
	if sw := sh.swarms.get(h, ih); sw != nil && sw.loc != nil {
		for af := range sw.loc.fam {
			for ci := range sw.loc.fam[af].cells {
				c := &sw.loc.fam[af].cells[ci]
				add(sw.loc.classifier, af, c.key, c.nSeed, c.n-c.nSeed)
			}
		}
	} else if sw != nil {
		for af := range s.layouts {
			l := &s.layouts[af]
			f := sw.fam(bittorrent.AddressFamily(af))
			for i := 0; i < int(f.n); i++ {
				key := classifier.Key(recAddr(l, f.rec(l, i)))
				if uint32(i) < f.nSeed {
					add(classifier, af, key, 1, 0)
				} else {
					add(classifier, af, key, 0, 1)
				}
			}
		}
	}
	sh.mu.RUnlock()
	return storage.SortedGroups(counts), nil
}
