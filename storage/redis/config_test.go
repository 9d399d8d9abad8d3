package redis

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/chihaya/chihaya/storage/locality"
)

func TestBadConfig(t *testing.T) {
	tests := []struct {
		file, want string
	}{
		{"bad-broker-scheme.yaml", `storage.config.redis_broker: scheme must be redis or rediss, got "http"`},
		{"bad-broker-db.yaml", `storage.config.redis_broker: database must be a number >= 0, got "zero"`},
		{"bad-broker-port.yaml", `storage.config.redis_broker: port must be 1-65535, got "99999"`},
		{"bad-broker-not-url.yaml", `storage.config.redis_broker: not a URL`},
		{"bad-broker-no-host.yaml", `storage.config.redis_broker: must be redis://[:password@]host:port/db`},
		{"bad-broker-query.yaml", `storage.config.redis_broker: must not have a query or fragment`},
		{"bad-gc-interval.yaml", `storage.config.gc_interval: must be > 0, got 0s`},
		{"bad-peer-lifetime.yaml", `storage.config.peer_lifetime: must be >= 1s, got 500ms`},
		{"bad-gc-over-lifetime.yaml", `storage.config.gc_interval: must be <= peer_lifetime (5m0s), got 10m0s`},
		{"bad-reporting-interval.yaml", `storage.config.prometheus_reporting_interval: must be > 0, got -1s`},
		{"bad-read-timeout.yaml", `storage.config.redis_read_timeout: must be > 0, got -1s`},
		{"bad-write-timeout.yaml", `storage.config.redis_write_timeout: must be > 0, got -2s`},
		{"bad-connect-timeout.yaml", `storage.config.redis_connect_timeout: must be > 0, got -3s`},
		{"bad-max-active.yaml", `storage.config.redis_max_active: must be > 0, got -1`},
		{"bad-max-idle.yaml", `storage.config.redis_max_idle: must be <= redis_max_active (100), got 200`},
		{"bad-sentinel-no-name.yaml", `storage.config.sentinel_master_name: required when sentinel_addrs is set`},
		{"bad-sentinel-no-addrs.yaml", `storage.config.sentinel_addrs: required when sentinel_master_name is set`},
		{"bad-sentinel-addr.yaml", `storage.config.sentinel_addrs[1]: must be host:port, got "sentinel-b"`},
		{"bad-sentinel-password.yaml", `storage.config.sentinel_password: set without sentinel_addrs`},
		{"bad-cluster-and-sentinel.yaml", `storage.config.cluster_addrs: set together with sentinel_addrs; a Redis Cluster fails over by itself, choose one`},
		{"bad-cluster-db.yaml", `storage.config.redis_broker: database must be 0 with cluster_addrs (a cluster has only database 0), got 2`},
		{"bad-cluster-addr.yaml", `storage.config.cluster_addrs[1]: must be host:port, got "node-b"`},
		{"bad-cluster-key-prefix.yaml", `storage.config.key_prefix: must not hold { or } with cluster_addrs (Redis Cluster would hash keys by the prefix), got "tracker{1"`},
		{"bad-relay-heartbeat.yaml", `storage.config.relay_heartbeat_interval: must be >= 10ms, got 1ms`},
		{"bad-relay-timeout.yaml", `storage.config.relay_instance_timeout: must be >= 3 × relay_heartbeat_interval (6s), got 5s`},
		{"bad-unknown-key.yaml", `line 1: unknown key "redis_brokr" in storage.config (redis)`},
		{"bad-duration-type.yaml", "line 1: storage.config.redis_read_timeout: cannot unmarshal !!str `fast` into a duration"},
	}
	files, err := filepath.Glob("testdata/bad-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(tests) {
		t.Errorf("%d bad-*.yaml files, %d cases: every file needs a case", len(files), len(tests))
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			_, err = decodeConfig(raw)
			if err == nil || err.Error() != tc.want {
				t.Errorf("error %v\nwant      %s", err, tc.want)
			}
		})
	}
}

