package middleware_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"gopkg.in/yaml.v2"

	"github.com/chihaya/chihaya/middleware"
)

func init() {
	// Decodes like every hook: strictly, naming itself in its error.
	middleware.RegisterHook("config test", func(opts []byte) (middleware.Hook, error) {
		var c struct {
			Limit int `yaml:"limit"`
		}
		if err := yaml.UnmarshalStrict(opts, &c); err != nil {
			return nil, fmt.Errorf("config test: %w", err)
		}
		return nil, nil
	})
}

// TestHookErrors checks the wording of a hook list's errors, and that a
// hook's YAML error stays reachable under it: the daemon moves its line to
// the configuration file's.
func TestHookErrors(t *testing.T) {
	ok := middleware.HookConfig{Name: "config test", Options: map[string]interface{}{"limit": 1}}
	for _, tc := range []struct {
		name     string
		hooks    []middleware.HookConfig
		want     string
		wantYAML bool
	}{
		{
			name:     "unknown option",
			hooks:    []middleware.HookConfig{ok, {Name: "config test", Options: map[string]interface{}{"limt": 1}}},
			want:     "[1] (config test): yaml: unmarshal errors:\n  line 1: field limt not found in type struct { Limit int \"yaml:\\\"limit\\\"\" }",
			wantYAML: true,
		},
		{
			name:  "unknown hook",
			hooks: []middleware.HookConfig{{Name: "no such hook"}},
			want:  `[0] (no such hook): unknown hook "no such hook" (known: `,
		},
		{
			name:  "missing name",
			hooks: []middleware.HookConfig{ok, {}},
			want:  "[1]: name: must be set",
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
				var te *yaml.TypeError
				if got := errors.As(err, &te); got != tc.wantYAML {
					t.Errorf("%s: errors.As(err, *yaml.TypeError) = %t, want %t", check, got, tc.wantYAML)
				}
			}
		})
	}
}
