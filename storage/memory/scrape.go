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

// ScrapeSwarms writes the counts of each of ihs for af into dst. Each swarm
// is read under its own shard's lock, as ScrapeSwarm does: one scrape never
// holds several locks at once.
func (s *PeerStore) ScrapeSwarms(dst []storage.Counts, ihs []bittorrent.InfoHash, af bittorrent.AddressFamily) error {
	for i, ih := range ihs {
		c, err := s.ScrapeSwarm(ih, af)
		if err != nil {
			return err
		}
		dst[i] = c
	}
	return nil
}
