package torrentapproval

import (
	"errors"
	"fmt"
	"time"

	"github.com/chihaya/chihaya/pkg/yamlconf"
)

// Config is the `options` mapping of the `torrent approval` hook. whitelist
// and blacklist are upstream Chihaya's keys; the files and their check
// interval are ours.
type Config struct {
	// Whitelist admits only announces for these info hashes (40 hex
	// digits each).
	Whitelist []string `yaml:"whitelist"`
	// Blacklist refuses announces for these info hashes.
	Blacklist []string `yaml:"blacklist"`
	// WhitelistFile and BlacklistFile hold the list in a file, one hash a
	// line; '#' starts a comment. The file is re-read when it changes and
	// whenever the daemon reloads its configuration.
	WhitelistFile string `yaml:"whitelist_file"`
	BlacklistFile string `yaml:"blacklist_file"`
	// FileCheckInterval is how often the file's size and modification time
	// are compared with the loaded copy's.
	FileCheckInterval time.Duration `yaml:"file_check_interval"`
}

// DefaultFileCheckInterval is the default of file_check_interval: a stat
// call every few seconds costs nothing, and a list edit takes effect before
// an operator has switched windows to check.
const DefaultFileCheckInterval = 5 * time.Second

// WithDefaults returns the config with every unset key given its default.
func (c Config) WithDefaults() Config {
	if c.FileCheckInterval == 0 && (c.WhitelistFile != "" || c.BlacklistFile != "") {
		c.FileCheckInterval = DefaultFileCheckInterval
	}
	return c
}

// Validate reports the first invalid option, naming it. It does not read
// the files; New does.
func (c Config) Validate() error {
	var white, black []string
	if len(c.Whitelist) > 0 {
		white = append(white, "whitelist")
	}
	if c.WhitelistFile != "" {
		white = append(white, "whitelist_file")
	}
	if len(c.Blacklist) > 0 {
		black = append(black, "blacklist")
	}
	if c.BlacklistFile != "" {
		black = append(black, "blacklist_file")
	}
	switch {
	case len(white) > 0 && len(black) > 0:
		return fmt.Errorf("%s and %s are both set; use one", white[0], black[0])
	case len(white) > 1:
		return errors.New("whitelist and whitelist_file are both set; use one")
	case len(black) > 1:
		return errors.New("blacklist and blacklist_file are both set; use one")
	case len(white) == 0 && len(black) == 0:
		return errors.New("one of whitelist, whitelist_file, blacklist or blacklist_file must be set")
	}
	for _, l := range []struct {
		key     string
		entries []string
	}{{"whitelist", c.Whitelist}, {"blacklist", c.Blacklist}} {
		for i, e := range l.entries {
			if _, ok := parseHash([]byte(e)); !ok {
				return yamlconf.Errorf(fmt.Sprintf("%s[%d]", l.key, i), "%q is not an info hash: want 40 hex digits", e)
			}
		}
	}
	if c.FileCheckInterval < 0 {
		return yamlconf.Errorf("file_check_interval", "must be > 0, got %s", c.FileCheckInterval)
	}
	if c.FileCheckInterval > 0 && c.WhitelistFile == "" && c.BlacklistFile == "" {
		return yamlconf.Errorf("file_check_interval", "set without whitelist_file or blacklist_file")
	}
	return nil
}
