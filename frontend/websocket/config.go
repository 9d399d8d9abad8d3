package websocket

import (
	"crypto/tls"
	"errors"
	"net"
	nethttp "net/http"
	"net/url"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/chihaya/chihaya/pkg/realip"
	"github.com/chihaya/chihaya/pkg/yamlconf"
)

// Config is the `websocket:` section of the configuration: the WebTorrent
// tracker. Every limit has a default a public tracker can run with.
type Config struct {
	// Addr is the listener; empty disables the frontend.
	Addr string `yaml:"addr"`
	// TLSCertPath and TLSKeyPath serve wss:// on Addr; both or neither.
	TLSCertPath string `yaml:"tls_cert_path"`
	TLSKeyPath  string `yaml:"tls_key_path"`

	// AllowedOrigins lists the origins ("https://example.com") whose pages
	// may connect. Empty allows every origin, as a public tracker must.
	// A connection without an Origin header (not a browser) is allowed.
	AllowedOrigins []string `yaml:"allowed_origins"`

	// RealIPHeader names the header a reverse proxy puts the browser's
	// address in (X-Real-IP, or X-Forwarded-For whose last entry is
	// used), honoured only from TrustedProxies, which it requires.
	RealIPHeader   string   `yaml:"real_ip_header"`
	TrustedProxies []string `yaml:"trusted_proxies"`

	// AnnounceInterval is the interval told to WebTorrent clients. It is
	// theirs alone: browsers re-announce to find new peers, so it is much
	// shorter than a BitTorrent client's.
	AnnounceInterval time.Duration `yaml:"announce_interval"`

	// Routes restricts upgrades to these paths (httprouter syntax); empty
	// accepts any path. A route's parameters and the URL's query are the
	// parameters of every announce and scrape on the connection, so that
	// `wss://host/announce?jwt=…` works with the jwt hook.
	Routes []string `yaml:"routes"`

	// MaxMessageBytes caps one message; a larger one closes the
	// connection with status 1009.
	MaxMessageBytes int64 `yaml:"max_message_bytes"`
	// MaxOffers caps the offers of one announce.
	MaxOffers int `yaml:"max_offers"`
	// MaxScrapeInfoHashes caps the info hashes of one scrape.
	MaxScrapeInfoHashes int `yaml:"max_scrape_infohashes"`
	// MaxSwarmsPerConnection caps the swarms one connection is in (one
	// browser shares its connection among all its torrents).
	MaxSwarmsPerConnection int `yaml:"max_swarms_per_connection"`
	// MaxConnectionsPerIP caps the open connections of one address.
	MaxConnectionsPerIP int `yaml:"max_connections_per_ip"`
	// SendQueueMessages bounds each connection's queue of messages to
	// send; once it is full, further messages to it are dropped (and
	// counted), so a slow reader never holds up the relay.
	SendQueueMessages int `yaml:"send_queue_messages"`

	// IdleTimeout closes a connection that sent nothing for this long.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// WriteTimeout bounds one write to a connection; a connection whose
	// reader does not keep up for that long is closed.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// OfferTimeout is how long an answer to a relayed offer is accepted.
	OfferTimeout time.Duration `yaml:"offer_timeout"`

	EnableRequestTiming bool `yaml:"enable_request_timing"`
}

// The defaults: the limits are those of aquatic_ws where it has one.
const (
	DefaultAnnounceInterval       = 120 * time.Second
	DefaultMaxMessageBytes        = 64 << 10
	DefaultMaxOffers              = 10
	DefaultMaxScrapeInfoHashes    = 255
	DefaultMaxSwarmsPerConnection = 1024
	DefaultMaxConnectionsPerIP    = 128
	DefaultSendQueueMessages      = 64
	DefaultIdleTimeout            = 5 * time.Minute
	DefaultWriteTimeout           = 10 * time.Second
	DefaultOfferTimeout           = 120 * time.Second
)

