package httpapproval

import (
	"fmt"
	"strings"
	"time"

	"github.com/chihaya/chihaya/pkg/webhook"
	"github.com/chihaya/chihaya/pkg/yamlconf"

	"github.com/chihaya/chihaya/middleware"
)

// Config is the `options` mapping of the `http approval` hook.
type Config struct {
	// URL is where the hook POSTs its questions (http or https).
	URL string `yaml:"url"`
	// Scrapes has scrapes asked about too; otherwise they are admitted.
	Scrapes bool `yaml:"scrapes"`
	// Routes are the HTTP frontend's announce routes that carry
	// parameters (`/:passkey/announce`). HTTP requests bring their route
	// parameters from the router; a UDP request's BEP 41 path is matched
	// against these routes, so that `passkey` reads the same over both.
	Routes []string `yaml:"routes"`
	// Redact names parameters never sent to the service.
	Redact []string `yaml:"redact"`
	// CacheKey is what an answer is remembered by: `info_hash`, a route
	// parameter's name (`passkey`), `query:NAME` for a query or BEP 41
	// parameter, or several of them.
	CacheKey []string `yaml:"cache_key"`
	// CacheTTL is how long an answer is remembered.
	CacheTTL time.Duration `yaml:"cache_ttl"`
	// CacheSize bounds the number of answers remembered.
	CacheSize int `yaml:"cache_size"`
	// Timeout bounds one question to the service, connection included.
	Timeout time.Duration `yaml:"timeout"`
	// MaxInFlight bounds the questions asked at once; a question beyond
	// it is not asked and counts as a service error.
	MaxInFlight int `yaml:"max_in_flight"`
	// OnError is what a failed question means: "refuse" or "admit".
	OnError string `yaml:"on_error"`
	// BreakerFailures failed questions in a row open the breaker: for
	// BreakerCooldown no question is asked (OnError applies at once),
	// then one question probes the service.
	BreakerFailures int           `yaml:"breaker_failures"`
	BreakerCooldown time.Duration `yaml:"breaker_cooldown"`
	// SecretFile holds the secret the requests are signed with.
	SecretFile string `yaml:"secret_file"`
	// TLSCAFile verifies an https service; TLSCertFile and TLSKeyFile
	// are the client certificate for mutual TLS.
	TLSCAFile   string `yaml:"tls_ca_file"`
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`
}

// The defaults of Config.
const (
	DefaultCacheTTL        = time.Minute
	DefaultCacheSize       = 1 << 20
	DefaultTimeout         = 500 * time.Millisecond
	DefaultMaxInFlight     = 64
	DefaultOnError         = "refuse"
	DefaultBreakerFailures = 5
	DefaultBreakerCooldown = 5 * time.Second
)

// WithDefaults returns the config with every unset key given its default.
func (c Config) WithDefaults() Config {
	if len(c.CacheKey) == 0 {
		c.CacheKey = []string{"info_hash"}
	}
	if c.CacheTTL == 0 {
		c.CacheTTL = DefaultCacheTTL
	}
	if c.CacheSize == 0 {
		c.CacheSize = DefaultCacheSize
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.OnError == "" {
		c.OnError = DefaultOnError
	}
	if c.BreakerFailures == 0 {
		c.BreakerFailures = DefaultBreakerFailures
	}
	if c.BreakerCooldown == 0 {
		c.BreakerCooldown = DefaultBreakerCooldown
	}
	return c
}

// Validate reports the first invalid option, naming it. It does not read
// the files; New does.
func (c Config) Validate() error {
	if c.URL == "" {
		return yamlconf.Errorf("url", "must be set")
	}
	if err := webhook.CheckURL(c.URL); err != nil {
		return yamlconf.Errorf("url", "%v", err)
	}
	d, err := middleware.NewDescriber(c.Routes, c.Redact)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for i, k := range c.CacheKey {
		switch {
		case seen[k]:
			return yamlconf.Errorf(fmt.Sprintf("cache_key[%d]", i), "%q is listed twice", k)
		case k == "info_hash":
		case strings.HasPrefix(k, "query:"):
			if k == "query:" {
				return yamlconf.Errorf(fmt.Sprintf("cache_key[%d]", i), "query: needs a parameter name")
			}
		case k == "":
			return yamlconf.Errorf(fmt.Sprintf("cache_key[%d]", i), "must not be empty")
		case !d.HasRouteParam(k):
			routes := "none"
			if len(c.Routes) > 0 {
				routes = strings.Join(c.Routes, ", ")
			}
			return yamlconf.Errorf(fmt.Sprintf("cache_key[%d]", i), "%q is a parameter of no route in routes (%s); list the route that has it, or write query:%s for a query parameter", k, routes, k)
		}
		seen[k] = true
	}
	if c.CacheTTL < 0 {
		return yamlconf.Errorf("cache_ttl", "must be > 0, got %s", c.CacheTTL)
	}
	if c.CacheSize < 0 {
		return yamlconf.Errorf("cache_size", "must be > 0, got %d", c.CacheSize)
	}
	if c.Timeout < 0 || c.Timeout > time.Minute {
		return yamlconf.Errorf("timeout", "must be > 0 and <= 1m, got %s", c.Timeout)
	}
	if c.MaxInFlight < 0 || c.MaxInFlight > 65536 {
		return yamlconf.Errorf("max_in_flight", "must be 1 to 65536, got %d", c.MaxInFlight)
	}
	if c.OnError != "refuse" && c.OnError != "admit" {
		return yamlconf.Errorf("on_error", "must be refuse or admit, got %q", c.OnError)
	}
	if c.BreakerFailures < 0 {
		return yamlconf.Errorf("breaker_failures", "must be > 0, got %d", c.BreakerFailures)
	}
	if c.BreakerCooldown < 0 {
		return yamlconf.Errorf("breaker_cooldown", "must be > 0, got %s", c.BreakerCooldown)
	}
	return webhook.CheckTLS(c.URL, webhook.TLS{CAFile: c.TLSCAFile, CertFile: c.TLSCertFile, KeyFile: c.TLSKeyFile})
}
