package http

import (
	"errors"
	"fmt"
	nethttp "net/http"
	"strings"
	"time"

	"github.com/chihaya/chihaya/pkg/realip"
	"github.com/chihaya/chihaya/pkg/yamlconf"
	"github.com/julienschmidt/httprouter"
)

// Config is the `http:` section of the configuration. The YAML names are
// upstream Chihaya's, so that an upstream configuration file keeps working;
// TrustedProxies and MaxHeaderBytes are our additions.
type Config struct {
	// Addr is the plain HTTP listener; empty disables it.
	Addr string `yaml:"addr"`
	// HTTPSAddr is the HTTPS listener; it needs TLSCertPath and TLSKeyPath.
	HTTPSAddr   string `yaml:"https_addr"`
	TLSCertPath string `yaml:"tls_cert_path"`
	TLSKeyPath  string `yaml:"tls_key_path"`

	// ReadTimeout bounds reading a whole request, headers included, so a
	// slow client cannot hold a connection open.
	ReadTimeout  time.Duration `yaml:"read_timeout"`
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout bounds the wait for the next request on a kept-alive
	// connection.
	IdleTimeout     time.Duration `yaml:"idle_timeout"`
	EnableKeepAlive bool          `yaml:"enable_keepalive"`

	EnableRequestTiming bool `yaml:"enable_request_timing"`

	// AnnounceRoutes and ScrapeRoutes are httprouter paths; named
	// parameters ("/:passkey/announce") reach hooks as route parameters.
	// httprouter refuses a named parameter beside a fixed segment at the
	// same place ("/announce" with "/:passkey/announce"); Validate reports
	// such conflicts.
	AnnounceRoutes []string `yaml:"announce_routes"`
	ScrapeRoutes   []string `yaml:"scrape_routes"`

	// AllowIPSpoofing honours the client's ip, ipv4 and ipv6 parameters.
	AllowIPSpoofing bool `yaml:"allow_ip_spoofing"`
	// RealIPHeader names the header a reverse proxy puts the client's
	// address in (X-Real-IP, or X-Forwarded-For whose last entry is used).
	RealIPHeader string `yaml:"real_ip_header"`
	// TrustedProxies lists the addresses (CIDRs or single addresses)
	// RealIPHeader is honoured from. Empty means any sender is trusted, as
	// upstream Chihaya does: only leave it empty when the listener is
	// reachable solely through the proxy.
	TrustedProxies []string `yaml:"trusted_proxies"`

	MaxNumWant          int `yaml:"max_numwant"`
	DefaultNumWant      int `yaml:"default_numwant"`
	MaxScrapeInfoHashes int `yaml:"max_scrape_infohashes"`

	// MaxHeaderBytes caps the request line and headers. A request over it
	// is answered with a bencoded failure and its connection closed.
	MaxHeaderBytes int `yaml:"max_header_bytes"`

	// AllowFullScrape answers a scrape without info_hash with every
	// swarm's counts (as opentracker does), streamed and gzipped when the
	// client accepts it. Off, such a scrape is refused.
	AllowFullScrape bool `yaml:"allow_full_scrape"`
	// FullScrapeInterval is how often one client address may have a full
	// scrape; earlier ones are refused with the time to come back.
	FullScrapeInterval time.Duration `yaml:"full_scrape_interval"`
}

// The defaults, upstream Chihaya's where upstream has one.
const (
	DefaultReadTimeout         = 2 * time.Second
	DefaultWriteTimeout        = 2 * time.Second
	DefaultIdleTimeout         = 30 * time.Second
	DefaultMaxNumWant          = 100
	DefaultDefaultNumWant      = 50
	DefaultMaxScrapeInfoHashes = 50
	DefaultMaxHeaderBytes      = 8 << 10
	DefaultFullScrapeInterval  = time.Minute
)

// minHeaderBytes is the smallest max_header_bytes we accept: real
// clients' heads (long query strings, cookies from proxies) need a few
// KiB, and configurations written when net/http served the frontend,
// which could not enforce less, stay valid and mean the same.
const minHeaderBytes = 4 << 10

