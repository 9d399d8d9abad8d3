package eventstream

import (
	"os"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chihaya/chihaya/middleware"
	"github.com/chihaya/chihaya/pkg/webhook"
	"github.com/chihaya/chihaya/pkg/yamlconf"
)

// Config is the `options` mapping of the `event stream` hook.
type Config struct {
	// Sink is where events go: "redis" (a Redis Stream) or "http"
	// (NDJSON batches POSTed to URL).
	Sink string `yaml:"sink"`
	// RedisURL and Stream name the Redis Stream (sink: redis); MaxLen
	// trims it (XADD MAXLEN ~).
	RedisURL string `yaml:"redis_url"`
	Stream   string `yaml:"stream"`
	MaxLen   int64  `yaml:"max_len"`
	// URL receives the batches (sink: http), signed with SecretFile's
	// secret, over TLS with the CA and client certificate given.
	URL         string `yaml:"url"`
	SecretFile  string `yaml:"secret_file"`
	TLSCAFile   string `yaml:"tls_ca_file"`
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`
	// Instance names this tracker in every event.
	Instance string `yaml:"instance"`
	// Routes and Redact shape the events' params as for `http approval`.
	Routes []string `yaml:"routes"`
	Redact []string `yaml:"redact"`
	// BatchSize events, or whatever is queued after FlushInterval, make a
	// batch.
	BatchSize     int           `yaml:"batch_size"`
	FlushInterval time.Duration `yaml:"flush_interval"`
	// QueueSize bounds the events waiting; beyond it events are dropped
	// and counted.
	QueueSize int `yaml:"queue_size"`
	// Timeout bounds one write of a batch.
	Timeout time.Duration `yaml:"timeout"`
	// MaxBackoff caps the wait between retries of a failed batch.
	MaxBackoff time.Duration `yaml:"max_backoff"`
}

// The defaults of Config.
const (
	DefaultStream        = "chihaya:announces"
	DefaultMaxLen        = 1_000_000
	DefaultBatchSize     = 256
	DefaultFlushInterval = time.Second
	DefaultQueueSize     = 65536
	DefaultTimeout       = 5 * time.Second
	DefaultMaxBackoff    = 10 * time.Second
)

// WithDefaults returns the config with every unset key given its default.
func (c Config) WithDefaults() Config {
	if c.Sink == "redis" {
		if c.Stream == "" {
			c.Stream = DefaultStream
		}
		if c.MaxLen == 0 {
			c.MaxLen = DefaultMaxLen
		}
	}
	if c.Instance == "" {
		c.Instance, _ = os.Hostname()
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.QueueSize == 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	return c
}

// Validate reports the first invalid option, naming it. It does not read
// the files; New does.
func (c Config) Validate() error {
	switch c.Sink {
	case "redis":
		if c.RedisURL == "" {
			return yamlconf.Errorf("redis_url", "must be set with sink: redis")
		}
		opts, err := redis.ParseURL(c.RedisURL)
		if err != nil {
			return yamlconf.Errorf("redis_url", "%v", err)
		}
		if opts.Network != "unix" {
			if err := webhook.CheckAddrPort(opts.Addr, c.RedisURL); err != nil {
				return yamlconf.Errorf("redis_url", "%v", err)
			}
		}
		for _, k := range []struct{ key, val string }{{"url", c.URL}, {"secret_file", c.SecretFile}, {"tls_ca_file", c.TLSCAFile}, {"tls_cert_file", c.TLSCertFile}} {
			if k.val != "" {
				return yamlconf.Errorf(k.key, "is for sink: http; sink is redis")
			}
		}
		if c.MaxLen < 0 {
			return yamlconf.Errorf("max_len", "must be > 0, got %d", c.MaxLen)
		}
	case "http":
		if c.URL == "" {
			return yamlconf.Errorf("url", "must be set with sink: http")
		}
		if err := webhook.CheckURL(c.URL); err != nil {
			return yamlconf.Errorf("url", "%v", err)
		}
		if c.RedisURL != "" || c.Stream != "" || c.MaxLen != 0 {
			return yamlconf.Errorf("redis_url", "redis_url, stream and max_len are for sink: redis; sink is http")
		}
		if err := webhook.CheckTLS(c.URL, webhook.TLS{CAFile: c.TLSCAFile, CertFile: c.TLSCertFile, KeyFile: c.TLSKeyFile}); err != nil {
			return err
		}
	case "":
		return yamlconf.Errorf("sink", "must be set: redis or http")
	default:
		return yamlconf.Errorf("sink", "must be redis or http, got %q", c.Sink)
	}
	if _, err := middleware.NewDescriber(c.Routes, c.Redact); err != nil {
		return err
	}
	if c.BatchSize < 0 || c.BatchSize > 100000 {
		return yamlconf.Errorf("batch_size", "must be 1 to 100000, got %d", c.BatchSize)
	}
	if c.FlushInterval < 0 {
		return yamlconf.Errorf("flush_interval", "must be > 0, got %s", c.FlushInterval)
	}
	if c.QueueSize < 0 {
		return yamlconf.Errorf("queue_size", "must be > 0, got %d", c.QueueSize)
	}
	if c.QueueSize < c.BatchSize {
		return yamlconf.Errorf("queue_size", "must be at least batch_size (%d), got %d", c.BatchSize, c.QueueSize)
	}
	if c.Timeout < 0 {
		return yamlconf.Errorf("timeout", "must be > 0, got %s", c.Timeout)
	}
	if c.MaxBackoff < 0 {
		return yamlconf.Errorf("max_backoff", "must be > 0, got %s", c.MaxBackoff)
	}
	return nil
}
