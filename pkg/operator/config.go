package operator

import (
	"time"

	"github.com/chihaya/chihaya/pkg/yamlconf"
)

// Config is the `api` mapping: the operator API and the status page, both
// served on metrics_addr.
type Config struct {
	// TokensFile holds the API's bearer tokens, one `TOKEN ROLE` a line;
	// the API and the status page are on when it is set.
	TokensFile string `yaml:"tokens_file"`
	// HistoryInterval is how often the swarms are walked for the status
	// page's history and the totals.
	HistoryInterval time.Duration `yaml:"history_interval"`
}

// DefaultHistoryInterval is the default of api.history_interval: 120
// points an hour per swarm followed.
const DefaultHistoryInterval = 30 * time.Second

// The bounds of api.history_interval: below a second the walks of a large
// store would cost too much; above five minutes the day chart's points
// would come less often than it draws them.
const (
	MinHistoryInterval = time.Second
	MaxHistoryInterval = 5 * time.Minute
)

// Enabled reports whether the API and the status page are on.
func (c Config) Enabled() bool { return c.TokensFile != "" }

// WithDefaults returns c with every unset key given its default.
func (c Config) WithDefaults() Config {
	if c.HistoryInterval == 0 {
		c.HistoryInterval = DefaultHistoryInterval
	}
	return c
}

// Validate reports the first invalid key, named relative to the `api`
// mapping.
func (c Config) Validate() error {
	if c.HistoryInterval < MinHistoryInterval || c.HistoryInterval > MaxHistoryInterval {
		return yamlconf.Errorf("history_interval", "must be between %s and %s, got %s", MinHistoryInterval, MaxHistoryInterval, c.HistoryInterval)
	}
	return nil
}
