// Package httpapproval implements the `http approval` hook: it asks an
// operator's service, over HTTP, whether to admit an announce (and, with
// `scrapes: true`, a scrape), and remembers the answer for a while.
package httpapproval

import (
	"context"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/middleware"
	"github.com/chihaya/chihaya/pkg/clock"
	"github.com/chihaya/chihaya/pkg/webhook"
)

// Name is the name operators write in the `prehooks` list.
const Name = "http approval"

// Limits on what the service sends back.
const (
	// MaxResponseBytes bounds an answer's body; a longer one is an error.
	MaxResponseBytes = 64 << 10
	// MaxReasonBytes bounds the refusal text shown to a client: it must
	// fit a UDP error datagram and an HTTP client's status line.
	MaxReasonBytes = 120
	// MaxInterval bounds the interval a service may set.
	MaxInterval = 24 * time.Hour
)

// Results of a decision, the `result` label of the decisions metric.
const (
	resultAllowed       = "allowed"
	resultRefused       = "refused"
	resultErrorAdmitted = "error_admitted"
	resultErrorRefused  = "error_refused"
)

// Kinds of service errors, the `kind` label of the errors metric.
const (
	kindTimeout     = "timeout"
	kindConnection  = "connection"
	kindStatus      = "status"
	kindRedirect    = "redirect"
	kindBadResponse = "bad_response"
	kindOverload    = "overload"
	kindBreakerOpen = "breaker_open"
)

var (
	decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "chihaya", Subsystem: "middleware",
		Name: "http_approval_decisions_total",
		Help: "Requests decided by the http approval hook, by result (allowed, refused, error_admitted, error_refused).",
	}, []string{"result"})
	cacheLookups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "chihaya", Subsystem: "middleware",
		Name: "http_approval_cache_lookups_total",
		Help: "Answer cache lookups of the http approval hook, by result (hit, miss, shared: a miss that waited for another request's question).",
	}, []string{"result"})
	serviceErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "chihaya", Subsystem: "middleware",
		Name: "http_approval_errors_total",
		Help: "Questions to the approval service that failed, by kind.",
	}, []string{"kind"})
	serviceDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "chihaya", Subsystem: "middleware",
		Name:    "http_approval_request_duration_seconds",
		Help:    "Time the approval service took to answer, failures included.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	})
	breakerOpen = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "chihaya", Subsystem: "middleware",
		Name: "http_approval_breaker_open",
		Help: "1 while the http approval hook's breaker is open (the service is not asked), else 0.",
	})

	decided = map[string]prometheus.Counter{}
	hit     prometheus.Counter
	missed  prometheus.Counter
	shared  prometheus.Counter
)

func init() {
	prometheus.MustRegister(decisions, cacheLookups, serviceErrors, serviceDuration, breakerOpen)
	for _, r := range []string{resultAllowed, resultRefused, resultErrorAdmitted, resultErrorRefused} {
		decided[r] = decisions.WithLabelValues(r)
	}
	hit, missed, shared = cacheLookups.WithLabelValues("hit"), cacheLookups.WithLabelValues("miss"), cacheLookups.WithLabelValues("shared")
	for _, k := range []string{kindTimeout, kindConnection, kindStatus, kindRedirect, kindBadResponse, kindOverload, kindBreakerOpen} {
		serviceErrors.WithLabelValues(k)
	}
	middleware.Register(plugin)
}

// plugin decodes the hook's options and builds it. New only reads files
// and makes a client, so validating may build it.
var plugin = middleware.Plugin[Config]{
	Name:     Name,
	Defaults: Config.WithDefaults,
	New:      func(c Config) (middleware.Hook, error) { return New(c) },
	// Scrapes are asked about only with `scrapes: true`; their series
	// exist either way.
	Reasons:       []string{"refused_by_service", "approval_unavailable"},
	ScrapeReasons: []string{"refused_by_service", "approval_unavailable"},
}

// ErrUnavailable refuses a request when the service could not answer and
// on_error is refuse. Its text says nothing of the service's failure.
var ErrUnavailable error = middleware.Refusal{
	Reason: "approval_unavailable",
	Err:    bittorrent.ClientError("tracker temporarily unavailable: try again later"),
}

// defaultReason is shown when the service refuses without a reason.
const defaultReason = "unapproved request"

// answer is a decision as the cache holds it.
type answer struct {
	expires  int64 // clock.Monotonic
	err      error // nil: allowed; else a middleware.Refusal built once
	interval time.Duration
}

