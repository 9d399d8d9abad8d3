package redis

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/chihaya/chihaya/pkg/yamlconf"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/locality"
)

// The defaults of the redis driver's own keys (those of the keys every
// driver has are the storage package's). The Redis timeouts are
// far shorter than upstream's 15s: a tracker client gives up on a request
// long before that, so during an outage waiting only holds goroutines and
// sockets, while a healthy Redis answers in well under a millisecond.
const (
	DefaultRedisBroker            = "redis://127.0.0.1:6379/0"
	DefaultRedisReadTimeout       = time.Second
	DefaultRedisWriteTimeout      = time.Second
	DefaultRedisConnectTimeout    = time.Second
	DefaultMaxIdle                = 32
	DefaultMaxActive              = 128
	DefaultKeyPrefix              = "chihaya:"
	DefaultRelayHeartbeatInterval = time.Second
	DefaultRelayInstanceTimeout   = 10 * time.Second
)

// Config is the `storage.config` mapping of the redis driver.
type Config struct {
	// GarbageCollectionInterval is how often stale peers are collected.
	// With several trackers on one Redis, only one of them collects per
	// interval.
	GarbageCollectionInterval time.Duration `yaml:"gc_interval"`
	// PeerLifetime is how long a peer that has not announced is kept.
	PeerLifetime time.Duration `yaml:"peer_lifetime"`
	// PrometheusReportingInterval is how often the swarm and peer gauges
	// are refreshed from Redis.
	PrometheusReportingInterval time.Duration `yaml:"prometheus_reporting_interval"`

	// RedisBroker is redis://[[user]:password@]host:port/db, or rediss://
	// for TLS. With Sentinel its host:port is ignored: the master is asked
	// of the sentinels, and the password, database and scheme still apply.
	RedisBroker string `yaml:"redis_broker"`
	// RedisReadTimeout, RedisWriteTimeout and RedisConnectTimeout bound
	// each exchange with Redis, so an outage turns into fast failures.
	RedisReadTimeout    time.Duration `yaml:"redis_read_timeout"`
	RedisWriteTimeout   time.Duration `yaml:"redis_write_timeout"`
	RedisConnectTimeout time.Duration `yaml:"redis_connect_timeout"`

	// MaxIdle is how many idle connections the pool keeps open.
	MaxIdle int `yaml:"redis_max_idle"`
	// MaxActive caps the connections open at once; a request that finds
	// them all busy waits up to redis_connect_timeout for one.
	MaxActive int `yaml:"redis_max_active"`
	// TLSCAPath is a PEM file of the CAs that sign the Redis server's
	// certificate (rediss:// only); empty uses the system's roots.
	TLSCAPath string `yaml:"redis_tls_ca_path"`

	// SentinelAddrs are host:port of Redis Sentinels; when set, the master
	// named SentinelMasterName is found through them and found again after
	// a failover.
	SentinelAddrs      []string `yaml:"sentinel_addrs"`
	SentinelMasterName string   `yaml:"sentinel_master_name"`
	// SentinelPassword authenticates to the sentinels (requirepass of
	// sentinel.conf), which is separate from the master's password.
	SentinelPassword string `yaml:"sentinel_password"`

	// ClusterAddrs are host:port of some nodes of a Redis Cluster (seeds:
	// the driver learns the others from them); when set, the driver runs in
	// Cluster mode, with every swarm's keys in one hash slot. The host and
	// port of redis_broker are then ignored; its password and scheme still
	// apply, and its database must be 0 (a cluster has no other).
	ClusterAddrs []string `yaml:"cluster_addrs"`

	// KeyPrefix starts every key the driver writes, so that several
	// trackers (or other programs) can share one Redis database.
	KeyPrefix string `yaml:"key_prefix"`

	// KeepPeerIDs stores each native peer's 20-byte peer ID, so that
	// non-compact HTTP replies carry `peer id`. Off (the default, as the
	// memory driver's), a peer is stored as its address and port and
	// its last-seen stamp alone: 24 bytes of Redis a peer less, and
	// replies carry zero IDs (left out of non-compact replies).
	// WebSocket peers keep their IDs either way (offers are addressed by
	// them).
	KeepPeerIDs bool `yaml:"keep_peer_ids"`

	// Locality, when enabled, answers announces from the announcer's own
	// subnet or rack first (docs/locality.md). Every tracker sharing the
	// Redis must have the same locality settings.
	Locality locality.Config `yaml:"locality"`

	// RelayHeartbeatInterval is how often an instance that runs the
	// WebSocket frontend tells the others it is alive (and looks for
	// instances that stopped telling). Only used with the WebSocket
	// frontend.
	RelayHeartbeatInterval time.Duration `yaml:"relay_heartbeat_interval"`
	// RelayInstanceTimeout is how long an instance may stay silent before
	// the others hold it gone: offers for its browsers are dropped, and
	// its browsers leave their swarms.
	RelayInstanceTimeout time.Duration `yaml:"relay_instance_timeout"`
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
	if c.PrometheusReportingInterval == 0 {
		c.PrometheusReportingInterval = storage.DefaultPrometheusReportingInterval
	}
	if c.RedisBroker == "" {
		c.RedisBroker = DefaultRedisBroker
	}
	if c.RedisReadTimeout == 0 {
		c.RedisReadTimeout = DefaultRedisReadTimeout
	}
	if c.RedisWriteTimeout == 0 {
		c.RedisWriteTimeout = DefaultRedisWriteTimeout
	}
	if c.RedisConnectTimeout == 0 {
		c.RedisConnectTimeout = DefaultRedisConnectTimeout
	}
	if c.MaxIdle == 0 {
		c.MaxIdle = DefaultMaxIdle
	}
	if c.MaxActive == 0 {
		c.MaxActive = DefaultMaxActive
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = DefaultKeyPrefix
	}
	if c.RelayHeartbeatInterval == 0 {
		c.RelayHeartbeatInterval = DefaultRelayHeartbeatInterval
	}
	if c.RelayInstanceTimeout == 0 {
		c.RelayInstanceTimeout = DefaultRelayInstanceTimeout
	}
	c.Locality = c.Locality.WithDefaults()
	return c
}

