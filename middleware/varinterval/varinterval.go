// Package varinterval implements the `interval variation` hook: it adds a
// random number of seconds to the announce interval of some replies, so
// that clients that all arrived together (after a tracker restart, say)
// drift apart instead of coming back in the same second forever.
package varinterval

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/middleware"
)

// Name is the name operators write in the `prehooks` list.
const Name = "interval variation"

func init() {
	middleware.Register(plugin)
}

// plugin decodes the hook's options and builds it.
var plugin = middleware.Plugin[Config]{
	Name:     Name,
	Defaults: Config.WithDefaults,
	New:      func(c Config) (middleware.Hook, error) { return New(c), nil },
}

// Hook lengthens announce intervals at random.
type Hook struct {
	cfg Config
	// threshold is the probability scaled to 2^53, so that the per-request
	// draw is one integer comparison.
	threshold uint64
}

var _ middleware.Hook = (*Hook)(nil)

// New builds the hook from a validated config.
func New(cfg Config) *Hook {
	return &Hook{cfg: cfg, threshold: uint64(cfg.ModifyResponseProbability * (1 << 53))}
}

// HandleAnnounce lengthens the reply's interval with the configured
// probability. It must run after the core logic set the intervals, which it
// does before any prehook; it uses math/rand/v2's global source, which is
// per-thread and lock-free, so it costs a few nanoseconds and never
// contends.
func (h *Hook) HandleAnnounce(_ context.Context, _ *bittorrent.AnnounceRequest, resp *bittorrent.AnnounceResponse) error {
	if h.threshold < 1<<53 && rand.Uint64()>>11 >= h.threshold {
		return nil
	}
	add := time.Duration(1+rand.IntN(h.cfg.MaxIncreaseDelta)) * time.Second
	resp.Interval += add
	if h.cfg.ModifyMinInterval {
		resp.MinInterval += add
	}
	return nil
}

// HandleScrape leaves scrapes alone: they carry no interval.
func (h *Hook) HandleScrape(context.Context, *bittorrent.ScrapeRequest, *bittorrent.ScrapeResponse) error {
	return nil
}
