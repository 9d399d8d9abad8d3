// Package metrics is the operator's HTTP server: Prometheus metrics,
// liveness and readiness probes, and (only when asked for) pprof.
//
// It is kept apart from the tracker's own HTTP frontend so that it can be
// bound to a private address and never be reachable by BitTorrent clients.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// CheckFunc reports whether one part of the tracker is ready to serve; a
// non-nil error makes /readyz answer 503.
type CheckFunc func(ctx context.Context) error

// checkTimeout bounds one readiness probe so that a hung check (a storage
// backend that stopped answering) makes /readyz fail instead of hang.
const checkTimeout = 5 * time.Second

// Options configure a Server.
type Options struct {
	// EnablePprof serves /debug/pprof/. It is off by default because
	// profiles expose internals and cost CPU while they are taken.
	EnablePprof bool
}

// Server serves /metrics, /healthz, /readyz and optionally /debug/pprof/.
type Server struct {
	ln  net.Listener
	srv *http.Server

	mux *http.ServeMux

	mu     sync.Mutex
	checks map[string]CheckFunc

	done chan struct{}
}

// NewServer binds addr (so that "address in use" is an error here, not a
// log line later) and serves in the background.
func NewServer(addr string, opts Options) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	s := &Server{
		ln:     ln,
		checks: make(map[string]CheckFunc),
		done:   make(chan struct{}),
	}
	s.srv = &http.Server{
		Handler:           s.routes(opts),
		ReadHeaderTimeout: 10 * time.Second,
		// Profiles such as /debug/pprof/profile?seconds=30 stream for
		// longer than a scrape, so no WriteTimeout.
		IdleTimeout: 2 * time.Minute,
	}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln) // returns http.ErrServerClosed after Stop
	}()
	return s, nil
}

func (s *Server) routes(opts Options) http.Handler {
	mux := http.NewServeMux()
	s.mux = mux
	// The default registry also carries the Go runtime and process
	// collectors, which operators expect next to the tracker's metrics.
	mux.Handle("/metrics", promhttp.Handler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", s.serveReady)
	if opts.EnablePprof {
		// Registered by hand on our own mux: importing net/http/pprof
		// also registers on http.DefaultServeMux, which we never serve.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// Handle serves pattern with h beside the metrics and probes (the
// operator API and status page).
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// SetCheck adds or replaces the readiness check called name. A nil fn
// removes it.
func (s *Server) SetCheck(name string, fn CheckFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fn == nil {
		delete(s.checks, name)
		return
	}
	s.checks[name] = fn
}

// Ready runs every check in name order and returns the first failure,
// prefixed with the check's name.
func (s *Server) Ready(ctx context.Context) error {
	s.mu.Lock()
	names := make([]string, 0, len(s.checks))
	for n := range s.checks {
		names = append(names, n)
	}
	checks := make([]CheckFunc, len(names))
	sort.Strings(names)
	for i, n := range names {
		checks[i] = s.checks[n]
	}
	s.mu.Unlock()

	for i, fn := range checks {
		if err := fn(ctx); err != nil {
			return fmt.Errorf("%s: %w", names[i], err)
		}
	}
	return nil
}

func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), checkTimeout)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.Ready(ctx); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("not ready: " + err.Error() + "\n"))
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// Addr is the bound address (the real port when the configuration asked
// for port 0).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Stop stops accepting, lets requests in flight finish until ctx is done,
// and then closes what is left.
func (s *Server) Stop(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		_ = s.srv.Close()
	}
	<-s.done
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}
