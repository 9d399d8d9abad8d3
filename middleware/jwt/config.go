package jwt

import (
	"net/url"
	"time"

	"github.com/chihaya/chihaya/pkg/yamlconf"
)

// Config is the `options` mapping of the `jwt` hook. issuer, audience,
// jwk_set_url and jwk_set_update_interval are upstream Chihaya's keys; the
// others are ours.
type Config struct {
	// Issuer must equal the token's `iss` claim.
	Issuer string `yaml:"issuer"`
	// Audience must be one of the token's `aud` values.
	Audience string `yaml:"audience"`
	// JWKSetURL serves the JSON Web Key Set (RFC 7517) holding the public
	// keys tokens are signed with.
	JWKSetURL string `yaml:"jwk_set_url"`
	// JWKSetUpdateInterval is how often the key set is fetched again.
	JWKSetUpdateInterval time.Duration `yaml:"jwk_set_update_interval"`
	// JWKSetFetchTimeout bounds one fetch of the key set.
	JWKSetFetchTimeout time.Duration `yaml:"jwk_set_fetch_timeout"`
	// Leeway is the clock skew allowed when checking `exp`, `nbf` and
	// `iat`. Zero is a valid setting (no skew allowed), so WithDefaults
	// leaves it alone: the hook decodes its options over DefaultLeeway.
	Leeway time.Duration `yaml:"leeway"`
	// MaxTokenBytes caps the size of a token; longer ones are refused
	// before any parsing.
	MaxTokenBytes int `yaml:"max_token_bytes"`
}

// The defaults of Config.
const (
	DefaultJWKSetUpdateInterval = 5 * time.Minute
	DefaultJWKSetFetchTimeout   = 10 * time.Second
	DefaultLeeway               = 30 * time.Second
	DefaultMaxTokenBytes        = 4096
)

// WithDefaults returns the config with every unset key given its default,
// except Leeway, whose zero means none.
func (c Config) WithDefaults() Config {
	if c.JWKSetUpdateInterval == 0 {
		c.JWKSetUpdateInterval = DefaultJWKSetUpdateInterval
	}
	if c.JWKSetFetchTimeout == 0 {
		c.JWKSetFetchTimeout = DefaultJWKSetFetchTimeout
	}
	if c.MaxTokenBytes == 0 {
		c.MaxTokenBytes = DefaultMaxTokenBytes
	}
	return c
}

// Validate reports the first invalid option, naming it.
func (c Config) Validate() error {
	if c.Issuer == "" {
		return yamlconf.Errorf("issuer", "must be set")
	}
	if c.Audience == "" {
		return yamlconf.Errorf("audience", "must be set")
	}
	if c.JWKSetURL == "" {
		return yamlconf.Errorf("jwk_set_url", "must be set")
	}
	if u, err := url.Parse(c.JWKSetURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return yamlconf.Errorf("jwk_set_url", "must be an http or https URL, got %q", c.JWKSetURL)
	}
	if c.JWKSetUpdateInterval < time.Second {
		return yamlconf.Errorf("jwk_set_update_interval", "must be >= 1s, got %s", c.JWKSetUpdateInterval)
	}
	if c.JWKSetFetchTimeout <= 0 {
		return yamlconf.Errorf("jwk_set_fetch_timeout", "must be > 0, got %s", c.JWKSetFetchTimeout)
	}
	if c.Leeway < 0 || c.Leeway > 10*time.Minute {
		return yamlconf.Errorf("leeway", "must be 0s to 10m0s, got %s", c.Leeway)
	}
	if c.MaxTokenBytes < 64 || c.MaxTokenBytes > 65536 {
		return yamlconf.Errorf("max_token_bytes", "must be 64 to 65536, got %d", c.MaxTokenBytes)
	}
	return nil
}
