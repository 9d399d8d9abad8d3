package memory

import (
	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
)

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
