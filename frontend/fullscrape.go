package frontend

import (
	"context"
	"errors"

	"github.com/chihaya/chihaya/bittorrent"
)

// FullScraper is implemented by a TrackerLogic that can scrape every
// swarm at once, for the HTTP frontend's full scrape (a scrape without
// info_hash). A frontend asks its TrackerLogic for it; it never reaches
// the store itself.
type FullScraper interface {
	// FullScrape calls fn with the counts of every swarm, both address
	// families together, in batches whose info hashes ascend across the
	// whole walk, so that a writer can stream a sorted bencoded
	// dictionary. A batch is only valid until fn returns; an error of fn
	// ends the walk and is returned. ErrFullScrapeUnsupported means the
	// store cannot list its swarms.
	FullScrape(ctx context.Context, fn func(batch []bittorrent.Scrape) error) error
}

// ErrFullScrapeUnsupported is returned by FullScrape when the store
// cannot walk its swarms.
var ErrFullScrapeUnsupported = errors.New("frontend: the store cannot list its swarms for a full scrape")
