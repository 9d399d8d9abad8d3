package middleware

import (
	"time"

	"go.yaml.in/yaml/v2"

	"github.com/chihaya/chihaya/pkg/yamlconf"
)

// Config holds the logic's settings. Its keys live at the top level of the
// `chihaya:` mapping, as in upstream Chihaya.
type Config struct {
	// AnnounceInterval is the `interval` told to clients.
	AnnounceInterval time.Duration `yaml:"announce_interval"`
	// MinAnnounceInterval is the `min interval` told to clients.
	MinAnnounceInterval time.Duration `yaml:"min_announce_interval"`
}

// The defaults of Config, as upstream's example configuration has them.
const (
	DefaultAnnounceInterval    = 30 * time.Minute
	DefaultMinAnnounceInterval = 15 * time.Minute
)

// WithDefaults returns the config with every unset key given its default.
func (c Config) WithDefaults() Config {
	if c.AnnounceInterval == 0 {
		c.AnnounceInterval = DefaultAnnounceInterval
	}
	if c.MinAnnounceInterval == 0 {
		c.MinAnnounceInterval = DefaultMinAnnounceInterval
	}
	return c
}

// Validate reports the first invalid key, naming it.
func (c Config) Validate() error {
	if c.AnnounceInterval <= 0 {
		return yamlconf.Errorf("announce_interval", "must be > 0, got %s", c.AnnounceInterval)
	}
	if c.MinAnnounceInterval <= 0 {
		return yamlconf.Errorf("min_announce_interval", "must be > 0, got %s", c.MinAnnounceInterval)
	}
	if c.MinAnnounceInterval > c.AnnounceInterval {
		return yamlconf.Errorf("min_announce_interval", "must not exceed announce_interval (%s), got %s", c.AnnounceInterval, c.MinAnnounceInterval)
	}
	return nil
}

// HookConfig is one entry of the YAML `prehooks` or `posthooks` list.
type HookConfig struct {
	Name    string                 `yaml:"name"`
	Options map[string]interface{} `yaml:"options"`
}

// NewHooks builds the hooks of a `prehooks` or `posthooks` list, in list
// order. Errors are *yamlconf.Error keyed from the list ("[1].options.
// whitelist", "[0].name"); the caller puts the list's key in front.
func NewHooks(cfgs []HookConfig) ([]Hook, error) {
	var built []Hook
	hooks, err := rebuild(nil, nil, cfgs, nil, &built)
	if err != nil {
		StopHooks(built)
		return nil, err
	}
	return hooks, nil
}

// CheckHooks validates a `prehooks` or `posthooks` list exactly as NewHooks
// would, with the same errors, but without side effects (CheckHook):
// `chihaya validate` must not fetch key sets or start anything.
func CheckHooks(cfgs []HookConfig) error {
	return eachHook(cfgs, CheckHook)
}

// eachHook calls do with each entry's name and options YAML, and puts its
// error under the entry's index.
func eachHook(cfgs []HookConfig, do func(name string, opts []byte) error) error {
	for i, hc := range cfgs {
		err := checkEntry(hc)
		var opts []byte
		if err == nil && len(hc.Options) > 0 {
			// The options as the hook's own YAML document; the daemon
			// gives errors the file's lines from their key paths.
			if opts, err = yaml.Marshal(hc.Options); err != nil {
				err = yamlconf.Under(err, "options")
			}
		}
		if err == nil {
			err = do(hc.Name, opts)
		}
		if err != nil {
			return yamlconf.Under(err, yamlconf.Index(i))
		}
	}
	return nil
}

func checkEntry(hc HookConfig) error {
	if hc.Name == "" {
		return yamlconf.Errorf("name", "must be set")
	}
	return nil
}

// StopHooks stops every hook that runs background work.
func StopHooks(hooks []Hook) {
	for _, h := range hooks {
		if s, ok := h.(Stopper); ok {
			s.Stop()
		}
	}
}
