package memory

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/internal/eventually"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/storagetest"
)

// TestBackgroundWork checks what the store does on its own: stale peers go
// without anyone calling CollectGarbage, the gauges follow the store, and
// Stop ends both.
func TestBackgroundWork(t *testing.T) {
	s, err := New(Config{
		GarbageCollectionInterval:   time.Second,
		PeerLifetime:                time.Second,
		ShardCount:                  2,
		PrometheusReportingInterval: MinReportingInterval,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })

	ih := storagetest.InfoHash(1)
	if err := s.PutSeeder(ih, storagetest.Peer6(1)); err != nil {
		t.Fatal(err)
	}
	// Waits for an effect, not for a duration: the deadline only bounds a
	// broken store.
	eventually.True(t, "the IPv6 seeder gauge to read 1", func() bool {
		return gauge(t, "chihaya_storage_peers", "IPv6", "seeder") == 1
	})
	eventually.True(t, "the stale seeder to be collected", func() bool {
		c, _ := s.ScrapeSwarm(ih, bittorrent.IPv6)
		return c.Seeders == 0
	})
	eventually.True(t, "the IPv6 seeder gauge to read 0", func() bool {
		return gauge(t, "chihaya_storage_peers", "IPv6", "seeder") == 0
	})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := s.Ready(ctx); err == nil {
		t.Fatal("Ready after Stop: no error")
	}
}

func storagetestStop(t testing.TB, s storage.PeerStore) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

// gauge reads a storage gauge by its label values (address_family, then
// role when the metric has one).
func gauge(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	families, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			matched := 0
			for _, l := range m.GetLabel() {
				for _, want := range labels {
					if l.GetValue() == want {
						matched++
					}
				}
			}
			if matched == len(labels) {
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}
