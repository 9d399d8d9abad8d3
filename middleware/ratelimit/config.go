package ratelimit

import (
	"errors"
	"math"

	"github.com/chihaya/chihaya/pkg/yamlconf"
)

// Config is the `options` mapping of the `rate limit` hook (our addition;
// upstream Chihaya has no rate limiting). An action whose rate is 0 is not
// limited.
type Config struct {
	// AnnouncesPerSecond is the sustained announce rate allowed per client
	// address (or per address prefix, see the prefix lengths).
	AnnouncesPerSecond float64 `yaml:"announces_per_second"`
	// AnnounceBurst is how many announces a client may make at once after
	// being quiet; default: the rate rounded up, at least 1.
	AnnounceBurst int `yaml:"announce_burst"`
	// ScrapesPerSecond and ScrapeBurst are the same for scrapes.
	ScrapesPerSecond float64 `yaml:"scrapes_per_second"`
	ScrapeBurst      int     `yaml:"scrape_burst"`
	// IPv4PrefixLength and IPv6PrefixLength group addresses: every address
	// in one prefix shares one budget. A host usually holds a whole IPv6
	// /64 and could otherwise take a fresh address for every request.
	IPv4PrefixLength int `yaml:"ipv4_prefix_length"`
	IPv6PrefixLength int `yaml:"ipv6_prefix_length"`
	// MaxTrackedAddresses caps the addresses (prefixes) remembered; 32
	// bytes each, allocated at start. When full, the address heard from
	// least recently in a small group is forgotten, which at worst gives
	// it a fresh burst.
	MaxTrackedAddresses int `yaml:"max_tracked_addresses"`
}

// The defaults of Config.
const (
	DefaultIPv4PrefixLength    = 32
	DefaultIPv6PrefixLength    = 64
	DefaultMaxTrackedAddresses = 1 << 18 // 8 MiB
)

// MinRate is the lowest non-zero rate: one request per 1000 seconds. It
// bounds the table of prepared refusal texts.
const MinRate = 0.001

// WithDefaults returns the config with every unset key given its default.
func (c Config) WithDefaults() Config {
	if c.AnnounceBurst == 0 && c.AnnouncesPerSecond > 0 {
		c.AnnounceBurst = defaultBurst(c.AnnouncesPerSecond)
	}
	if c.ScrapeBurst == 0 && c.ScrapesPerSecond > 0 {
		c.ScrapeBurst = defaultBurst(c.ScrapesPerSecond)
	}
	if c.IPv4PrefixLength == 0 {
		c.IPv4PrefixLength = DefaultIPv4PrefixLength
	}
	if c.IPv6PrefixLength == 0 {
		c.IPv6PrefixLength = DefaultIPv6PrefixLength
	}
	if c.MaxTrackedAddresses == 0 {
		c.MaxTrackedAddresses = DefaultMaxTrackedAddresses
	}
	return c
}

func defaultBurst(rate float64) int {
	if math.IsNaN(rate) || math.IsInf(rate, 0) || rate > 1<<20 {
		return 1 // Validate rejects the rate
	}
	return max(1, int(math.Ceil(rate)))
}

// Validate reports the first invalid option, naming it.
func (c Config) Validate() error {
	for _, a := range []struct {
		rateKey, burstKey string
		rate              float64
		burst             int
	}{
		{"announces_per_second", "announce_burst", c.AnnouncesPerSecond, c.AnnounceBurst},
		{"scrapes_per_second", "scrape_burst", c.ScrapesPerSecond, c.ScrapeBurst},
	} {
		switch {
		case math.IsNaN(a.rate) || math.IsInf(a.rate, 0) || a.rate < 0 || a.rate > 1e6:
			return yamlconf.Errorf(a.rateKey, "must be 0 (no limit) or %g to 1e+06, got %g", MinRate, a.rate)
		case a.rate > 0 && a.rate < MinRate:
			return yamlconf.Errorf(a.rateKey, "must be 0 (no limit) or %g to 1e+06, got %g", MinRate, a.rate)
		case a.rate == 0 && a.burst != 0:
			return yamlconf.Errorf(a.burstKey, "set without %s", a.rateKey)
		case a.rate > 0 && (a.burst < 1 || a.burst > 1e6):
			return yamlconf.Errorf(a.burstKey, "must be 1 to 1000000, got %d", a.burst)
		}
	}
	if c.AnnouncesPerSecond == 0 && c.ScrapesPerSecond == 0 {
		return errors.New("announces_per_second or scrapes_per_second must be set")
	}
	if c.IPv4PrefixLength < 1 || c.IPv4PrefixLength > 32 {
		return yamlconf.Errorf("ipv4_prefix_length", "must be 1 to 32, got %d", c.IPv4PrefixLength)
	}
	if c.IPv6PrefixLength < 1 || c.IPv6PrefixLength > 128 {
		return yamlconf.Errorf("ipv6_prefix_length", "must be 1 to 128, got %d", c.IPv6PrefixLength)
	}
	if c.MaxTrackedAddresses < 1024 || c.MaxTrackedAddresses > 1<<30 {
		return yamlconf.Errorf("max_tracked_addresses", "must be 1024 to %d, got %d", 1<<30, c.MaxTrackedAddresses)
	}
	return nil
}
