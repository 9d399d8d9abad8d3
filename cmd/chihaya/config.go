package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v2"

	"github.com/chihaya/chihaya/middleware"
	"github.com/chihaya/chihaya/pkg/yamlconf"
)

// DefaultShutdownTimeout bounds a graceful shutdown when the configuration
// does not say otherwise: long enough for in-flight requests and queued
// swarm updates, short enough for a service manager's stop timeout.
const DefaultShutdownTimeout = 15 * time.Second

// DefaultStorage is the storage driver used when `storage.name` is empty.
const DefaultStorage = "memory"

// fileConfig is the whole YAML file: everything lives under one top-level
// `chihaya:` mapping, as in upstream Chihaya.
type fileConfig struct {
	Chihaya *Config `yaml:"chihaya"`
}

// Config is the `chihaya:` mapping.
type Config struct {
	// Logic holds announce_interval and min_announce_interval, which
	// upstream keeps at the top level of the mapping.
	Logic middleware.Config `yaml:",inline"`

	// MetricsAddr is the operator's HTTP server (/metrics, /healthz,
	// /readyz, /debug/pprof/); empty disables it.
	MetricsAddr string `yaml:"metrics_addr"`
	// PrometheusAddr is upstream's older name of MetricsAddr.
	PrometheusAddr string `yaml:"prometheus_addr"`
	// EnablePprof serves /debug/pprof/ on the metrics server.
	EnablePprof bool `yaml:"enable_pprof"`
	// ShutdownTimeout bounds a graceful shutdown.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`

	HTTP    httpConfig    `yaml:"http"`
	UDP     udpConfig     `yaml:"udp"`
	Storage StorageConfig `yaml:"storage"`

	// PreHooks run in list order before the response is built;
	// PostHooks after the reply is written.
	PreHooks  []middleware.HookConfig `yaml:"prehooks"`
	PostHooks []middleware.HookConfig `yaml:"posthooks"`
}

// StorageConfig selects the PeerStore driver. Config is kept as a generic
// tree and handed to the driver as YAML, so that each driver owns (and
// strictly decodes) its own keys.
type StorageConfig struct {
	Name   string                 `yaml:"name"`
	Config map[string]interface{} `yaml:"config"`

	// fragment is Config as it stands in the file, on the lines it has
	// there (yamlconf.Source.Fragment), so that the driver's decoding
	// errors name the file's lines. readConfig sets it on the effective
	// configuration only: the written one is compared across reloads,
	// where moved lines are no change.
	fragment []byte
}

// WithDefaults returns the configuration with every unset key given its
// default. This is the one place where the daemon's defaults are applied;
// each component's WithDefaults supplies its own.
func (c Config) WithDefaults() Config {
	c.Logic = c.Logic.WithDefaults()
	// The older name is folded in only when the new one is unset, so that
	// Validate can still see a file that sets both.
	if c.MetricsAddr == "" {
		c.MetricsAddr, c.PrometheusAddr = c.PrometheusAddr, ""
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	c.HTTP = c.HTTP.WithDefaults()
	c.UDP = c.UDP.WithDefaults()
	if c.Storage.Name == "" {
		c.Storage.Name = DefaultStorage
	}
	return c
}

// Validate reports the first invalid key, naming its full path. It runs
// after WithDefaults. Storage and hook options are checked by their own
// constructors (see buildStorage and buildHooks).
func (c Config) Validate() error {
	if err := c.Logic.Validate(); err != nil {
		return err
	}
	if c.PrometheusAddr != "" {
		return errors.New("prometheus_addr: is the older name of metrics_addr; set only one of them")
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			return fmt.Errorf("metrics_addr: must be host:port, got %q", c.MetricsAddr)
		}
	}
	if c.EnablePprof && c.MetricsAddr == "" {
		return errors.New("enable_pprof: needs metrics_addr, the server pprof is served on")
	}
	if c.ShutdownTimeout < 0 {
		return fmt.Errorf("shutdown_timeout: must be > 0, got %s", c.ShutdownTimeout)
	}
	if !httpEnabled(c.HTTP) && !udpEnabled(c.UDP) {
		return errors.New("http.addr, http.https_addr, udp.addr: at least one must be set, or the tracker serves nothing")
	}
	// A disabled frontend's settings are not checked, so that a file
	// written for upstream with an unused section still loads.
	if httpEnabled(c.HTTP) {
		if err := c.HTTP.Validate(); err != nil {
			return err
		}
	}
	if udpEnabled(c.UDP) {
		if err := c.UDP.Validate(); err != nil {
			return err
		}
	}
	for _, list := range []struct {
		key   string
		hooks []middleware.HookConfig
	}{{"prehooks", c.PreHooks}, {"posthooks", c.PostHooks}} {
		for i, h := range list.hooks {
			if h.Name == "" {
				return fmt.Errorf("%s[%d]: name: must be set", list.key, i)
			}
		}
	}
	return nil
}

