package memory

import (
	"time"

	"github.com/chihaya/chihaya/pkg/yamlconf"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/locality"
)

// The defaults of the memory driver's own keys, as in upstream Chihaya's
// example configuration; those of the keys every driver has are the
// storage package's.
const (
	DefaultShardCount       = 1024
	DefaultSnapshotInterval = 5 * time.Minute
)

// MinReportingInterval bounds prometheus_reporting_interval from below.
const MinReportingInterval = 100 * time.Millisecond

// MaxShardCount bounds shard_count: each shard costs its lock and table
// (256 bytes) even when empty, and beyond this the shards outnumber any
// real swarm count.
const MaxShardCount = 1 << 20

// Config is the `storage.config` mapping of the memory driver.
type Config struct {
	// GarbageCollectionInterval is how often stale peers are collected.
	GarbageCollectionInterval time.Duration `yaml:"gc_interval"`
	// PeerLifetime is how long a peer that has not announced is kept. It
	// must exceed the announce interval told to clients, or peers that
	// announce on time are dropped between their announces.
	PeerLifetime time.Duration `yaml:"peer_lifetime"`
	// ShardCount is the number of independently locked parts the swarms
	// are split into, by info hash.
	ShardCount int `yaml:"shard_count"`
	// PrometheusReportingInterval is how often the swarm and peer gauges
	// are refreshed.
	PrometheusReportingInterval time.Duration `yaml:"prometheus_reporting_interval"`
	// Locality, when enabled, answers announces from the announcer's own
	// subnet or rack first (docs/locality.md).
	Locality locality.Config `yaml:"locality"`
	// SnapshotPath is the file the swarms are written to every
	// SnapshotInterval and at shutdown, and read back from at start; empty
	// turns snapshots off.
	SnapshotPath string `yaml:"snapshot_path"`
	// SnapshotInterval is how often a snapshot is written.
	SnapshotInterval time.Duration `yaml:"snapshot_interval"`
	// KeepPeerIDs keeps each peer's 20-byte peer ID, so that non-compact
	// HTTP replies carry it. Without it a peer is known by its address
	// and port alone, as opentracker does, at 8 bytes an IPv4 peer's
	// record instead of 28, and non-compact replies leave `peer id` out.
	// WebSocket peers keep their IDs either way.
	KeepPeerIDs bool `yaml:"keep_peer_ids"`
}

// WithDefaults returns the config with every unset (zero) key given its
// default. The driver decodes YAML over the defaults instead, so that a key
// written as 0 is rejected by Validate rather than silently replaced.
func (c Config) WithDefaults() Config {
	if c.GarbageCollectionInterval == 0 {
		c.GarbageCollectionInterval = storage.DefaultGarbageCollectionInterval
	}
	if c.PeerLifetime == 0 {
		c.PeerLifetime = storage.DefaultPeerLifetime
	}
	if c.ShardCount == 0 {
		c.ShardCount = DefaultShardCount
	}
	if c.PrometheusReportingInterval == 0 {
		c.PrometheusReportingInterval = storage.DefaultPrometheusReportingInterval
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = DefaultSnapshotInterval
	}
	c.Locality = c.Locality.WithDefaults()
	return c
}

// Validate reports the first invalid key, naming it relative to
// storage.config (the registry puts "storage.config" in front).
func (c Config) Validate() error {
	switch {
	// Last-seen times are kept in whole seconds, so finer durations mean
	// nothing; they are also what a duration written without a unit (read
	// as nanoseconds) turns into.
	case c.GarbageCollectionInterval < time.Second:
		return yamlconf.Errorf("gc_interval", "must be >= 1s, got %s%s", c.GarbageCollectionInterval, unitHint(c.GarbageCollectionInterval))
	case c.PeerLifetime < time.Second:
		return yamlconf.Errorf("peer_lifetime", "must be >= 1s, got %s%s", c.PeerLifetime, unitHint(c.PeerLifetime))
	case c.GarbageCollectionInterval > c.PeerLifetime:
		// Otherwise a stale peer outlives peer_lifetime by up to a whole
		// gc_interval, and peer_lifetime stops meaning what it says.
		return yamlconf.Errorf("gc_interval", "must be <= peer_lifetime (%s), got %s", c.PeerLifetime, c.GarbageCollectionInterval)
	case c.ShardCount <= 0:
		return yamlconf.Errorf("shard_count", "must be > 0, got %d", c.ShardCount)
	case c.ShardCount > MaxShardCount:
		return yamlconf.Errorf("shard_count", "must be <= %d, got %d", MaxShardCount, c.ShardCount)
	case c.PrometheusReportingInterval < MinReportingInterval:
		// Each report takes every shard's lock once.
		return yamlconf.Errorf("prometheus_reporting_interval", "must be >= %s, got %s%s", MinReportingInterval, c.PrometheusReportingInterval, unitHint(c.PrometheusReportingInterval))
	case c.SnapshotInterval < time.Second && (c.SnapshotPath != "" || c.SnapshotInterval != 0):
		// A snapshot copies every swarm: more often than every second is
		// a mistake, most likely a number without a unit. (Unset, in a
		// Config built in Go without snapshots, it is not used.)
		return yamlconf.Errorf("snapshot_interval", "must be >= 1s, got %s%s", c.SnapshotInterval, unitHint(c.SnapshotInterval))
	}
	return yamlconf.Under(c.Locality.Validate(), "locality")
}

// unitHint explains the likely cause of a tiny positive duration.
func unitHint(d time.Duration) string {
	if d > 0 && d < time.Microsecond {
		return " (a number without a unit is read as nanoseconds; write e.g. 3m)"
	}
	return ""
}

// check is the driver's Check, for `chihaya validate`: what New checks
// beyond Validate, without reading a snapshot or writing one.
func check(c Config) error {
	if c.Locality.Enabled {
		if _, err := locality.Load(c.Locality); err != nil {
			return yamlconf.Under(err, "locality")
		}
	}
	if c.SnapshotPath != "" {
		return checkSnapshotDir(c.SnapshotPath)
	}
	return nil
}
