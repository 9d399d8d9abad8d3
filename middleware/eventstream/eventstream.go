// Package eventstream implements the `event stream` posthook: after each
// announce is answered, it queues an event describing it, and a worker
// delivers the events in batches to a system the operator already runs: a
// Redis Stream or an HTTP endpoint taking NDJSON.
package eventstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/middleware"
	"github.com/chihaya/chihaya/pkg/clock"
	"github.com/chihaya/chihaya/pkg/query"
	"github.com/chihaya/chihaya/pkg/webhook"
	"github.com/chihaya/chihaya/pkg/yamlconf"
)

// Name is the name operators write in the `posthooks` list.
const Name = "event stream"

// Results of an event, the `result` label of the events metric.
const (
	resultDelivered = "delivered"
	resultQueueFull = "dropped_queue_full"
	resultRejected  = "dropped_rejected"
	resultShutdown  = "dropped_shutdown"
)

var (
	events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "chihaya", Subsystem: "middleware",
		Name: "event_stream_events_total",
		Help: "Announce events of the event stream hook, by result (delivered, dropped_queue_full, dropped_rejected, dropped_shutdown).",
	}, []string{"result"})
	batches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "chihaya", Subsystem: "middleware",
		Name: "event_stream_batches_total",
		Help: "Batch writes of the event stream hook, by sink (redis, http) and result (ok, error); a batch that failed is retried.",
	}, []string{"sink", "result"})
	writeDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "chihaya", Subsystem: "middleware",
		Name:    "event_stream_write_duration_seconds",
		Help:    "Time one batch write of the event stream hook took, failures included.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"sink"})
	queued = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "chihaya", Subsystem: "middleware",
		Name: "event_stream_queued_events",
		Help: "Events waiting in the event stream hook's queue, as of its last batch.",
	})

	droppedFull     prometheus.Counter
	droppedShutdown prometheus.Counter
)

func init() {
	prometheus.MustRegister(events, batches, writeDuration, queued)
	for _, r := range []string{resultDelivered, resultQueueFull, resultRejected, resultShutdown} {
		events.WithLabelValues(r)
	}
	droppedFull = events.WithLabelValues(resultQueueFull)
	droppedShutdown = events.WithLabelValues(resultShutdown)
	for _, s := range []string{"redis", "http"} {
		writeDuration.WithLabelValues(s)
		for _, r := range []string{"ok", "error"} {
			batches.WithLabelValues(s, r)
		}
	}
	middleware.Register(plugin)
}

// plugin decodes the hook's options and builds it. New connects to
// nothing (the Redis client dials on first use), so validating may build
// it.
var plugin = middleware.Plugin[Config]{
	Name:     Name,
	Defaults: Config.WithDefaults,
	New:      func(c Config) (middleware.Hook, error) { return New(c) },
}

// Event is one announce as sinks receive it: the announce's fields (as
// the `http approval` hook sends them), when the tracker answered it, and
// which tracker did. Uploaded and Downloaded are the client's totals for
// this torrent since it started, not deltas.
type Event struct {
	middleware.AnnounceFields
	Time     time.Time `json:"time"`
	Instance string    `json:"instance"`
}

// maxRoute is the number of route parameters an event carries.
const maxRoute = 4

// pending is an event as queued on the reply path: copied, not encoded.
// The strings are the request's own (a frontend never reuses a string's
// bytes), so copying them copies two words.
type pending struct {
	ih         bittorrent.InfoHash
	peer       bittorrent.Peer
	event      bittorrent.Event
	left       uint64
	uploaded   uint64
	downloaded uint64
	nanos      int64
	query      string
	route      [maxRoute]string
	hasRoute   uint8
}

// sink writes batches of events.
type sink interface {
	name() string
	write(ctx context.Context, evs []Event) error
	close()
}

// errRejected is a batch the sink will never take (an HTTP 3xx or 4xx): it is
// dropped instead of retried.
var errRejected = errors.New("rejected")

