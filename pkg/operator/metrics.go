package operator

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// The routes requests are counted under.
var routes = []string{
	"api_stats", "api_torrents", "api_torrent", "api_approval", "api_other",
	"status_home", "status_torrent", "status_login", "status_logout", "status_approval", "status_other",
}

// The status codes the API and the page answer with.
var codes = []int{200, 303, 400, 401, 403, 404, 405, 409, 413, 429, 500, 501}

var requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: "chihaya",
	Subsystem: "operator",
	Name:      "requests_total",
	Help:      "Requests to the operator API and the status page, by route and status code.",
}, []string{"route", "code"})

func init() {
	prometheus.MustRegister(requestsTotal)
	for _, r := range routes {
		for _, c := range codes {
			requestsTotal.WithLabelValues(r, strconv.Itoa(c))
		}
	}
}

// recorder remembers the status code a handler wrote, to count it.
type recorder struct {
	http.ResponseWriter
	code int
}

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// counted wraps a handler so that its requests are counted under route.
func counted(route func(*http.Request) string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w}
		defer func() {
			code := rec.code
			if code == 0 {
				code = http.StatusOK
			}
			requestsTotal.WithLabelValues(route(r), strconv.Itoa(code)).Inc()
		}()
		h(rec, r)
	}
}
