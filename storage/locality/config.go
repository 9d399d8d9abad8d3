package locality

import (
	"math"

	"github.com/chihaya/chihaya/pkg/yamlconf"
)

// The defaults: a /24 is the usual IPv4 subnet of a rack or a VLAN, a /64
// the smallest IPv6 subnet; a tenth of every answer from outside keeps a
// group joined to the rest of the swarm at little cost to locality.
const (
	DefaultIPv4Prefix      = 24
	DefaultIPv6Prefix      = 64
	DefaultMinOutsideShare = 0.1
)

// MaxIPv6Prefix bounds ipv6_prefix: a group is kept as a 64-bit key, and a
// subnet longer than /64 is not one a deployment lays out racks by.
const MaxIPv6Prefix = 64

// Config is the `locality` mapping of a driver's `storage.config`.
type Config struct {
	// Enabled turns locality-aware peer selection on. Off, the driver
	// answers exactly as it does without this section.
	Enabled bool `yaml:"enabled"`
	// IPv4Prefix and IPv6Prefix group peers by that many leading address
	// bits when no topology file is given.
	IPv4Prefix int `yaml:"ipv4_prefix"`
	IPv6Prefix int `yaml:"ipv6_prefix"`
	// TopologyFile names a YAML file of named groups of CIDRs in tiers
	// (see docs/locality.md); it replaces the prefix grouping and is read
	// again on SIGUSR1 and SIGHUP.
	TopologyFile string `yaml:"topology_file"`
	// MinOutsideShare is the least share of every answer taken from
	// outside the announcer's own group when the swarm has such peers, so
	// that no group is ever cut off from the swarm's seeders.
	MinOutsideShare float64 `yaml:"min_outside_share"`
}

// WithDefaults returns the config with every unset (zero) prefix given its
// default. A wholly unset section (the zero Config) also gets the default
// min_outside_share; otherwise a share of 0 is taken as written, since 0
// (no reserved outside peers) is a valid choice. Drivers decode YAML over
// the defaults, so a key written as 0 is checked by Validate rather than
// replaced.
func (c Config) WithDefaults() Config {
	if c == (Config{}) {
		c.MinOutsideShare = DefaultMinOutsideShare
	}
	if c.IPv4Prefix == 0 {
		c.IPv4Prefix = DefaultIPv4Prefix
	}
	if c.IPv6Prefix == 0 {
		c.IPv6Prefix = DefaultIPv6Prefix
	}
	return c
}

// Validate reports the first invalid key, naming it relative to the
// `locality` mapping (the driver puts "locality" in front). It does not
// read the topology file; Load does. The zero Config, locality left out
// of a Config built in Go (a decoded one has its defaults), is valid: off.
func (c Config) Validate() error {
	if c == (Config{}) {
		return nil
	}
	switch {
	case c.IPv4Prefix < 1 || c.IPv4Prefix > 32:
		return yamlconf.Errorf("ipv4_prefix", "must be 1-32, got %d", c.IPv4Prefix)
	case c.IPv6Prefix < 1 || c.IPv6Prefix > MaxIPv6Prefix:
		return yamlconf.Errorf("ipv6_prefix", "must be 1-%d, got %d", MaxIPv6Prefix, c.IPv6Prefix)
	case math.IsNaN(c.MinOutsideShare) || c.MinOutsideShare < 0 || c.MinOutsideShare > 1:
		return yamlconf.Errorf("min_outside_share", "must be between 0 and 1, got %g", c.MinOutsideShare)
	}
	return nil
}