// broker is the parsed redis_broker.
type broker struct {
	tls      bool
	addr     string // host:port
	host     string
	user     string
	password string
	db       int
}

// parseBroker parses redis_broker. Its errors never repeat the URL, which
// may hold a password.
func parseBroker(s string) (broker, error) {
	u, err := url.Parse(s)
	if err != nil {
		return broker{}, errors.New("not a URL")
	}
	var b broker
	switch u.Scheme {
	case "redis":
	case "rediss":
		b.tls = true
	default:
		return broker{}, fmt.Errorf("scheme must be redis or rediss, got %q", u.Scheme)
	}
	if u.Opaque != "" || u.Host == "" {
		return broker{}, errors.New("must be redis://[:password@]host:port/db")
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		host, port = u.Hostname(), "6379"
	}
	if host == "" {
		return broker{}, errors.New("missing host")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return broker{}, fmt.Errorf("port must be 1-65535, got %q", port)
	}
	b.host = host
	b.addr = net.JoinHostPort(host, port)
	if u.User != nil {
		// As redis-cli and upstream read it: user:password, :password, or a
		// lone word which is a password (upstream's own example,
		// redis://myRedis@host, is one).
		if pw, ok := u.User.Password(); ok {
			b.user, b.password = u.User.Username(), pw
		} else {
			b.password = u.User.Username()
		}
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		n, err := strconv.Atoi(db)
		if err != nil || n < 0 {
			return broker{}, fmt.Errorf("database must be a number >= 0, got %q", db)
		}
		b.db = n
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return broker{}, errors.New("must not have a query or fragment")
	}
	return b, nil
}

