package udp

import (
	"net"
	"runtime"
	"strconv"
	"time"

	"github.com/chihaya/chihaya/pkg/yamlconf"
)

// The defaults, applied by WithDefaults. The first four are upstream
// Chihaya's.
const (
	DefaultMaxClockSkew        = 10 * time.Second
	DefaultMaxNumWant          = 100
	DefaultDefaultNumWant      = 50
	DefaultMaxScrapeInfoHashes = 50
	DefaultBatchSize           = 32
	DefaultReadBufferSize      = 4 << 20
)

// Limits that keep a configuration sane. maxClockSkewLimit also keeps the
// connection ID's 16-bit timestamp unambiguous (its window must stay well
// under 2^15 seconds).
const (
	maxClockSkewLimit = time.Hour
	maxSockets        = 1024
	maxBatchSize      = 1024
	// maxNumWantLimit keeps an IPv6 announce reply (20 + 18 per peer)
	// within one UDP datagram.
	maxNumWantLimit = (65507 - 20) / 18
)

// Config is the configuration of the UDP frontend: the `udp:` mapping of
// the `chihaya:` configuration. The keys up to max_scrape_infohashes are
// upstream Chihaya's; sockets, batch_size and read_buffer_size are ours.
type Config struct {
	// Addr is the host:port to listen on; empty disables the frontend.
	// A host of "" or "::" listens on every IPv4 and IPv6 address.
	Addr string `yaml:"addr"`
	// MaxClockSkew is the leeway on connection ID timestamps, so that
	// several trackers sharing a private_key accept each other's IDs.
	MaxClockSkew time.Duration `yaml:"max_clock_skew"`
	// PrivateKey keys the connection ID MAC; random at start when empty
	// (then IDs do not survive a restart, and clients simply reconnect).
	PrivateKey          string `yaml:"private_key"`
	EnableRequestTiming bool   `yaml:"enable_request_timing"`
	// AllowIPSpoofing honours the announce's `ip` field. It only applies
	// to announces that arrive over IPv4, as the field is an IPv4 address.
	AllowIPSpoofing bool `yaml:"allow_ip_spoofing"`
	MaxNumWant      int  `yaml:"max_numwant"`
	DefaultNumWant  int  `yaml:"default_numwant"`
	// MaxScrapeInfoHashes caps the hashes answered per scrape; extra
	// hashes are ignored. A datagram holds at most 101 anyway (the read
	// buffer is 2048 bytes), and a reply is always smaller than its scrape.
	MaxScrapeInfoHashes int `yaml:"max_scrape_infohashes"`

	// Sockets is the number of SO_REUSEPORT sockets bound to Addr, each read
	// by its own goroutine; the kernel spreads clients over them. 0 means
	// runtime.GOMAXPROCS(0).
	Sockets int `yaml:"sockets"`
	// BatchSize is how many datagrams one recvmmsg/sendmmsg call moves.
	// 1 reads and writes one datagram per system call.
	BatchSize int `yaml:"batch_size"`
	// ReadBufferSize is the SO_RCVBUF of each socket in bytes (the kernel
	// caps it at net.core.rmem_max); it absorbs bursts.
	ReadBufferSize int `yaml:"read_buffer_size"`
}

// WithDefaults returns the configuration with every unset key given its
// default.
func (c Config) WithDefaults() Config {
	if c.MaxClockSkew == 0 {
		c.MaxClockSkew = DefaultMaxClockSkew
	}
	if c.MaxNumWant == 0 {
		c.MaxNumWant = DefaultMaxNumWant
	}
	if c.DefaultNumWant == 0 {
		// An upstream file that lowers only max_numwant stays valid.
		c.DefaultNumWant = min(DefaultDefaultNumWant, c.MaxNumWant)
	}
	if c.MaxScrapeInfoHashes == 0 {
		c.MaxScrapeInfoHashes = DefaultMaxScrapeInfoHashes
	}
	if c.Sockets == 0 {
		c.Sockets = runtime.GOMAXPROCS(0)
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.ReadBufferSize == 0 {
		c.ReadBufferSize = DefaultReadBufferSize
	}
	return c
}

// Validate checks a configuration that had WithDefaults applied. Its
// errors name the key relative to the `udp` mapping (yamlconf.Errorf).
func (c Config) Validate() error {
	if c.Addr != "" {
		_, port, err := net.SplitHostPort(c.Addr)
		if err != nil {
			return yamlconf.Errorf("addr", "must be host:port, got %q", c.Addr)
		}
		if p, err := strconv.ParseUint(port, 10, 16); err != nil || p > 65535 {
			return yamlconf.Errorf("addr", "port must be 0-65535, got %q", port)
		}
	}
	switch {
	case c.MaxClockSkew < 0 || c.MaxClockSkew > maxClockSkewLimit:
		return yamlconf.Errorf("max_clock_skew", "must be between 0 and %s, got %s", maxClockSkewLimit, c.MaxClockSkew)
	case c.MaxNumWant <= 0 || c.MaxNumWant > maxNumWantLimit:
		return yamlconf.Errorf("max_numwant", "must be > 0 and <= %d, got %d", maxNumWantLimit, c.MaxNumWant)
	case c.DefaultNumWant <= 0:
		return yamlconf.Errorf("default_numwant", "must be > 0, got %d", c.DefaultNumWant)
	case c.DefaultNumWant > c.MaxNumWant:
		return yamlconf.Errorf("default_numwant", "must be <= max_numwant (%d), got %d", c.MaxNumWant, c.DefaultNumWant)
	case c.MaxScrapeInfoHashes <= 0:
		return yamlconf.Errorf("max_scrape_infohashes", "must be > 0, got %d", c.MaxScrapeInfoHashes)
	case c.Sockets <= 0 || c.Sockets > maxSockets:
		return yamlconf.Errorf("sockets", "must be between 1 and %d, got %d", maxSockets, c.Sockets)
	case c.BatchSize <= 0 || c.BatchSize > maxBatchSize:
		return yamlconf.Errorf("batch_size", "must be between 1 and %d, got %d", maxBatchSize, c.BatchSize)
	case c.ReadBufferSize < 0:
		return yamlconf.Errorf("read_buffer_size", "must be >= 0, got %d", c.ReadBufferSize)
	}
	return nil
}