// WithDefaults returns c with every unset key given its default.
func (c Config) WithDefaults() Config {
	if c.AnnounceInterval == 0 {
		c.AnnounceInterval = DefaultAnnounceInterval
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.MaxOffers == 0 {
		c.MaxOffers = DefaultMaxOffers
	}
	if c.MaxScrapeInfoHashes == 0 {
		c.MaxScrapeInfoHashes = DefaultMaxScrapeInfoHashes
	}
	if c.MaxSwarmsPerConnection == 0 {
		c.MaxSwarmsPerConnection = DefaultMaxSwarmsPerConnection
	}
	if c.MaxConnectionsPerIP == 0 {
		c.MaxConnectionsPerIP = DefaultMaxConnectionsPerIP
	}
	if c.SendQueueMessages == 0 {
		c.SendQueueMessages = DefaultSendQueueMessages
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.OfferTimeout == 0 {
		c.OfferTimeout = DefaultOfferTimeout
	}
	return c
}

// minMessageBytes is the smallest max_message_bytes accepted: an announce
// with one offer of a real browser's SDP does not fit in less.
const minMessageBytes = 4 << 10

// Validate checks a configuration that WithDefaults has been applied to.
// Its error names the key relative to the `websocket:` section, e.g.
// "max_offers: must be > 0, got -1"; the daemon puts it under
// "websocket".
func (c Config) Validate() error {
	if c.Addr != "" {
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			return yamlconf.Errorf("addr", "must be host:port, got %q", c.Addr)
		}
	}
	switch {
	case c.TLSCertPath == "" && c.TLSKeyPath != "":
		return yamlconf.Errorf("tls_cert_path", "required when tls_key_path is set")
	case c.TLSKeyPath == "" && c.TLSCertPath != "":
		return yamlconf.Errorf("tls_key_path", "required when tls_cert_path is set")
	}
	if c.RealIPHeader != "" && strings.ContainsAny(c.RealIPHeader, " \t\r\n:") {
		return yamlconf.Errorf("real_ip_header", "not a header name: %q", c.RealIPHeader)
	}
	if c.RealIPHeader != "" && len(c.TrustedProxies) == 0 {
		return yamlconf.Errorf("trusted_proxies", "required with real_ip_header: list the proxies' addresses, or anyone could choose the address they are counted under")
	}
	for i, s := range c.TrustedProxies {
		if _, err := realip.ParsePrefix(s); err != nil {
			return yamlconf.Errorf("trusted_proxies"+yamlconf.Index(i), "%q is neither an address nor a CIDR", s)
		}
	}
	for i, o := range c.AllowedOrigins {
		if u, err := url.Parse(o); err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return yamlconf.Errorf("allowed_origins"+yamlconf.Index(i), "must be an origin such as https://example.com, got %q", o)
		}
	}
	for _, d := range []struct {
		key string
		d   time.Duration
	}{{"announce_interval", c.AnnounceInterval}, {"idle_timeout", c.IdleTimeout}, {"write_timeout", c.WriteTimeout}, {"offer_timeout", c.OfferTimeout}} {
		if d.d <= 0 {
			return yamlconf.Errorf(d.key, "must be > 0, got %s", d.d)
		}
	}
	if c.IdleTimeout <= c.AnnounceInterval {
		return yamlconf.Errorf("idle_timeout", "must be longer than announce_interval (%s), got %s: clients are idle between announces", c.AnnounceInterval, c.IdleTimeout)
	}
	if c.MaxMessageBytes < minMessageBytes {
		return yamlconf.Errorf("max_message_bytes", "must be >= %d, got %d", minMessageBytes, c.MaxMessageBytes)
	}
	for _, n := range []struct {
		key string
		n   int
	}{
		{"max_offers", c.MaxOffers}, {"max_scrape_infohashes", c.MaxScrapeInfoHashes},
		{"max_swarms_per_connection", c.MaxSwarmsPerConnection}, {"max_connections_per_ip", c.MaxConnectionsPerIP},
		{"send_queue_messages", c.SendQueueMessages},
	} {
		if n.n <= 0 {
			return yamlconf.Errorf(n.key, "must be > 0, got %d", n.n)
		}
	}
	for i, r := range c.Routes {
		if !strings.HasPrefix(r, "/") {
			return yamlconf.Errorf("routes"+yamlconf.Index(i), "must start with '/', got %q", r)
		}
	}
	return tryRoutes(c.Routes)
}

// tryRoutes registers the routes on a throwaway router, because httprouter
// reports a conflict by panicking.
func tryRoutes(routes []string) (err error) {
	r := httprouter.New()
	i := 0
	defer func() {
		if v := recover(); v != nil {
			err = yamlconf.Errorf("routes"+yamlconf.Index(i), "%v", v)
		}
	}()
	nop := func(nethttp.ResponseWriter, *nethttp.Request, httprouter.Params) {}
	for i = range routes {
		r.GET(routes[i], nop)
	}
	return nil
}

// LoadTLS returns the TLS configuration of the listener, or nil without a
// key pair. `chihaya validate` calls it too, so a bad key pair is found
// before the daemon starts.
func LoadTLS(cfg Config) (*tls.Config, error) {
	if cfg.TLSCertPath == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCertPath, cfg.TLSKeyPath)
	if err != nil {
		return nil, errors.New("websocket: load TLS key pair: " + err.Error())
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"http/1.1"},
	}, nil
}