// Validate reports the first invalid key, naming it relative to
// storage.config (the registry puts "storage.config" in front).
func (c Config) Validate() error {
	if _, err := parseBroker(c.RedisBroker); err != nil {
		return yamlconf.Errorf("redis_broker", "%w", err)
	}
	switch {
	case c.GarbageCollectionInterval <= 0:
		return yamlconf.Errorf("gc_interval", "must be > 0, got %s", c.GarbageCollectionInterval)
	case c.PeerLifetime < time.Second:
		// Last-seen times are kept in whole seconds.
		return yamlconf.Errorf("peer_lifetime", "must be >= 1s, got %s", c.PeerLifetime)
	case c.GarbageCollectionInterval > c.PeerLifetime:
		return yamlconf.Errorf("gc_interval", "must be <= peer_lifetime (%s), got %s", c.PeerLifetime, c.GarbageCollectionInterval)
	case c.PrometheusReportingInterval <= 0:
		return yamlconf.Errorf("prometheus_reporting_interval", "must be > 0, got %s", c.PrometheusReportingInterval)
	case c.RedisReadTimeout <= 0:
		return yamlconf.Errorf("redis_read_timeout", "must be > 0, got %s", c.RedisReadTimeout)
	case c.RedisWriteTimeout <= 0:
		return yamlconf.Errorf("redis_write_timeout", "must be > 0, got %s", c.RedisWriteTimeout)
	case c.RedisConnectTimeout <= 0:
		return yamlconf.Errorf("redis_connect_timeout", "must be > 0, got %s", c.RedisConnectTimeout)
	case c.MaxActive <= 0:
		return yamlconf.Errorf("redis_max_active", "must be > 0, got %d", c.MaxActive)
	case c.MaxIdle < 0:
		return yamlconf.Errorf("redis_max_idle", "must be >= 0, got %d", c.MaxIdle)
	case c.MaxIdle > c.MaxActive:
		return yamlconf.Errorf("redis_max_idle", "must be <= redis_max_active (%d), got %d", c.MaxActive, c.MaxIdle)
	case c.RelayHeartbeatInterval < 10*time.Millisecond:
		return yamlconf.Errorf("relay_heartbeat_interval", "must be >= 10ms, got %s", c.RelayHeartbeatInterval)
	case c.RelayInstanceTimeout < 3*c.RelayHeartbeatInterval:
		// One late heartbeat must not make an instance look gone.
		return yamlconf.Errorf("relay_instance_timeout", "must be >= 3 × relay_heartbeat_interval (%s), got %s", 3*c.RelayHeartbeatInterval, c.RelayInstanceTimeout)
	case len(c.SentinelAddrs) > 0 && c.SentinelMasterName == "":
		return yamlconf.Errorf("sentinel_master_name", "required when sentinel_addrs is set")
	case len(c.SentinelAddrs) == 0 && c.SentinelMasterName != "":
		return yamlconf.Errorf("sentinel_addrs", "required when sentinel_master_name is set")
	case len(c.SentinelAddrs) == 0 && c.SentinelPassword != "":
		return yamlconf.Errorf("sentinel_password", "set without sentinel_addrs")
	}
	if err := checkAddrs("sentinel_addrs", c.SentinelAddrs); err != nil {
		return err
	}
	if len(c.ClusterAddrs) > 0 {
		if len(c.SentinelAddrs) > 0 {
			return yamlconf.Errorf("cluster_addrs", "set together with sentinel_addrs; a Redis Cluster fails over by itself, choose one")
		}
		if b, _ := parseBroker(c.RedisBroker); b.db != 0 {
			return yamlconf.Errorf("redis_broker", "database must be 0 with cluster_addrs (a cluster has only database 0), got %d", b.db)
		}
		if err := checkAddrs("cluster_addrs", c.ClusterAddrs); err != nil {
			return err
		}
		if strings.ContainsAny(c.KeyPrefix, "{}") {
			// Redis Cluster hashes a key by the part between its first
			// braces: a brace in the prefix would take the place of the
			// info hash's tag, so that a swarm's keys and its shard's land
			// in different slots (CROSSSLOT on every update), or every
			// key in one slot.
			return yamlconf.Errorf("key_prefix", "must not hold { or } with cluster_addrs (Redis Cluster would hash keys by the prefix), got %q", c.KeyPrefix)
		}
	}
	return yamlconf.Under(c.Locality.Validate(), "locality")
}

// checkAddrs checks that each of addrs is host:port, naming key[i].
func checkAddrs(key string, addrs []string) error {
	for i, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		n, perr := strconv.Atoi(port)
		if err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			return yamlconf.Errorf(fmt.Sprintf("%s[%d]", key, i), "must be host:port, got %q", a)
		}
	}
	return nil
}

// decodeConfig decodes the `storage.config` YAML as the registered driver
// does.
func decodeConfig(configYAML []byte) (Config, error) { return driver.Load(configYAML) }