// Hook queues announce events and delivers them.
type Hook struct {
	cfg        Config
	desc       *middleware.Describer
	routeNames []string
	q          chan pending
	sink       sink

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	// stopped is set by Stop: a reload stops the hooks it replaces while
	// requests that loaded the old chain may still be running it, and
	// their events would otherwise wait in a queue nobody reads.
	stopped atomic.Bool
	logged  atomic.Int64
	// vals parses queued events' queries in the worker.
	vals query.Values
	// stopBy bounds the delivery of what is queued at stop; only the
	// worker reads and writes it.
	stopBy time.Time
}

var (
	_ middleware.Hook     = (*Hook)(nil)
	_ middleware.Stopper  = (*Hook)(nil)
	_ middleware.Reloader = (*Hook)(nil)
)

// New builds the hook from a validated config and starts its worker.
func New(cfg Config) (*Hook, error) {
	desc, err := middleware.NewDescriber(cfg.Routes, cfg.Redact)
	if err != nil {
		return nil, err
	}
	h := &Hook{
		cfg:  cfg,
		desc: desc,
		q:    make(chan pending, cfg.QueueSize),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	h.routeNames = desc.RouteParams()
	if len(h.routeNames) > maxRoute {
		h.routeNames = h.routeNames[:maxRoute]
	}
	switch cfg.Sink {
	case "redis":
		opts, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, yamlconf.Errorf("redis_url", "%v", err)
		}
		opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = cfg.Timeout, cfg.Timeout, cfg.Timeout
		opts.MaxRetries = -1 // the worker retries whole batches, with backoff
		opts.PoolSize = 2
		h.sink = &redisSink{c: redis.NewClient(opts), stream: cfg.Stream, maxLen: cfg.MaxLen}
	case "http":
		s := &httpSink{ep: webhook.Endpoint{
			URL: cfg.URL, SecretFile: cfg.SecretFile,
			TLS:      webhook.TLS{CAFile: cfg.TLSCAFile, CertFile: cfg.TLSCertFile, KeyFile: cfg.TLSKeyFile},
			MaxConns: 2, Timeout: cfg.Timeout,
		}}
		if err := s.ep.Open(); err != nil {
			return nil, err // keyed by Open
		}
		h.sink = s
	}
	go h.run()
	return h, nil
}

// HandleAnnounce queues the announce's event. It never waits: when the
// queue is full the event is dropped and counted.
func (h *Hook) HandleAnnounce(_ context.Context, req *bittorrent.AnnounceRequest, _ *bittorrent.AnnounceResponse) error {
	if h.stopped.Load() {
		droppedShutdown.Inc()
		return nil
	}
	p := pending{
		ih:         req.InfoHash,
		peer:       req.Peer,
		event:      req.Event,
		left:       req.Left,
		uploaded:   req.Uploaded,
		downloaded: req.Downloaded,
		nanos:      clock.UnixNano(),
		query:      req.Params.RawQuery(),
	}
	for i, n := range h.routeNames {
		if v, ok := h.desc.RouteParam(req.Params, n); ok {
			p.route[i] = v
			p.hasRoute |= 1 << i
		}
	}
	select {
	case h.q <- p:
	default:
		droppedFull.Inc()
	}
	return nil
}

// Reload reads the HTTP sink's secret_file and TLS files again (a rotated
// secret or client certificate); what is queued is kept. On error the hook
// keeps what it had. The Redis sink has no files.
func (h *Hook) Reload() error {
	if s, ok := h.sink.(*httpSink); ok {
		return s.ep.Reload()
	}
	return nil
}

// HandleScrape does nothing: the stream carries announces.
func (h *Hook) HandleScrape(context.Context, *bittorrent.ScrapeRequest, *bittorrent.ScrapeResponse) error {
	return nil
}

// Stop delivers what is queued (one attempt, bounded by timeout), drops
// and counts what cannot be, and closes the sink. An announce handed to
// the hook after Stop (a request still running the chain a reload
// replaced) is dropped and counted as dropped_shutdown.
func (h *Hook) Stop() {
	h.stopOnce.Do(func() {
		h.stopped.Store(true)
		close(h.stop)
	})
	<-h.done
}

