package memory

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/chihaya/chihaya/internal/configtest"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/locality"
)

// TestDecodeConfigRejects: every rejected storage.config in testdata, with
// the exact error the registered driver gives (the daemon adds the line
// where this has none).
func TestDecodeConfigRejects(t *testing.T) {
	configtest.BadFiles(t, []configtest.Case{
		{File: "bad-unknown-key.yaml", Want: `line 3: unknown key "shard_cont" in storage.config (memory)`},
		{File: "bad-shard-count-zero.yaml", Want: "storage.config.shard_count: must be > 0, got 0"},
		{File: "bad-shard-count-huge.yaml", Want: "storage.config.shard_count: must be <= 1048576, got 2000000"},
		{File: "bad-shard-count-type.yaml", Want: "line 1: storage.config.shard_count: cannot unmarshal !!str `many` into an integer"},
		{File: "bad-gc-interval-type.yaml", Want: "line 1: storage.config.gc_interval: cannot unmarshal !!str `often` into a duration"},
		{File: "bad-gc-interval-negative.yaml", Want: "storage.config.gc_interval: must be >= 1s, got -1s"},
		{File: "bad-gc-interval-no-unit.yaml", Want: "storage.config.gc_interval: must be >= 1s, got 180ns (a number without a unit is read as nanoseconds; write e.g. 3m)"},
		{File: "bad-gc-interval-exceeds-lifetime.yaml", Want: "storage.config.gc_interval: must be <= peer_lifetime (31m0s), got 1h0m0s"},
		{File: "bad-peer-lifetime-subsecond.yaml", Want: "storage.config.peer_lifetime: must be >= 1s, got 500ms"},
		{File: "bad-reporting-interval-zero.yaml", Want: "storage.config.prometheus_reporting_interval: must be >= 100ms, got 0s"},
		{File: "bad-not-a-mapping.yaml", Want: "line 1: storage.config (memory): cannot unmarshal !!seq into a mapping"},
		{File: "bad-locality-prefix.yaml", Want: "storage.config.locality.ipv4_prefix: must be 1-32, got 40"},
		{File: "bad-locality-share.yaml", Want: "storage.config.locality.min_outside_share: must be between 0 and 1, got 1.5"},
		{File: "bad-locality-unknown-key.yaml", Want: `line 3: unknown key "enabeld" in storage.config.locality (memory)`},
		{File: "bad-locality-topology-missing.yaml", Want: "storage.config.locality.topology_file: testdata/no-such-topology.yaml: no such file or directory"},
		{File: "bad-snapshot-interval-no-unit.yaml", Want: "storage.config.snapshot_interval: must be >= 1s, got 300ns (a number without a unit is read as nanoseconds; write e.g. 3m)"},
		{File: "bad-snapshot-interval-zero.yaml", Want: "storage.config.snapshot_interval: must be >= 1s, got 0s"},
		{File: "bad-snapshot-path-type.yaml", Want: "line 1: storage.config.snapshot_path: cannot unmarshal !!seq into a string"},
		{File: "bad-snapshot-dir-missing.yaml", Want: "storage.config.snapshot_path: directory testdata/no-such-dir is not writable: no such file or directory"},
	}, func(b []byte) error {
		s, err := storage.New("memory", b)
		if err == nil {
			_ = s.Stop(context.Background())
		}
		return err
	})
}

func TestDecodeConfigAccepts(t *testing.T) {
	defaults := Config{}.WithDefaults()
	tests := []struct {
		name string
		yaml string
		want Config
	}{
		{"empty", "", defaults},
		{"null", "null", defaults},
		{"empty mapping", "{}", defaults},
		{"upstream example", mustRead(t, "testdata/good-upstream.yaml"), defaults},
		{"some keys", "shard_count: 16\ngc_interval: 1m\n", Config{
			GarbageCollectionInterval:   time.Minute,
			PeerLifetime:                storage.DefaultPeerLifetime,
			ShardCount:                  16,
			PrometheusReportingInterval: storage.DefaultPrometheusReportingInterval,
			Locality:                    locality.Config{}.WithDefaults(),
			SnapshotInterval:            DefaultSnapshotInterval,
		}},
		{"snapshots", "snapshot_path: /var/lib/chihaya/swarms.snap\nsnapshot_interval: 1m\n", Config{
			GarbageCollectionInterval:   storage.DefaultGarbageCollectionInterval,
			PeerLifetime:                storage.DefaultPeerLifetime,
			ShardCount:                  DefaultShardCount,
			PrometheusReportingInterval: storage.DefaultPrometheusReportingInterval,
			Locality:                    locality.Config{}.WithDefaults(),
			SnapshotPath:                "/var/lib/chihaya/swarms.snap",
			SnapshotInterval:            time.Minute,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := driver.Load([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	want := Config{
		GarbageCollectionInterval:   3 * time.Minute,
		PeerLifetime:                31 * time.Minute,
		ShardCount:                  1024,
		PrometheusReportingInterval: time.Second,
		Locality:                    locality.Config{IPv4Prefix: 24, IPv6Prefix: 64, MinOutsideShare: 0.1},
		SnapshotInterval:            5 * time.Minute,
	}
	if got := (Config{}).WithDefaults(); got != want {
		t.Fatalf("defaults %+v, want %+v", got, want)
	}
	set := Config{GarbageCollectionInterval: time.Minute, PeerLifetime: time.Hour, ShardCount: 8, PrometheusReportingInterval: 5 * time.Second,
		Locality: locality.Config{Enabled: true, IPv4Prefix: 16, IPv6Prefix: 48, MinOutsideShare: 0.25}, SnapshotPath: "s", SnapshotInterval: time.Hour}
	if got := set.WithDefaults(); got != set {
		t.Fatalf("WithDefaults changed set keys: %+v", got)
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	if _, err := New(Config{}); err == nil || err.Error() != "gc_interval: must be >= 1s, got 0s" {
		t.Fatalf("New(Config{}): %v", err)
	}
}

func TestRegisteredDriver(t *testing.T) {
	s, err := storage.New("memory", []byte("shard_count: 4\n"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	if _, ok := s.(*PeerStore); !ok {
		t.Fatalf("storage.New(memory) built a %T", s)
	}
	if n := len(s.(*PeerStore).shards); n != 4 {
		t.Fatalf("%d shards, want 4", n)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