// call is one question in flight; concurrent misses for its key wait for it.
type call struct {
	done chan struct{}
	a    answer
	err  error
}

// shardCount splits the cache so that lookups on two cores rarely meet on
// one lock.
const shardCount = 64

type shard struct {
	mu      sync.RWMutex
	m       map[string]answer
	pending map[string]*call
	_       [64]byte // keep neighbours' locks off this cache line
}

// maxKey bounds a cache key; requests whose key would be longer (a scrape
// of many torrents, a huge parameter) are asked about every time.
const maxKey = 256

// keyPart is one element of cache_key.
type keyPart struct {
	infoHash bool
	query    bool
	name     string
}

// Hook asks the service and caches its answers.
type Hook struct {
	cfg      Config
	desc     *middleware.Describer
	parts    []keyPart
	ep       webhook.Endpoint
	admit    bool
	ttl      int64
	perShard int

	seed   maphash.Seed
	shards [shardCount]shard
	sem    chan struct{}
	brk    breaker
	logged atomic.Int64 // clock.Monotonic of the last error logged
}

var (
	_ middleware.Hook     = (*Hook)(nil)
	_ middleware.Stopper  = (*Hook)(nil)
	_ middleware.Reloader = (*Hook)(nil)
)

// New builds the hook from a validated config, reading its secret and TLS
// files. Errors name the option.
func New(cfg Config) (*Hook, error) {
	desc, err := middleware.NewDescriber(cfg.Routes, cfg.Redact)
	if err != nil {
		return nil, err
	}
	h := &Hook{
		cfg:      cfg,
		desc:     desc,
		admit:    cfg.OnError == "admit",
		ttl:      int64(cfg.CacheTTL),
		perShard: (cfg.CacheSize + shardCount - 1) / shardCount,
		seed:     maphash.MakeSeed(),
		sem:      make(chan struct{}, cfg.MaxInFlight),
		brk:      breaker{threshold: int32(cfg.BreakerFailures), cooldown: int64(cfg.BreakerCooldown)},
	}
	for _, k := range cfg.CacheKey {
		switch {
		case k == "info_hash":
			h.parts = append(h.parts, keyPart{infoHash: true})
		case strings.HasPrefix(k, "query:"):
			h.parts = append(h.parts, keyPart{query: true, name: k[len("query:"):]})
		default:
			h.parts = append(h.parts, keyPart{name: k})
		}
	}
	h.ep = webhook.Endpoint{
		URL: cfg.URL, SecretFile: cfg.SecretFile,
		TLS:      webhook.TLS{CAFile: cfg.TLSCAFile, CertFile: cfg.TLSCertFile, KeyFile: cfg.TLSKeyFile},
		MaxConns: cfg.MaxInFlight, Timeout: cfg.Timeout,
	}
	if err := h.ep.Open(); err != nil {
		return nil, err // keyed by Open
	}
	for i := range h.shards {
		h.shards[i].m = map[string]answer{}
		h.shards[i].pending = map[string]*call{}
	}
	return h, nil
}

// Stop closes the idle connections to the service.
func (h *Hook) Stop() { h.ep.Close() }

// Reload reads secret_file and the TLS files again (a rotated secret or
// client certificate), keeping the cached answers. On error the hook keeps
// what it had.
func (h *Hook) Reload() error { return h.ep.Reload() }

// HandleAnnounce admits or refuses an announce by the service's answer.
func (h *Hook) HandleAnnounce(_ context.Context, req *bittorrent.AnnounceRequest, resp *bittorrent.AnnounceResponse) error {
	var buf [maxKey]byte
	key, ok := h.appendKey(append(buf[:0], 'a'), req.InfoHash[:], req.Params)
	a, err := h.decide(key, ok, question{ann: req})
	if err != nil {
		return err
	}
	if a.interval > 0 {
		resp.Interval = a.interval
		if resp.MinInterval > a.interval {
			resp.MinInterval = a.interval
		}
	}
	return a.err
}

