package varinterval

import (
	"github.com/chihaya/chihaya/pkg/yamlconf"
)

// Config is the `options` mapping of the `interval variation` hook. The keys
// are upstream Chihaya's.
type Config struct {
	// ModifyResponseProbability is the share of announce replies, in
	// (0, 1], whose interval is lengthened.
	ModifyResponseProbability float64 `yaml:"modify_response_probability"`
	// MaxIncreaseDelta is the largest number of seconds added; each
	// lengthened reply gets 1 to MaxIncreaseDelta seconds, uniformly.
	MaxIncreaseDelta int `yaml:"max_increase_delta"`
	// ModifyMinInterval adds the same delta to `min interval`, so that a
	// client cannot come back early by honouring only the minimum.
	ModifyMinInterval bool `yaml:"modify_min_interval"`
}

// WithDefaults returns the config unchanged: upstream gives these keys no
// defaults, and a hook that silently does nothing would hide a typo.
func (c Config) WithDefaults() Config { return c }

// Validate reports the first invalid option, naming it.
func (c Config) Validate() error {
	if !(c.ModifyResponseProbability > 0 && c.ModifyResponseProbability <= 1) {
		return yamlconf.Errorf("modify_response_probability", "must be > 0 and <= 1, got %g", c.ModifyResponseProbability)
	}
	if c.MaxIncreaseDelta <= 0 {
		return yamlconf.Errorf("max_increase_delta", "must be > 0 (seconds), got %d", c.MaxIncreaseDelta)
	}
	return nil
}
