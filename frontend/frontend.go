// Package frontend defines what a frontend needs from the rest of the
// tracker (TrackerLogic) and what the rest of the tracker needs from a
// frontend (its lifecycle).
package frontend

import (
	"context"
	"errors"

	"github.com/chihaya/chihaya/bittorrent"
)

// TrackerLogic turns parsed requests into responses. Frontends call Handle*
// to build the reply, write the reply, and then call After* with the same
// request and response so that the swarm is updated and the posthooks run
// once the client already has its answer.
//
// Requests and responses are owned by the frontend and may be reused as
// soon as After* returns; TrackerLogic copies whatever it keeps.
type TrackerLogic interface {
	// HandleAnnounce fills resp. An error is either a
	// bittorrent.ClientError, whose text the client is shown, or an
	// internal error, which the client sees as bittorrent.ErrInternal.
	HandleAnnounce(ctx context.Context, req *bittorrent.AnnounceRequest, resp *bittorrent.AnnounceResponse) error
	// AfterAnnounce runs once the announce reply is written. It is only
	// called after HandleAnnounce succeeded.
	AfterAnnounce(ctx context.Context, req *bittorrent.AnnounceRequest, resp *bittorrent.AnnounceResponse)

	// HandleScrape fills resp with one entry per requested info hash.
	HandleScrape(ctx context.Context, req *bittorrent.ScrapeRequest, resp *bittorrent.ScrapeResponse) error
	// AfterScrape runs once the scrape reply is written.
	AfterScrape(ctx context.Context, req *bittorrent.ScrapeRequest, resp *bittorrent.ScrapeResponse)
}

// Frontend is a running listener. Stop closes its listeners, lets requests
// in flight finish until ctx is done, and returns once it is stopped.
type Frontend interface {
	Stop(ctx context.Context) error
}

// ErrPanic stands for a request whose handling panicked: it is counted as
// an internal error with the reason "panic", and the client, if it can
// still be answered, sees bittorrent.ErrInternal.
var ErrPanic = errors.New("frontend: panic while serving a request")

// RoundTripSharer is implemented by a TrackerLogic whose requests wait for
// a round trip to another process that requests in progress together
// share (the Redis store's group commit). SharesRoundTrips reports whether
// that is so now: then a frontend that holds several requests at once (a
// UDP batch) should hand them to the logic concurrently, so that they
// travel together, rather than one after another. A logic without it, or
// answering false, is fastest called inline.
type RoundTripSharer interface {
	SharesRoundTrips() bool
}
