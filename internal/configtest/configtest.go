// Package configtest checks a component's rejected configurations the same
// way everywhere: every testdata/bad-*.yaml file has a case with the exact
// error an operator reads, and every case has its file.
package configtest

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/chihaya/chihaya/middleware"
	"github.com/chihaya/chihaya/pkg/yamlconf"
)

// Case is one rejected file of testdata and its exact error.
type Case struct {
	File string // "bad-both-lists.yaml"
	Want string
}

// BadFiles runs load on each case's file and checks that it fails with
// exactly the case's error; and that testdata holds no bad-*.yaml file
// without a case (it would never be checked), nor a case without its file.
func BadFiles(t *testing.T, cases []Case, load func(yaml []byte) error) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "bad-*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	inTable := map[string]bool{}
	for _, c := range cases {
		if inTable[c.File] {
			t.Errorf("%s has two cases", c.File)
		}
		inTable[c.File] = true
	}
	for _, f := range files {
		if !inTable[filepath.Base(f)] {
			t.Errorf("%s has no case: add its exact error to the table", f)
		}
	}
	for _, c := range cases {
		t.Run(strings.TrimSuffix(c.File, ".yaml"), func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", c.File))
			if err != nil {
				t.Fatal(err)
			}
			err = load(b)
			if err == nil {
				t.Fatalf("accepted, want %q", c.Want)
			}
			if err.Error() != c.Want {
				t.Errorf("error:\n got: %s\nwant: %s", err, c.Want)
			}
		})
	}
}

// Section decodes yaml as the daemon decodes a component's section of the
// configuration, keyed under key: strictly, then the defaults, then
// Validate, with the errors' key paths starting at key.
func Section[T yamlconf.Validator](yaml []byte, key string, defaults func(T) T) (T, error) {
	var zero T
	c, err := yamlconf.Load(yaml, zero, defaults)
	return c, yamlconf.Under(err, key)
}

// Load reads testdata/name with Section.
func Load[T yamlconf.Validator](t *testing.T, name, key string, defaults func(T) T) (T, error) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return Section(b, key, defaults)
}

// BadSections is BadFiles for a component whose files are its section of
// the configuration, keyed under key (`http:`), decoded with Section.
func BadSections[T yamlconf.Validator](t *testing.T, key string, defaults func(T) T, cases []Case) {
	t.Helper()
	BadFiles(t, cases, func(b []byte) error {
		_, err := Section(b, key, defaults)
		return err
	})
}

// Accept is a configuration a component accepts, and what it loads to.
type Accept[C any] struct {
	Name, YAML string
	Want       C
}

// Accepts checks that load accepts each case's YAML and loads it to the
// case's Want.
func Accepts[C any](t *testing.T, load func([]byte) (C, error), cases []Accept[C]) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			got, err := load([]byte(c.YAML))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.Want) {
				t.Fatalf("config %+v, want %+v", got, c.Want)
			}
		})
	}
}

// BadHookOptions is BadFiles for hook: each file is the options of a
// chain entry naming it, built through the registry as the daemon builds
// it (and stopped again when it is accepted).
func BadHookOptions(t *testing.T, hook string, cases []Case) {
	t.Helper()
	BadFiles(t, cases, func(b []byte) error {
		h, err := middleware.NewHook(hook, b)
		if err == nil {
			middleware.StopHooks([]middleware.Hook{h})
		}
		return err
	})
}

// Build makes a component from cfg the way the daemon does after decoding:
// its defaults, then Validate, then its constructor. Any error fails the
// test: the configuration is the test's own and must be right.
func Build[C yamlconf.Validator, T any](t testing.TB, cfg C, defaults func(C) C, build func(C) (T, error)) T {
	t.Helper()
	if defaults != nil {
		cfg = defaults(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	v, err := build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// File writes content to a new file named name, in a directory of its own
// that goes when the test ends, and returns its path: a list, a secret or
// a certificate that the test's configuration names.
func File(t testing.TB, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	Rewrite(t, path, content)
	return path
}

// Rewrite replaces what the file at path holds, as an operator edits a
// file that the configuration names before a reload.
func Rewrite(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
