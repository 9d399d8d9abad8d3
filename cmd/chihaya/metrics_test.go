package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chihaya/chihaya/frontend"
	"github.com/chihaya/chihaya/internal/daemontest"
	"github.com/chihaya/chihaya/storage"
)

// probe is a collector whose only descriptor has a given name. Registering
// it fails exactly when a metric of that name is already registered, which
// tells whether a metric exists even when it has no series yet (a vector
// nobody has touched).
type probe struct{ desc *prometheus.Desc }

func (p probe) Describe(ch chan<- *prometheus.Desc) { ch <- p.desc }
func (p probe) Collect(chan<- prometheus.Metric)    {}

func registered(name string) bool {
	p := probe{prometheus.NewDesc(name, "probe for the metrics reference test", []string{"probe_label"}, nil)}
	if err := prometheus.DefaultRegisterer.Register(p); err != nil {
		return true
	}
	prometheus.DefaultRegisterer.Unregister(p)
	return false
}

// touchMetrics makes the packages' metric vectors grow series, so that a
// gather sees them: it runs the tracker in-process and sends it traffic,
// and records through the packages' exported helpers.
func touchMetrics(t *testing.T) {
	t.Helper()
	s := startInProcess(t, writeConfig(t, daemonConfig), nil)
	udpConnect(t, s.Addr("udp"))
	if a := s.Addr("http"); a != "" {
		daemontest.Get(t, "http://"+a+"/announce")
	}

	frontend.NewMetrics("http", true).ObserveError("test")
	storage.ReportStats(storage.Stats{})
	storage.ObserveGC(0, 0)
	storage.ObserveError("test")
}

func TestMetricsDocumented(t *testing.T) {
	b, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `(chihaya_[a-z0-9_]+)` \\|")
	documented := map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(string(b), -1) {
		documented[m[1]] = true
	}
	if len(documented) == 0 {
		t.Fatal("docs/metrics.md documents no metric")
	}

	touchMetrics(t)
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	gathered := 0
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "chihaya_") {
			continue
		}
		gathered++
		if !documented[f.GetName()] {
			t.Errorf("metric %s (%s) is not in docs/metrics.md", f.GetName(), f.GetHelp())
		}
	}
	if gathered == 0 {
		t.Error("gathered no chihaya_ metric")
	}
	for name := range documented {
		if !registered(name) {
			t.Errorf("docs/metrics.md documents %s, which no package registers", name)
		}
	}
}

func TestRegisteredProbe(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"chihaya_frontend_requests_total", true},
		{"chihaya_storage_gc_duration_seconds", true},
		{"chihaya_no_such_metric_total", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := registered(tt.name); got != tt.want {
				t.Errorf("registered(%s) = %v, want %v", tt.name, got, tt.want)
			}
		})
	}
}