// run is the worker: it collects batches and delivers them.
func (h *Hook) run() {
	defer close(h.done)
	defer h.sink.close()
	batch := make([]pending, 0, h.cfg.BatchSize)
	tick := time.NewTicker(h.cfg.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case p := <-h.q:
			batch = append(batch, p)
			if len(batch) >= h.cfg.BatchSize {
				h.deliver(batch)
				batch = batch[:0]
			}
		case <-tick.C:
			if len(batch) > 0 {
				h.deliver(batch)
				batch = batch[:0]
			}
		case <-h.stop:
			// What is queued gets one attempt per batch, all within one
			// timeout: a sink that is down must not hold the shutdown
			// (or a reload that replaces this hook) for long. Once a write
			// fails, the rest is dropped and counted.
			if h.stopBy.IsZero() {
				h.stopBy = time.Now().Add(h.cfg.Timeout)
			}
			for {
				select {
				case p := <-h.q:
					batch = append(batch, p)
					if len(batch) < h.cfg.BatchSize {
						continue
					}
				default:
				}
				if len(batch) == 0 {
					return
				}
				if !h.deliver(batch) {
					n := len(batch) + len(h.q)
					for len(h.q) > 0 {
						<-h.q
					}
					events.WithLabelValues(resultShutdown).Add(float64(n - len(batch)))
					return
				}
				batch = batch[:0]
			}
		}
	}
}

// deliver writes a batch, retrying with backoff until it is written, the
// sink rejects it, or the hook stops (then one last attempt is made, by
// stopBy). It reports whether the batch was written.
func (h *Hook) deliver(batch []pending) bool {
	evs := make([]Event, len(batch))
	for i := range batch {
		evs[i] = h.event(&batch[i])
	}
	backoff := 100 * time.Millisecond
	stopping := false
	for {
		select {
		case <-h.stop:
			stopping = true
			if h.stopBy.IsZero() {
				h.stopBy = time.Now().Add(h.cfg.Timeout)
			}
		default:
		}
		deadline := time.Now().Add(h.cfg.Timeout)
		if stopping && h.stopBy.Before(deadline) {
			deadline = h.stopBy
		}
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		start := time.Now()
		err := h.sink.write(ctx, evs)
		cancel()
		writeDuration.WithLabelValues(h.sink.name()).Observe(time.Since(start).Seconds())
		queued.Set(float64(len(h.q)))
		if err == nil {
			batches.WithLabelValues(h.sink.name(), "ok").Inc()
			events.WithLabelValues(resultDelivered).Add(float64(len(evs)))
			return true
		}
		batches.WithLabelValues(h.sink.name(), "error").Inc()
		h.logError(err, len(evs))
		if errors.Is(err, errRejected) {
			events.WithLabelValues(resultRejected).Add(float64(len(evs)))
			return !stopping
		}
		if stopping {
			events.WithLabelValues(resultShutdown).Add(float64(len(evs)))
			return false
		}
		select {
		case <-time.After(backoff):
		case <-h.stop:
		}
		if backoff *= 2; backoff > h.cfg.MaxBackoff {
			backoff = h.cfg.MaxBackoff
		}
	}
}

// event encodes a queued event.
func (h *Hook) event(p *pending) Event {
	v := &h.vals             // the worker's own, reused
	_ = v.Parse("", p.query) // the frontend has parsed it already
	for i, n := range h.routeNames {
		if p.hasRoute&(1<<i) != 0 {
			v.SetRouteParam(n, p.route[i])
		}
	}
	req := bittorrent.AnnounceRequest{
		InfoHash: p.ih, Peer: p.peer, Event: p.event,
		Left: p.left, Uploaded: p.uploaded, Downloaded: p.downloaded,
		Params: v,
	}
	e := Event{AnnounceFields: h.desc.Announce(&req), Time: time.Unix(0, p.nanos).UTC(), Instance: h.cfg.Instance}
	v.Reset()
	return e
}

