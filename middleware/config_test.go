package middleware_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/chihaya/chihaya/middleware"
	"github.com/chihaya/chihaya/pkg/yamlconf"
)

type testConfig struct {
	Limit int `yaml:"limit"`
}

func (c testConfig) Validate() error {
	if c.Limit < 0 {
		return yamlconf.Errorf("limit", "must be >= 0, got %d", c.Limit)
	}
	return nil
}

func init() {
	middleware.Register(middleware.Plugin[testConfig]{
		Name: "config test",
		New:  func(testConfig) (middleware.Hook, error) { return nil, nil },
	})
}

// TestHookErrors checks a hook list's errors: keyed from the list, so that
// the daemon can put the list's key in front and find the line.
func TestHookErrors(t *testing.T) {
	ok := middleware.HookConfig{Name: "config test", Options: map[string]interface{}{"limit": 1}}
	for _, tc := range []struct {
		name  string
		hooks []middleware.HookConfig
		want  string
	}{
		{
			name:  "unknown option",
			hooks: []middleware.HookConfig{ok, {Name: "config test", Options: map[string]interface{}{"limt": 1}}},
			want:  `line 1: unknown key "limt" in [1].options (config test)`,
		},
		{
			name:  "invalid option",
			hooks: []middleware.HookConfig{{Name: "config test", Options: map[string]interface{}{"limit": -1}}},
			want:  "[0].options.limit: must be >= 0, got -1",
		},
		{
			name:  "unknown hook",
			hooks: []middleware.HookConfig{{Name: "no such hook"}},
			want:  `[0].name: unknown hook "no such hook" (known: `,
		},
		{
			name:  "missing name",
			hooks: []middleware.HookConfig{ok, {}},
			want:  "[1].name: must be set",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for check, f := range map[string]func([]middleware.HookConfig) error{
				"CheckHooks": middleware.CheckHooks,
				"NewHooks": func(hs []middleware.HookConfig) error {
					_, err := middleware.NewHooks(hs)
					return err
				},
			} {
				err := f(tc.hooks)
				if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
					t.Errorf("%s: err = %v, want it to start with %q", check, err, tc.want)
				}
				var ye *yamlconf.Error
				if !errors.As(err, &ye) {
					t.Errorf("%s: %v is not a *yamlconf.Error", check, err)
				}
			}
		})
	}
}
