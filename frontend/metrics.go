package frontend

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chihaya/chihaya/bittorrent"
)

// Action is what a request asked for; it is a metric label.
type Action uint8

// The actions a frontend serves.
const (
	Announce Action = iota
	Scrape
	Connect
	numActions
)

var actionNames = [numActions]string{"announce", "scrape", "connect"}

// String returns the action's label value.
func (a Action) String() string { return actionNames[a] }

// Result is how a request ended; it is a metric label.
type Result uint8

// The results of a request.
const (
	OK Result = iota
	ClientErr
	InternalErr
	numResults
)

var resultNames = [numResults]string{"ok", "client_error", "internal_error"}

var (
	requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "chihaya",
		Subsystem: "frontend",
		Name:      "requests_total",
		Help:      "Requests answered, by frontend, action, address family and result.",
	}, []string{"frontend", "action", "address_family", "result"})

	requestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "chihaya",
		Subsystem: "frontend",
		Name:      "request_duration_seconds",
		Help:      "Time to answer a request, by frontend, action and address family (only with enable_request_timing).",
		Buckets:   []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
	}, []string{"frontend", "action", "address_family"})

	errorsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "chihaya",
		Subsystem: "frontend",
		Name:      "errors_total",
		Help:      "Requests refused or dropped, by frontend and reason.",
	}, []string{"frontend", "reason"})
)

func init() {
	prometheus.MustRegister(requestsTotal, requestDuration, errorsTotal)
}

// Metrics holds one frontend's metric series, resolved once so that
// recording a request costs no label lookup and no allocation.
type Metrics struct {
	name     string
	requests [numActions][2][numResults]prometheus.Counter
	duration [numActions][2]prometheus.Observer
	timing   bool
	errors   sync.Map // reason → prometheus.Counter
}

// NewMetrics resolves the series of the frontend called name ("http",
// "udp") for the actions it serves: only those are exported, so that a
// dashboard shows no HTTP connects that cannot happen. With timing,
// ObserveRequest also records durations. Observing an action not listed
// panics.
func NewMetrics(name string, timing bool, actions ...Action) *Metrics {
	m := &Metrics{name: name, timing: timing}
	m.KnownErrors("refused", "internal", "panic")
	for _, a := range actions {
		for af := bittorrent.IPv4; af <= bittorrent.IPv6; af++ {
			for r := Result(0); r < numResults; r++ {
				m.requests[a][af][r] = requestsTotal.WithLabelValues(name, a.String(), af.String(), resultNames[r])
			}
			m.duration[a][af] = requestDuration.WithLabelValues(name, a.String(), af.String())
		}
	}
	return m
}

// ObserveRequest counts one answered request. err is what the logic or the
// parser returned (nil for success); start is when the request arrived, and
// is only read when timing is on.
func (m *Metrics) ObserveRequest(a Action, af bittorrent.AddressFamily, err error, start time.Time) {
	r := OK
	if err != nil {
		if _, ok := bittorrent.AsClientError(err); ok {
			r = ClientErr
		} else {
			r = InternalErr
		}
		m.ObserveError(ReasonOf(err))
	}
	m.requests[a][af&1][r].Inc()
	if m.timing {
		m.duration[a][af&1].Observe(time.Since(start).Seconds())
	}
}

// Timing reports whether request durations are recorded, so that a
// frontend only reads the clock when they are.
func (m *Metrics) Timing() bool { return m.timing }

// ObserveError counts one refused or dropped request under reason, which
// must come from a small fixed set (never an address or info hash).
func (m *Metrics) ObserveError(reason string) {
	c, ok := m.errors.Load(reason)
	if !ok {
		c, _ = m.errors.LoadOrStore(reason, errorsTotal.WithLabelValues(m.name, reason))
	}
	c.(prometheus.Counter).Inc()
}

// KnownErrors creates the series of the given error reasons at 0, so that
// a dashboard sees the first of each.
func (m *Metrics) KnownErrors(reasons ...string) {
	for _, r := range reasons {
		m.errors.LoadOrStore(r, errorsTotal.WithLabelValues(m.name, r))
	}
}

// reasons maps the core client errors to metric reasons. Hooks' errors are
// counted as "refused"; errors that are not ClientErrors as "internal".
var reasons = map[bittorrent.ClientError]string{
	bittorrent.ErrInvalidInfoHash:     "invalid_info_hash",
	bittorrent.ErrMissingInfoHash:     "missing_info_hash",
	bittorrent.ErrInvalidPeerID:       "invalid_peer_id",
	bittorrent.ErrMissingPeerID:       "missing_peer_id",
	bittorrent.ErrInvalidPort:         "invalid_port",
	bittorrent.ErrMissingPort:         "missing_port",
	bittorrent.ErrInvalidNumWant:      "invalid_numwant",
	bittorrent.ErrInvalidEvent:        "invalid_event",
	bittorrent.ErrInvalidLeft:         "invalid_left",
	bittorrent.ErrMissingLeft:         "missing_left",
	bittorrent.ErrInvalidUploaded:     "invalid_uploaded",
	bittorrent.ErrInvalidDownloaded:   "invalid_downloaded",
	bittorrent.ErrInvalidEscape:       "invalid_escape",
	bittorrent.ErrInvalidIP:           "invalid_ip",
	bittorrent.ErrInvalidQuery:        "invalid_query",
	bittorrent.ErrTooManyInfoHashes:   "too_many_info_hashes",
	bittorrent.ErrFullScrapeDisabled:  "full_scrape_disabled",
	bittorrent.ErrFullScrapeTooSoon:   "full_scrape_too_soon",
	bittorrent.ErrFullScrapeBusy:      "full_scrape_busy",
	bittorrent.ErrUnknownAddress:      "unknown_address",
	bittorrent.ErrInternal:            "internal",
	bittorrent.ErrMalformedRequest:    "malformed_request",
	bittorrent.ErrBadConnectionID:     "bad_connection_id",
	bittorrent.ErrUnknownAction:       "unknown_action",
	bittorrent.ErrUnsupportedProtocol: "unsupported_protocol",
}

// ReasonOf returns the metric reason for an error.
func ReasonOf(err error) string {
	if err == ErrPanic {
		return "panic"
	}
	ce, ok := bittorrent.AsClientError(err)
	if !ok {
		return "internal"
	}
	if r, ok := reasons[ce]; ok {
		return r
	}
	return "refused"
}
