package storage

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chihaya/chihaya/bittorrent"
)

var (
	peersGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "chihaya",
		Subsystem: "storage",
		Name:      "peers",
		Help:      "Peers stored, by address family and role (seeder, leecher).",
	}, []string{"address_family", "role"})

	swarmsGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "chihaya",
		Subsystem: "storage",
		Name:      "swarms",
		Help:      "Swarms with at least one peer, by address family; a swarm holding both native and WebSocket peers counts once per kind.",
	}, []string{"address_family"})

	gcDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "chihaya",
		Subsystem: "storage",
		Name:      "gc_duration_seconds",
		Help:      "Time taken by one collection of stale peers.",
		Buckets:   prometheus.ExponentialBuckets(0.0001, 4, 10),
	})

	gcPeersTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "chihaya",
		Subsystem: "storage",
		Name:      "gc_collected_peers_total",
		Help:      "Stale peers removed by garbage collection.",
	})

	errorsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "chihaya",
		Subsystem: "storage",
		Name:      "errors_total",
		Help:      "Storage operations that failed, by operation.",
	}, []string{"operation"})
)

// Operations are the values of the `operation` label of
// chihaya_storage_errors_total that drivers count failures under.
var Operations = []string{"put", "graduate", "delete", "announce", "scrape", "gc", "stats"}

func init() {
	prometheus.MustRegister(peersGauge, swarmsGauge, gcDuration, gcPeersTotal, errorsTotal)
	// Every known series exists from the start, at 0, so that increase()
	// sees the first error and a dashboard shows 0 rather than nothing.
	for _, op := range Operations {
		errorsTotal.WithLabelValues(op)
	}
	ReportStats(Stats{})
}

// ReportStats sets the storage gauges from a store's totals. Drivers call
// it every prometheus_reporting_interval.
func ReportStats(s Stats) {
	for af := bittorrent.IPv4; af <= bittorrent.IPv6; af++ {
		swarmsGauge.WithLabelValues(af.String()).Set(float64(s.Swarms[af]))
		peersGauge.WithLabelValues(af.String(), "seeder").Set(float64(s.Seeders[af]))
		peersGauge.WithLabelValues(af.String(), "leecher").Set(float64(s.Leechers[af]))
	}
}

// ObserveGC records one garbage collection: how long it took in seconds
// and how many peers it removed.
func ObserveGC(seconds float64, collected int) {
	gcDuration.Observe(seconds)
	gcPeersTotal.Add(float64(collected))
}

// ObserveError counts one failed storage operation, one of Operations.
// The driver counts its own failures, once each; its callers do not count
// them again.
func ObserveError(operation string) {
	errorsTotal.WithLabelValues(operation).Inc()
}
