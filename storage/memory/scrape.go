package memory

import (
	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
)

// ScrapeSwarm returns the counts of ih's swarm for af, peers of both
// kinds together.
func (s *PeerStore) ScrapeSwarm(ih bittorrent.InfoHash, af bittorrent.AddressFamily) (storage.Counts, error) {
	c, err := s.scrapeSwarm(ih, af)
	if w := s.web.Load(); w != nil {
		wc, _ := w.scrapeSwarm(ih, af)
		c = c.Add(wc)
	}
	return c, err
}

// scrapeSwarm is ScrapeSwarm for the peers of this store's kind.
func (s *PeerStore) scrapeSwarm(ih bittorrent.InfoHash, af bittorrent.AddressFamily) (storage.Counts, error) {
	if af > bittorrent.IPv6 {
		return storage.Counts{}, nil
	}
	sh, h := s.locate(ih)
	sh.mu.RLock()
	c := sh.counts(h, ih, af)
	sh.mu.RUnlock()
	return c, nil
}

// counts returns the counts of ih's swarm for af; the caller holds the
// shard's lock.
func (sh *shard) counts(h uint32, ih bittorrent.InfoHash, af bittorrent.AddressFamily) storage.Counts {
	sw := sh.swarms.get(h, ih)
	switch {
	case sw == nil:
		return storage.Counts{}
	case sw.loc != nil:
		f := &sw.loc.fam[af]
		return storage.Counts{Seeders: f.nSeed, Leechers: f.n - f.nSeed, Downloads: sw.downloads}
	}
	f := sw.fam(af)
	return storage.Counts{Seeders: f.nSeed, Leechers: f.n - f.nSeed, Downloads: sw.downloads}
}

// maxGrouped is how many hashes a scrape may have for ScrapeSwarms to
// group them by shard: as many as fit one UDP datagram. Larger scrapes
// (HTTP may send more) are read hash by hash.
const maxGrouped = 74

// ScrapeSwarms writes the counts of each of ihs for af into dst. The
// shards of all the hashes are found first, and hashes that share a shard
// are read under one hold of its lock; one scrape never holds two locks at
// once.
func (s *PeerStore) ScrapeSwarms(dst []storage.Counts, ihs []bittorrent.InfoHash, af bittorrent.AddressFamily) error {
	s.scrapeSwarms(dst, ihs, af)
	if w := s.web.Load(); w != nil {
		for i, ih := range ihs {
			wc, _ := w.scrapeSwarm(ih, af)
			dst[i] = dst[i].Add(wc)
		}
	}
	return nil
}

// scrapeSwarms is ScrapeSwarms for the peers of this store's kind.
func (s *PeerStore) scrapeSwarms(dst []storage.Counts, ihs []bittorrent.InfoHash, af bittorrent.AddressFamily) {
	if af > bittorrent.IPv6 {
		clear(dst[:len(ihs)])
		return
	}
	if len(ihs) > maxGrouped {
		for i, ih := range ihs {
			dst[i], _ = s.scrapeSwarm(ih, af)
		}
		return
	}
	var shards [maxGrouped]*shard
	var hs [maxGrouped]uint32
	for i, ih := range ihs {
		shards[i], hs[i] = s.locate(ih)
	}
	for i := range ihs {
		sh := shards[i]
		if sh == nil {
			continue // read with an earlier hash of its shard
		}
		sh.mu.RLock()
		dst[i] = sh.counts(hs[i], ihs[i], af)
		for j := i + 1; j < len(ihs); j++ {
			if shards[j] == sh {
				dst[j] = sh.counts(hs[j], ihs[j], af)
				shards[j] = nil
			}
		}
		sh.mu.RUnlock()
	}
}
