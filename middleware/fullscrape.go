package middleware

import (
	"bytes"
	"context"
	"slices"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/frontend"
	"github.com/chihaya/chihaya/storage"
)

var _ frontend.FullScraper = (*Logic)(nil)

// fullScrapePassSwarms is about how many swarms one pass of a full scrape
// holds in memory to sort them: the store's walk visits swarms in no
// order, so a full scrape walks the store once per range of leading
// bytes and sorts each range. Each pass visits every swarm, so fewer,
// larger passes cost less time and more memory: 262,144 swarms take
// 8 MiB (32 bytes each), and a million swarms take 4 passes
// (docs/operator.md has the figures).
var fullScrapePassSwarms uint64 = 1 << 18 // a variable for the tests

// FullScrape walks the store (which must be a storage.Lister) in passes
// over ranges of info hashes, sorting each, and hands fn every swarm with
// both families' peers counted together.
func (l *Logic) FullScrape(ctx context.Context, fn func([]bittorrent.Scrape) error) error {
	lister, ok := l.store.(storage.Lister)
	if !ok {
		return frontend.ErrFullScrapeUnsupported
	}
	st, err := l.store.Stats()
	if err != nil {
		return err
	}
	passes := 1
	for n := st.Swarms[0] + st.Swarms[1]; passes < 256 && uint64(passes)*fullScrapePassSwarms < n; passes *= 2 {
	}
	var batch []bittorrent.Scrape
	for p := 0; p < passes; p++ {
		lo, hi := p*256/passes, (p+1)*256/passes
		batch = batch[:0]
		err := lister.Walk(ctx, func(ih bittorrent.InfoHash) bool {
			return int(ih[0]) >= lo && int(ih[0]) < hi
		}, func(swarms []storage.Swarm) error {
			for i := range swarms {
				sw := &swarms[i]
				batch = append(batch, bittorrent.Scrape{
					InfoHash:   sw.InfoHash,
					Complete:   sw.Seeders[0] + sw.Seeders[1],
					Incomplete: sw.Leechers[0] + sw.Leechers[1],
					Downloaded: sw.Downloads,
				})
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			continue
		}
		slices.SortFunc(batch, func(a, b bittorrent.Scrape) int { return bytes.Compare(a.InfoHash[:], b.InfoHash[:]) })
		if err := fn(batch); err != nil {
			return err
		}
	}
	return nil
}