// readConfig reads and decodes path and returns the configuration as
// written (for reload comparisons) and as used (defaults applied,
// validated, storage.config cut out at its lines).
// Start-up, `validate` and reload all go through here.
func readConfig(path string) (written, effective Config, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, Config{}, err
	}
	written, err = parseConfig(data)
	if err != nil {
		return Config{}, Config{}, fmt.Errorf("%s: %w", path, err)
	}
	effective = written.WithDefaults()
	if err := effective.Validate(); err != nil {
		return Config{}, Config{}, fmt.Errorf("%s: %w", path, err)
	}
	// The subtrees that components decode themselves are placed in the
	// file here, the one place that has its bytes. yaml.v3 reads what
	// yaml.v2 has already accepted; should it disagree, errors give the
	// lines of the subtree instead.
	src, _ := yamlconf.Parse(data)
	if sc := src.At("chihaya", "storage", "config"); sc != nil {
		effective.Storage.fragment = sc.Fragment()
	}
	return written, effective, nil
}

// parseConfig decodes a configuration file strictly: an unknown or
// misspelled key is an error naming the key and its line, never a silent
// default.
func parseConfig(data []byte) (Config, error) {
	var f fileConfig
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return Config{}, explainYAML(err, data)
	}
	if f.Chihaya == nil {
		return Config{}, errors.New("chihaya: missing; the configuration lives under a top-level `chihaya:` mapping")
	}
	return *f.Chihaya, nil
}

var (
	unknownField   = regexp.MustCompile(`^line (\d+): field (.+) not found in type (\S+)$`)
	duplicateField = regexp.MustCompile(`^line (\d+): field (.+) already set in type (\S+)$`)
)

// explainYAML rewrites yaml.v2's decoding errors of the file data for
// operators: Go type names become key paths ("field adr not found in type
// http.Config" becomes `line 4: unknown key "adr" in chihaya.http`), an
// ill-typed value is named by its key path (`line 2: announce_interval:
// cannot unmarshal !!str `soon` into a duration`), and several errors are
// joined on one line.
func explainYAML(err error, data []byte) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	paths := keyPaths()
	src, _ := yamlconf.Parse(data)
	values := yamlconf.Explainer{Structs: yamlconf.StructNames(reflect.TypeOf(fileConfig{}))}
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		if sm := unknownField.FindStringSubmatch(m); sm != nil {
			m = fmt.Sprintf("line %s: unknown key %q in %s", sm[1], sm[2], where(paths, sm[3]))
		} else if sm := duplicateField.FindStringSubmatch(m); sm != nil {
			m = fmt.Sprintf("line %s: key %q set twice in %s", sm[1], sm[2], where(paths, sm[3]))
		} else {
			// Paths as Validate writes them, under `chihaya:`.
			m = values.Message(m, src.At("chihaya"))
		}
		msgs[i] = m
	}
	return errors.New(strings.Join(msgs, "; "))
}

// hookEntry is the list and entry a hook list's errors start with.
var hookEntry = regexp.MustCompile(`^(prehooks|posthooks)\[(\d+)\] `)