// HandleScrape admits or refuses a scrape by the service's answer when
// `scrapes` is set; otherwise it admits every scrape.
func (h *Hook) HandleScrape(_ context.Context, req *bittorrent.ScrapeRequest, _ *bittorrent.ScrapeResponse) error {
	if !h.cfg.Scrapes {
		return nil
	}
	var buf [maxKey]byte
	key := append(buf[:0], 's')
	ok := true
	if h.keysHash() {
		for i := range req.InfoHashes {
			if len(key)+20 > maxKey {
				ok = false
				break
			}
			key = append(key, req.InfoHashes[i][:]...)
		}
	}
	if ok {
		key, ok = h.appendKey(key, nil, req.Params)
	}
	a, err := h.decide(key, ok, question{scr: req})
	if err != nil {
		return err
	}
	return a.err
}

func (h *Hook) keysHash() bool {
	for _, p := range h.parts {
		if p.infoHash {
			return true
		}
	}
	return false
}

// appendKey appends the cache key parts to key: the info hash (when ih is
// not nil) and each parameter, length-prefixed so that parts cannot run
// into each other. ok is false when the key would be too long to cache.
func (h *Hook) appendKey(key, ih []byte, p bittorrent.Params) ([]byte, bool) {
	for _, part := range h.parts {
		var v string
		switch {
		case part.infoHash:
			key = append(key, ih...)
			continue
		case part.query:
			v, _ = p.String(part.name)
		default:
			v, _ = h.desc.RouteParam(p, part.name)
		}
		if len(v) > 255 || len(key)+1+len(v) > maxKey {
			return key, false
		}
		key = append(key, byte(len(v)))
		key = append(key, v...)
	}
	return key, true
}

// decide returns the answer for key: cached, or asked of the service by
// one of the requests that want it. cacheable is false for a key too long
// to cache; that request is asked about alone. The error is non-nil when
// the service failed and on_error refuses.
func (h *Hook) decide(key []byte, cacheable bool, q question) (answer, error) {
	if !cacheable {
		missed.Inc()
		a, err := h.ask(q)
		return h.settle(a, err)
	}
	sh := &h.shards[maphash.Bytes(h.seed, key)%shardCount]
	now := clock.Monotonic()
	sh.mu.RLock()
	a, ok := sh.m[string(key)]
	sh.mu.RUnlock()
	if ok && a.expires > now {
		hit.Inc()
		return h.settle(a, nil)
	}

	sh.mu.Lock()
	if a, ok := sh.m[string(key)]; ok && a.expires > now {
		sh.mu.Unlock()
		hit.Inc()
		return h.settle(a, nil)
	}
	if c, ok := sh.pending[string(key)]; ok {
		sh.mu.Unlock()
		shared.Inc()
		<-c.done // bounded: the question in flight has its timeout
		return h.settle(c.a, c.err)
	}
	k := string(key)
	c := &call{done: make(chan struct{})}
	sh.pending[k] = c
	sh.mu.Unlock()
	missed.Inc()

	h.askFor(sh, k, c, q)
	return h.settle(c.a, c.err)
}

// askFor asks the question of call c and publishes its answer to the
// requests waiting on it. Should asking panic (the frontend recovers),
// the waiters are released with a failure rather than left waiting, and
// nothing is cached.
func (h *Hook) askFor(sh *shard, k string, c *call, q question) {
	c.err = errPanicked
	defer func() {
		sh.mu.Lock()
		delete(sh.pending, k)
		if c.err == nil {
			c.a.expires = clock.Monotonic() + h.ttl
			h.store(sh, k, c.a)
		}
		sh.mu.Unlock()
		close(c.done)
	}()
	c.a, c.err = h.ask(q)
}

// store puts an answer in a shard whose lock is held, making room first:
// expired answers go, and if none has, arbitrary ones (map order is
// random).
func (h *Hook) store(sh *shard, k string, a answer) {
	if _, ok := sh.m[k]; !ok && len(sh.m) >= h.perShard {
		now := clock.Monotonic()
		n := 0
		for old, oa := range sh.m {
			if oa.expires <= now || n < 1 {
				delete(sh.m, old)
				n++
			}
			if n >= 16 {
				break
			}
		}
	}
	sh.m[k] = a
}

// settle counts a decision and turns a service failure into what
// on_error says.
func (h *Hook) settle(a answer, err error) (answer, error) {
	switch {
	case err == nil && a.err == nil:
		decided[resultAllowed].Inc()
	case err == nil:
		decided[resultRefused].Inc()
	case h.admit:
		decided[resultErrorAdmitted].Inc()
		return answer{}, nil
	default:
		decided[resultErrorRefused].Inc()
		return answer{}, ErrUnavailable
	}
	return a, nil
}