// WithDefaults returns c with every unset key given its default.
func (c Config) WithDefaults() Config {
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if len(c.AnnounceRoutes) == 0 {
		c.AnnounceRoutes = []string{"/announce"}
	}
	if len(c.ScrapeRoutes) == 0 {
		c.ScrapeRoutes = []string{"/scrape"}
	}
	if c.MaxNumWant == 0 {
		c.MaxNumWant = DefaultMaxNumWant
	}
	if c.DefaultNumWant == 0 {
		c.DefaultNumWant = DefaultDefaultNumWant
		if c.MaxNumWant > 0 {
			c.DefaultNumWant = min(DefaultDefaultNumWant, c.MaxNumWant)
		}
	}
	if c.MaxScrapeInfoHashes == 0 {
		c.MaxScrapeInfoHashes = DefaultMaxScrapeInfoHashes
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.FullScrapeInterval == 0 {
		c.FullScrapeInterval = DefaultFullScrapeInterval
	}
	return c
}

// Validate checks a configuration that WithDefaults has been applied to.
// A configuration with neither addr nor https_addr is valid: it disables
// the frontend, and the daemon does not construct it. Each error names the
// offending key relative to the `http` mapping (yamlconf.Errorf), e.g.
// "max_numwant: must be > 0, got -1".
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, yamlconf.Errorf(key, format, args...))
	}
	if c.HTTPSAddr != "" {
		if c.TLSCertPath == "" {
			bad("tls_cert_path", "required when https_addr is set")
		}
		if c.TLSKeyPath == "" {
			bad("tls_key_path", "required when https_addr is set")
		}
	}
	for _, t := range []struct {
		key string
		d   time.Duration
	}{{"read_timeout", c.ReadTimeout}, {"write_timeout", c.WriteTimeout}, {"idle_timeout", c.IdleTimeout}} {
		if t.d <= 0 {
			bad(t.key, "must be > 0, got %s", t.d)
		}
	}
	if c.MaxNumWant <= 0 {
		bad("max_numwant", "must be > 0, got %d", c.MaxNumWant)
	} else if c.DefaultNumWant < 0 || c.DefaultNumWant > c.MaxNumWant {
		bad("default_numwant", "must be between 0 and max_numwant (%d), got %d", c.MaxNumWant, c.DefaultNumWant)
	}
	if c.MaxScrapeInfoHashes <= 0 {
		bad("max_scrape_infohashes", "must be > 0, got %d", c.MaxScrapeInfoHashes)
	}
	if c.MaxHeaderBytes < minHeaderBytes {
		bad("max_header_bytes", "must be >= %d, got %d", minHeaderBytes, c.MaxHeaderBytes)
	}
	if c.FullScrapeInterval < 0 {
		bad("full_scrape_interval", "must be > 0, got %s", c.FullScrapeInterval)
	}
	if c.RealIPHeader != "" && strings.ContainsAny(c.RealIPHeader, " \t\r\n:") {
		bad("real_ip_header", "not a header name: %q", c.RealIPHeader)
	}
	for i, s := range c.TrustedProxies {
		if _, err := realip.ParsePrefix(s); err != nil {
			bad(fmt.Sprintf("trusted_proxies[%d]", i), "%q is neither an address nor a CIDR", s)
		}
	}
	checkRoutes := func(key string, routes []string) {
		for i, r := range routes {
			if !strings.HasPrefix(r, "/") {
				bad(fmt.Sprintf("%s[%d]", key, i), "must start with '/', got %q", r)
			}
		}
	}
	checkRoutes("announce_routes", c.AnnounceRoutes)
	checkRoutes("scrape_routes", c.ScrapeRoutes)
	if len(errs) == 0 {
		if err := tryRoutes(c); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// tryRoutes registers the routes on a throwaway router, because httprouter
// reports a conflict (a duplicate, or "/:a/announce" beside "/x/announce")
// by panicking.
func tryRoutes(c Config) (err error) {
	r := httprouter.New()
	key := ""
	defer func() {
		if v := recover(); v != nil {
			err = yamlconf.Errorf(key, "%v", v)
		}
	}()
	nop := func(nethttp.ResponseWriter, *nethttp.Request, httprouter.Params) {}
	for i, route := range c.AnnounceRoutes {
		key = fmt.Sprintf("announce_routes[%d]", i)
		r.GET(route, nop)
	}
	for i, route := range c.ScrapeRoutes {
		key = fmt.Sprintf("scrape_routes[%d]", i)
		r.GET(route, nop)
	}
	return nil
}
