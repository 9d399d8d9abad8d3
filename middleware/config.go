package middleware

import (
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v2"
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
		return fmt.Errorf("announce_interval: must be > 0, got %s", c.AnnounceInterval)
	}
	if c.MinAnnounceInterval <= 0 {
		return fmt.Errorf("min_announce_interval: must be > 0, got %s", c.MinAnnounceInterval)
	}
	if c.MinAnnounceInterval > c.AnnounceInterval {
		return fmt.Errorf("min_announce_interval: must not exceed announce_interval (%s), got %s", c.AnnounceInterval, c.MinAnnounceInterval)
	}
	return nil
}

// HookConfig is one entry of the YAML `prehooks` or `posthooks` list.
type HookConfig struct {
	Name    string                 `yaml:"name"`
	Options map[string]interface{} `yaml:"options"`
}

// NewHooks builds the hooks of a `prehooks` or `posthooks` list, in list
// order. Errors name the entry: `[1] (torrent approval): whitelist: ...`;
// the caller prefixes the list's name.
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
// would, with the same errors, but without constructing the hooks that
// registered a Checker: `chihaya validate` must not fetch key sets or
// start anything.
func CheckHooks(cfgs []HookConfig) error {
	return eachHook(cfgs, func(name string, opts []byte) error {
		if check, ok := checkers.Lookup(name); ok {
			return check(opts)
		}
		h, err := NewHook(name, opts)
		if err != nil {
			return err
		}
		StopHooks([]Hook{h})
		return nil
	})
}

// eachHook calls do with each entry's name and options YAML, and words its
// error as `[i] (name): ...`.
func eachHook(cfgs []HookConfig, do func(name string, opts []byte) error) error {
	for i, hc := range cfgs {
		if hc.Name == "" {
			return fmt.Errorf("[%d]: name: must be set", i)
		}
		var opts []byte
		if len(hc.Options) > 0 {
			var err error
			if opts, err = yaml.Marshal(hc.Options); err != nil {
				return fmt.Errorf("[%d] (%s): options: %w", i, hc.Name, err)
			}
		}
		if err := do(hc.Name, opts); err != nil {
			// Hooks name themselves in their errors; say it once.
			if msg, ok := strings.CutPrefix(err.Error(), hc.Name+": "); ok {
				return hookError{msg: fmt.Sprintf("[%d] (%s): %s", i, hc.Name, msg), err: err}
			}
			return fmt.Errorf("[%d] (%s): %w", i, hc.Name, err)
		}
	}
	return nil
}

// hookError is a hook's error reworded by eachHook. It still unwraps to
// the hook's error, so that the daemon can find a YAML decoding error in it
// and name the configuration file's lines.
type hookError struct {
	msg string
	err error
}

func (e hookError) Error() string { return e.msg }
func (e hookError) Unwrap() error { return e.err }

// StopHooks stops every hook that runs background work.
func StopHooks(hooks []Hook) {
	for _, h := range hooks {
		if s, ok := h.(Stopper); ok {
			s.Stop()
		}
	}
}
