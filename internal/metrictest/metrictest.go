// Package metrictest reads what a package registered with the default
// Prometheus registry, as a scrape would see it, for tests that check what
// is counted. A running daemon's metrics are read over HTTP instead, by
// daemontest's Metric.
package metrictest

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Sum returns the sum of the samples (counters, gauges, untyped) of the
// metric named name in the default registry whose labels include labels
// (nil: every sample); 0 when there is none.
func Sum(name string, labels map[string]string) (float64, error) {
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		return 0, err
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	samples:
		for _, m := range mf.GetMetric() {
			have := make(map[string]string, len(m.GetLabel()))
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue samples
				}
			}
			switch {
			case m.Counter != nil:
				total += m.GetCounter().GetValue()
			case m.Gauge != nil:
				total += m.GetGauge().GetValue()
			case m.Untyped != nil:
				total += m.GetUntyped().GetValue()
			}
		}
	}
	return total, nil
}

// Value is Sum for a test, which fails if the registry cannot be read.
func Value(t testing.TB, name string, labels map[string]string) float64 {
	t.Helper()
	v, err := Sum(name, labels)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