// explainHookError rewords the error of a hook list (`prehooks[0] (rate
// limit): yaml: ...`) whose cause is a YAML decoding error of the entry's
// options. Each hook decodes a re-marshalled copy of its options, of which
// yaml.v2 reports the lines and Go type names; the message gets the line
// and key path in the file at path instead: `line 8: unknown key
// "announce_brust" in prehooks[0].options (rate limit)`. The file is read
// again for this, on the error path only. Other errors are returned as
// they are.
func explainHookError(path string, c Config, err error) error {
	var te *yaml.TypeError
	sm := hookEntry.FindStringSubmatch(err.Error())
	if sm == nil || !errors.As(err, &te) {
		return err
	}
	hooks := c.PreHooks
	if sm[1] == "posthooks" {
		hooks = c.PostHooks
	}
	i, _ := strconv.Atoi(sm[2])
	data, rerr := os.ReadFile(path)
	if i >= len(hooks) || rerr != nil {
		return err
	}
	src, _ := yamlconf.Parse(data)
	from := src.At("chihaya", sm[1], sm[2], "options")
	// The same bytes middleware.eachHook hands the hook.
	opts, merr := yaml.Marshal(hooks[i].Options)
	if from == nil || merr != nil {
		return err
	}
	e := yamlconf.Explainer{Path: fmt.Sprintf("%s[%d].options", sm[1], i), Owner: hooks[i].Name, From: from}
	return e.Error(te, opts)
}

func where(paths map[string]string, goType string) string {
	if p := paths[goType]; p != "" {
		return p
	}
	return "the top level"
}

// keyPaths maps the Go type names that yaml.v2 puts in its errors to the
// key paths operators write. A type used under several keys (a hook entry
// in prehooks and posthooks) maps to all of them.
func keyPaths() map[string]string {
	paths := map[string]string{}
	var walk func(t reflect.Type, path string)
	walk = func(t reflect.Type, path string) {
		switch t.Kind() {
		case reflect.Ptr:
			walk(t.Elem(), path)
			return
		case reflect.Slice:
			walk(t.Elem(), path+"[]")
			return
		case reflect.Struct:
		default:
			return
		}
		if t == reflect.TypeOf(time.Duration(0)) {
			return
		}
		if have := paths[t.String()]; have == "" {
			paths[t.String()] = path
		} else if !strings.Contains(have, path) {
			paths[t.String()] = have + " or " + path
		}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, inline := yamlName(f)
			switch {
			case name == "-":
			case inline:
				walk(f.Type, path)
			case path == "":
				walk(f.Type, name)
			default:
				walk(f.Type, path+"."+name)
			}
		}
	}
	walk(reflect.TypeOf(fileConfig{}), "")
	paths["main.fileConfig"] = "the top level"
	return paths
}

// yamlName is the key yaml.v2 uses for a struct field.
func yamlName(f reflect.StructField) (name string, inline bool) {
	tag := f.Tag.Get("yaml")
	parts := strings.Split(tag, ",")
	for _, opt := range parts[1:] {
		if opt == "inline" {
			return "", true
		}
	}
	if parts[0] != "" {
		return parts[0], false
	}
	return strings.ToLower(f.Name), false
}

// storageYAML is the `storage.config` subtree as the YAML the driver
// decodes: the file's own text at the file's lines where readConfig could
// cut it out, else re-marshalled.
func storageYAML(c StorageConfig) ([]byte, error) {
	if len(c.Config) == 0 {
		return nil, nil
	}
	if c.fragment != nil {
		return c.fragment, nil
	}
	b, err := yaml.Marshal(c.Config)
	if err != nil {
		return nil, fmt.Errorf("storage.config: %w", err)
	}
	return b, nil
}

// hookNames lists the names of a hook list, for logs.
func hookNames(hs []middleware.HookConfig) []string {
	names := make([]string, len(hs))
	for i, h := range hs {
		names[i] = h.Name
	}
	return names
}