// TestBrokerErrorHidesPassword: redis_broker errors are logged and shown
// by `chihaya validate`, so they must not repeat the password.
func TestBrokerErrorHidesPassword(t *testing.T) {
	for _, url := range []string{
		"redis://:hunter2@127.0.0.1:6379/x",
		"redis://:hunter2%zz@127.0.0.1:6379/0",
		"http://:hunter2@127.0.0.1:6379/0",
		"redis://:hunter2@127.0.0.1:99999/0",
	} {
		err := Config{RedisBroker: url}.WithDefaults().Validate()
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: error %v, want one without the password", url, err)
		}
	}
}

func TestConfigDecoding(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       Config
	}{
		{"empty gives the defaults", "", Config{}.WithDefaults()},
		{"upstream keys", `
redis_broker: "redis://pw@redis.example:6380/2"
redis_read_timeout: 2s
redis_write_timeout: 3s
redis_connect_timeout: 4s
gc_interval: 1m
peer_lifetime: 20m
prometheus_reporting_interval: 5s
`, Config{
			RedisBroker: "redis://pw@redis.example:6380/2", RedisReadTimeout: 2 * time.Second,
			RedisWriteTimeout: 3 * time.Second, RedisConnectTimeout: 4 * time.Second,
			GarbageCollectionInterval: time.Minute, PeerLifetime: 20 * time.Minute,
			PrometheusReportingInterval: 5 * time.Second,
			MaxIdle:                     DefaultMaxIdle, MaxActive: DefaultMaxActive, KeyPrefix: DefaultKeyPrefix,
			Locality:               locality.Config{}.WithDefaults(),
			RelayHeartbeatInterval: DefaultRelayHeartbeatInterval, RelayInstanceTimeout: DefaultRelayInstanceTimeout,
		}},
		{"relay", `
relay_heartbeat_interval: 500ms
relay_instance_timeout: 3s
`, func() Config {
			c := Config{RelayHeartbeatInterval: 500 * time.Millisecond, RelayInstanceTimeout: 3 * time.Second}
			return c.WithDefaults()
		}()},
		{"locality", `
locality:
  enabled: true
  ipv4_prefix: 16
  min_outside_share: 0
`, func() Config {
			c := Config{}.WithDefaults()
			c.Locality = locality.Config{Enabled: true, IPv4Prefix: 16, IPv6Prefix: 64}
			return c
		}()},
		{"additions", `
redis_broker: "rediss://:pw@10.0.0.1:6379/0"
redis_tls_ca_path: /etc/ca.pem
redis_max_idle: 4
redis_max_active: 8
sentinel_addrs: ["10.0.0.2:26379", "10.0.0.3:26379"]
sentinel_master_name: tracker
sentinel_password: spw
key_prefix: "tracker-a:"
`, func() Config {
			c := Config{
				RedisBroker: "rediss://:pw@10.0.0.1:6379/0", TLSCAPath: "/etc/ca.pem", MaxIdle: 4, MaxActive: 8,
				SentinelAddrs: []string{"10.0.0.2:26379", "10.0.0.3:26379"}, SentinelMasterName: "tracker",
				SentinelPassword: "spw", KeyPrefix: "tracker-a:",
			}
			return c.WithDefaults()
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeConfig([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("decoded %+v\nwant    %+v", got, tc.want)
			}
		})
	}
}

func TestParseBroker(t *testing.T) {
	tests := []struct {
		url  string
		want broker
	}{
		{"redis://127.0.0.1:6379/0", broker{addr: "127.0.0.1:6379", host: "127.0.0.1"}},
		{"redis://localhost", broker{addr: "localhost:6379", host: "localhost"}},
		{"redis://myRedis@127.0.0.1:6379/0", broker{addr: "127.0.0.1:6379", host: "127.0.0.1", password: "myRedis"}},
		{"redis://:pw@[::1]:7000/5", broker{addr: "[::1]:7000", host: "::1", password: "pw", db: 5}},
		{"redis://user:pw@h:1/", broker{addr: "h:1", host: "h", user: "user", password: "pw"}},
		{"rediss://h:6380/1", broker{tls: true, addr: "h:6380", host: "h", db: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			got, err := parseBroker(tc.url)
			if err != nil || got != tc.want {
				t.Errorf("%+v %v, want %+v", got, err, tc.want)
			}
		})
	}
}
