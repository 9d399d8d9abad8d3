package clientapproval

import (
	"errors"
	"fmt"

	"github.com/chihaya/chihaya/pkg/yamlconf"
)

// Config is the `options` mapping of the `client approval` hook. The keys
// are upstream Chihaya's. An entry is a client ID of up to six characters;
// one shorter than six matches every client ID it begins ("qB" admits or
// bans every qBittorrent version).
type Config struct {
	// Whitelist admits only the listed clients.
	Whitelist []string `yaml:"whitelist"`
	// Blacklist refuses the listed clients and admits all others.
	Blacklist []string `yaml:"blacklist"`
}

// WithDefaults returns the config unchanged: the hook has no defaults.
func (c Config) WithDefaults() Config { return c }

// Validate reports the first invalid option, naming it.
func (c Config) Validate() error {
	switch {
	case len(c.Whitelist) > 0 && len(c.Blacklist) > 0:
		return errors.New("whitelist and blacklist are both set; use one")
	case len(c.Whitelist) == 0 && len(c.Blacklist) == 0:
		return errors.New("one of whitelist or blacklist must be set")
	}
	for _, l := range []struct {
		key     string
		entries []string
	}{{"whitelist", c.Whitelist}, {"blacklist", c.Blacklist}} {
		for i, e := range l.entries {
			if len(e) == 0 || len(e) > ClientIDLen {
				return yamlconf.Errorf(fmt.Sprintf("%s[%d]", l.key, i), "client ID %q must be 1 to %d bytes, got %d", e, ClientIDLen, len(e))
			}
		}
	}
	return nil
}
