package memory

import (
	"context"
	"sort"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/locality"
)

var _ storage.Lister = (*PeerStore)(nil)

// Walk calls fn with the swarms of one shard at a time: each shard's
// swarms are copied out under its read lock, and fn runs after the lock
// is released. A batch is one shard, so it holds about swarms/shard_count
// entries (1,000 for a million swarms with the default 1,024 shards).
func (s *PeerStore) Walk(ctx context.Context, keep func(bittorrent.InfoHash) bool, fn func([]storage.Swarm) error) error {
	var batch []storage.Swarm
	for i := range s.shards {
		if err := ctx.Err(); err != nil {
			return err
		}
		sh := &s.shards[i]
		batch = batch[:0]
		sh.mu.RLock()
		for ih, sw := range sh.swarms {
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
// read.
func (s *PeerStore) Groups(ih bittorrent.InfoHash) ([]storage.Group, error) {
	cls := s.cls.Load()
	if cls == nil {
		return nil, nil
	}
	type gk struct {
		af  int
		key uint64
	}
	counts := map[gk]*storage.Group{}
	add := func(cls *locality.Classifier, af int, key uint64, seeders, leechers uint32) {
		g := counts[gk{af, key}]
		if g == nil {
			g = &storage.Group{Name: cls.GroupName(key, af == int(bittorrent.IPv6)), Family: bittorrent.AddressFamily(af)}
			counts[gk{af, key}] = g
		}
		g.Seeders += seeders
		g.Leechers += leechers
	}
	sh := s.shardFor(ih)
	sh.mu.RLock()
	if sw := sh.swarms[ih]; sw != nil && sw.loc != nil {
		for af := range sw.loc.fam {
			for ci := range sw.loc.fam[af].cells {
				c := &sw.loc.fam[af].cells[ci]
				add(sw.loc.cls, af, c.key, c.nSeed, c.n-c.nSeed)
			}
		}
	} else if sw != nil {
		for af := range s.layouts {
			l := &s.layouts[af]
			f := sw.fam(bittorrent.AddressFamily(af))
			for i := 0; i < int(f.n); i++ {
				key := cls.Key(recAddr(l, f.rec(l, i)))
				if uint32(i) < f.nSeed {
					add(cls, af, key, 1, 0)
				} else {
					add(cls, af, key, 0, 1)
				}
			}
		}
	}
	sh.mu.RUnlock()
	if len(counts) == 0 {
		return nil, nil
	}
	out := make([]storage.Group, 0, len(counts))
	for _, g := range counts {
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Family != out[j].Family {
			return out[i].Family < out[j].Family
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}
