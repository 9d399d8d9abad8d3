// Package operator is the operator's view of a running tracker, served on
// the operator server (metrics_addr) beside /metrics: the token-protected
// JSON API under /api/v1/ and the status page under /status.
//
// It reads the store through Store, and changes hooks only through the
// interfaces they offer (ApprovalList); the tracker's wiring (package
// chihaya) hands it both: an adapter over its storage.PeerStore, and the
// torrent approval hook. Like the rest of pkg/, it imports none of the
// tracker's own packages. Nothing here is on a request path of the
// tracker: a slow walk of the store holds up only the operator.
package operator

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ApprovalList is a torrent list of a running hook that can be changed
// (the `torrent approval` hook's whitelist or blacklist).
type ApprovalList interface {
	// ListName is "whitelist" or "blacklist".
	ListName() string
	// ListFile is the file the list is kept in, or "" for a list given
	// inline in the configuration (changes then last until a restart).
	ListFile() string
	// Listed reports whether ih is on the list.
	Listed(ih [20]byte) bool
	// SetListed adds ih to the list, or removes it, writing the file
	// through; changed is false when it was already so.
	SetListed(ih [20]byte, listed bool) (changed bool, err error)
}

// Options are what the operator server reads and changes.
type Options struct {
	Store Store
	// Approval returns the running torrent list hook, or nil without one.
	// It is asked at each request, since a reload may replace the hook.
	Approval func() ApprovalList
	// Version is reported by /api/v1/stats.
	Version string
	// Gatherer is read for the request rates (the frontends'
	// chihaya_frontend_requests_total); prometheus.DefaultGatherer when
	// nil.
	Gatherer prometheus.Gatherer
	// Now replaces time.Now, for tests.
	Now func() time.Time
}

// Server serves the API and the status page.
type Server struct {
	cfg      Config
	tokens   *Tokens
	store    Store
	approval func() ApprovalList
	version  string
	now      func() time.Time
	started  time.Time

	hist     *history
	lists    *listings
	limiter  *limiter
	sessions *sessions
	mux      *http.ServeMux

	cancel context.CancelFunc
	done   sync.WaitGroup
}

// New reads the tokens file and starts the walks of the store for the
// history. cfg must be validated, with its defaults applied.
func New(cfg Config, opts Options) (*Server, error) {
	tokens, err := LoadTokens(cfg.TokensFile)
	if err != nil {
		return nil, err
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	g := opts.Gatherer
	if g == nil {
		g = prometheus.DefaultGatherer
	}
	approval := opts.Approval
	if approval == nil {
		approval = func() ApprovalList { return nil }
	}
	s := &Server{
		cfg:      cfg,
		tokens:   tokens,
		store:    opts.Store,
		approval: approval,
		version:  opts.Version,
		now:      now,
		started:  now(),
		hist:     newHistory(opts.Store, cfg.HistoryInterval, g, now),
		lists:    newListings(now),
		limiter:  newLimiter(now),
		sessions: newSessions(now),
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("/api/v1/", counted(apiRoute, s.serveAPI))
	s.mux.HandleFunc("/status", counted(statusRoute, s.serveStatus))
	s.mux.HandleFunc("/status/", counted(statusRoute, s.serveStatus))
	return s, nil
}

// Start begins the periodic walks of the store.
func (s *Server) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		s.hist.run(ctx)
	}()
}

// Handler serves /api/v1/ and /status.
func (s *Server) Handler() http.Handler { return s.mux }

// Patterns are the paths Handler serves, to mount it on another mux.
func (s *Server) Patterns() []string { return []string{"/api/v1/", "/status", "/status/"} }

// Reload reads the tokens file again; a file that does not load keeps the
// tokens in use.
func (s *Server) Reload() error { return s.tokens.Reload() }

// Tokens returns the number of tokens in use.
func (s *Server) Tokens() int { return s.tokens.Len() }

// Stop ends the walks.
func (s *Server) Stop(ctx context.Context) error {
	if s.cancel != nil {
		s.cancel()
	}
	finished := make(chan struct{})
	go func() { s.done.Wait(); close(finished) }()
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("api: stop: %w", ctx.Err())
	}
}