// logError logs a failed batch at most once a second.
func (h *Hook) logError(err error, n int) {
	now := clock.Monotonic()
	last := h.logged.Load()
	if now-last < int64(time.Second) || !h.logged.CompareAndSwap(last, now) {
		return
	}
	logrus.WithError(err).WithFields(logrus.Fields{"hook": Name, "sink": h.sink.name(), "events": n, "queued": len(h.q)}).Error("event stream: batch not written; retrying unless rejected (logged at most once a second)")
}

// redisSink appends events to a Redis Stream, one XADD per event, a batch
// in one pipeline.
type redisSink struct {
	c      *redis.Client
	stream string
	maxLen int64
}

func (s *redisSink) name() string { return "redis" }
func (s *redisSink) close()       { s.c.Close() }

func (s *redisSink) write(ctx context.Context, evs []Event) error {
	pipe := s.c.Pipeline()
	for i := range evs {
		e := &evs[i]
		params := appendParams(nil, e.Params)
		pipe.XAdd(ctx, &redis.XAddArgs{
			Stream: s.stream,
			MaxLen: s.maxLen,
			Approx: true,
			Values: []any{
				"action", e.Action,
				"info_hash", e.InfoHash,
				"peer_id", e.PeerID,
				"ip", e.IP,
				"port", strconv.Itoa(int(e.Port)),
				"event", e.Event,
				"left", strconv.FormatUint(e.Left, 10),
				"uploaded", strconv.FormatUint(e.Uploaded, 10),
				"downloaded", strconv.FormatUint(e.Downloaded, 10),
				"time", e.Time.Format(time.RFC3339Nano),
				"instance", e.Instance,
				"params", string(params),
			},
		})
	}
	_, err := pipe.Exec(ctx)
	if err != nil {
		return fmt.Errorf("event stream: redis: %w", err)
	}
	return nil
}

// ReadBatch decodes a batch as the http sink POSTs it
// (application/x-ndjson, one Event a line), for a receiver written in Go;
// check its signature first (webhook.Verify). It stops at the first line
// that is not an Event, returning those before it.
func ReadBatch(body []byte) ([]Event, error) {
	var evs []Event
	dec := json.NewDecoder(bytes.NewReader(body))
	for dec.More() {
		var e Event
		if err := dec.Decode(&e); err != nil {
			return evs, fmt.Errorf("event stream: batch line %d: %w", len(evs)+1, err)
		}
		evs = append(evs, e)
	}
	return evs, nil
}

// httpSink POSTs a batch as NDJSON, one event a line.
type httpSink struct {
	ep webhook.Endpoint
}

func (s *httpSink) name() string { return "http" }
func (s *httpSink) close()       { s.ep.Close() }

func (s *httpSink) write(ctx context.Context, evs []Event) error {
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	for i := range evs {
		if err := enc.Encode(&evs[i]); err != nil {
			return fmt.Errorf("event stream: http: %w", err)
		}
	}
	resp, err := s.ep.Post(ctx, "application/x-ndjson", "chihaya event stream", body.Bytes())
	if err != nil {
		return fmt.Errorf("event stream: http: %w", err)
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 300 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests:
		// A redirect (never followed) or a refusal will not change by
		// retrying; the batch is dropped and counted.
		return fmt.Errorf("event stream: http: status %d: %w", resp.StatusCode, errRejected)
	default:
		return fmt.Errorf("event stream: http: status %d", resp.StatusCode)
	}
}

// appendParams appends params as a JSON object, keys sorted, as
// encoding/json would write it but without reflection: the Redis sink
// writes one per event.
func appendParams(dst []byte, params map[string]string) []byte {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, k)
		dst = append(dst, ':')
		dst = appendJSONString(dst, params[k])
	}
	return append(dst, '}')
}

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 replaced by U+FFFD.
func appendJSONString(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, "\\ufffd"...)
		} else {
			dst = append(dst, s[i:i+n]...)
		}
		i += n
	}
	return append(dst, '"')
}
