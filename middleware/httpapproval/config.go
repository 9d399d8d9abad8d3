package httpapproval

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"gopkg.in/yaml.v2"

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
		return fmt.Errorf("%s: url: must be set", Name)
	}
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s: url: must be an http or https URL, got %q", Name, c.URL)
	}
	d, err := middleware.NewDescriber(c.Routes, c.Redact)
	if err != nil {
		return fmt.Errorf("%s: %w", Name, err)
	}
	seen := map[string]bool{}
	for i, k := range c.CacheKey {
		switch {
		case seen[k]:
			return fmt.Errorf("%s: cache_key[%d]: %q is listed twice", Name, i, k)
		case k == "info_hash":
		case strings.HasPrefix(k, "query:"):
			if k == "query:" {
				return fmt.Errorf("%s: cache_key[%d]: query: needs a parameter name", Name, i)
			}
		case k == "":
			return fmt.Errorf("%s: cache_key[%d]: must not be empty", Name, i)
		case !d.HasRouteParam(k):
			routes := "none"
			if len(c.Routes) > 0 {
				routes = strings.Join(c.Routes, ", ")
			}
			return fmt.Errorf("%s: cache_key[%d]: %q is a parameter of no route in routes (%s); list the route that has it, or write query:%s for a query parameter", Name, i, k, routes, k)
		}
		seen[k] = true
	}
	if c.CacheTTL < 0 {
		return fmt.Errorf("%s: cache_ttl: must be > 0, got %s", Name, c.CacheTTL)
	}
	if c.CacheSize < 0 {
		return fmt.Errorf("%s: cache_size: must be > 0, got %d", Name, c.CacheSize)
	}
	if c.Timeout < 0 || c.Timeout > time.Minute {
		return fmt.Errorf("%s: timeout: must be > 0 and <= 1m, got %s", Name, c.Timeout)
	}
	if c.MaxInFlight < 0 || c.MaxInFlight > 65536 {
		return fmt.Errorf("%s: max_in_flight: must be 1 to 65536, got %d", Name, c.MaxInFlight)
	}
	if c.OnError != "refuse" && c.OnError != "admit" {
		return fmt.Errorf("%s: on_error: must be refuse or admit, got %q", Name, c.OnError)
	}
	if c.BreakerFailures < 0 {
		return fmt.Errorf("%s: breaker_failures: must be > 0, got %d", Name, c.BreakerFailures)
	}
	if c.BreakerCooldown < 0 {
		return fmt.Errorf("%s: breaker_cooldown: must be > 0, got %s", Name, c.BreakerCooldown)
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return fmt.Errorf("%s: tls_cert_file, tls_key_file: set both for a client certificate, or neither", Name)
	}
	if c.TLSCAFile != "" || c.TLSCertFile != "" {
		if u, _ := url.Parse(c.URL); u.Scheme != "https" {
			return fmt.Errorf("%s: tls_ca_file, tls_cert_file: set, but url is not https", Name)
		}
	}
	return nil
}

// ParseConfig decodes the options strictly, applies defaults and validates.
func ParseConfig(optionsYAML []byte) (Config, error) {
	var c Config
	if err := yaml.UnmarshalStrict(optionsYAML, &c); err != nil {
		return Config{}, fmt.Errorf("%s: %w", Name, err)
	}
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}
