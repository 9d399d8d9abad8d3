package chihaya

import (
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v2"

	httpfrontend "github.com/chihaya/chihaya/frontend/http"
	udpfrontend "github.com/chihaya/chihaya/frontend/udp"
	wsfrontend "github.com/chihaya/chihaya/frontend/websocket"
	"github.com/chihaya/chihaya/middleware"
	"github.com/chihaya/chihaya/pkg/operator"
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

	// HTTP, UDP and WebSocket are the frontends' own configurations
	// (see their packages); each runs when one of its addresses is set.
	HTTP httpfrontend.Config `yaml:"http"`
	UDP  udpfrontend.Config  `yaml:"udp"`
	// WebSocket is the WebTorrent tracker, our addition.
	WebSocket wsfrontend.Config `yaml:"websocket"`
	Storage   StorageConfig     `yaml:"storage"`
	// API is the operator API and status page, on metrics_addr.
	API operator.Config `yaml:"api"`

	// PreHooks run in list order before the response is built;
	// PostHooks after the reply is written.
	PreHooks  []middleware.HookConfig `yaml:"prehooks"`
	PostHooks []middleware.HookConfig `yaml:"posthooks"`

	// src is where the file's keys are: the one place that turns an
	// error's key path into a line (locate). readConfig sets it.
	src *yamlconf.Source
}

// StorageConfig selects the PeerStore driver. Config is kept as a generic
// tree and handed to the driver as YAML, so that each driver owns (and
// strictly decodes) its own keys.
type StorageConfig struct {
	Name   string                 `yaml:"name"`
	Config map[string]interface{} `yaml:"config"`
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
	c.WebSocket = c.WebSocket.WithDefaults()
	c.API = c.API.WithDefaults()
	if c.Storage.Name == "" {
		c.Storage.Name = DefaultStorage
	}
	return c
}

// Validate reports what is invalid, naming keys relative to the
// `chihaya:` mapping ("udp.max_numwant"). It runs after WithDefaults.
// Storage and hook options are checked by their own registries (see
// NewStore and NewHooks).
func (c Config) Validate() error {
	if err := c.Logic.Validate(); err != nil {
		return err
	}
	if c.PrometheusAddr != "" {
		return yamlconf.Errorf("prometheus_addr", "is the older name of metrics_addr; set only one of them")
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			return yamlconf.Errorf("metrics_addr", "must be host:port, got %q", c.MetricsAddr)
		}
	}
	if c.EnablePprof && c.MetricsAddr == "" {
		return yamlconf.Errorf("enable_pprof", "needs metrics_addr, the server pprof is served on")
	}
	if c.ShutdownTimeout < 0 {
		return yamlconf.Errorf("shutdown_timeout", "must be > 0, got %s", c.ShutdownTimeout)
	}
	if c.API.Enabled() && c.MetricsAddr == "" {
		return yamlconf.Errorf("api.tokens_file", "needs metrics_addr, the server the API is served on")
	}
	if err := c.API.Validate(); err != nil {
		return yamlconf.Under(err, "api")
	}
	if !httpEnabled(c.HTTP) && !udpEnabled(c.UDP) && !webSocketEnabled(c.WebSocket) {
		return errors.New("http.addr, http.https_addr, udp.addr, websocket.addr: at least one must be set, or the tracker serves nothing")
	}
	// A disabled frontend's settings are not checked, so that a file
	// written for upstream with an unused section still loads.
	if httpEnabled(c.HTTP) {
		if err := c.HTTP.Validate(); err != nil {
			return yamlconf.Under(err, "http")
		}
	}
	if udpEnabled(c.UDP) {
		if err := c.UDP.Validate(); err != nil {
			return yamlconf.Under(err, "udp")
		}
	}
	if webSocketEnabled(c.WebSocket) {
		if err := c.WebSocket.Validate(); err != nil {
			return yamlconf.Under(err, "websocket")
		}
	}
	for _, list := range []struct {
		key   string
		hooks []middleware.HookConfig
	}{{"prehooks", c.PreHooks}, {"posthooks", c.PostHooks}} {
		for i, h := range list.hooks {
			if h.Name == "" {
				return yamlconf.Errorf(list.key+yamlconf.Index(i)+".name", "must be set")
			}
		}
	}
	return nil
}

// locate gives err, an error about the `chihaya:` mapping keyed from it,
// the lines of the file c was read from. It is the one place that turns
// key paths into lines; errors that are not about the configuration pass
// unchanged.
func (c Config) locate(err error) error {
	return yamlconf.Locate(err, c.src.At("chihaya"), "chihaya")
}

// ReadConfig reads and decodes path and returns the configuration as
// written (for reload comparisons) and as used (defaults applied,
// validated). Start-up, `validate` and reload all go through here, and
// nothing reads the file again: later errors (storage, hooks) get their
// lines from what it returns (Config.locate).
func ReadConfig(path string) (written, effective Config, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, Config{}, err
	}
	written, err = ParseConfig(data)
	if err != nil {
		return Config{}, Config{}, fmt.Errorf("%s: %w", path, err)
	}
	effective = written.WithDefaults()
	if err := effective.Validate(); err != nil {
		return Config{}, Config{}, fmt.Errorf("%s: %w", path, effective.locate(err))
	}
	return written, effective, nil
}

// ParseConfig decodes a configuration file strictly: an unknown or
// misspelled key is an error naming the key and its line, never a silent
// default.
func ParseConfig(data []byte) (Config, error) {
	f, err := yamlconf.Decode(data, fileConfig{})
	if err != nil {
		// Keys are named as everywhere else, relative to `chihaya:`.
		return Config{}, yamlconf.Within(err, "chihaya")
	}
	if f.Chihaya == nil {
		return Config{}, yamlconf.Errorf("chihaya", "missing; the configuration lives under a top-level `chihaya:` mapping")
	}
	// yaml.v2 has accepted the file, so yaml.v3 reads it too.
	src, err := yamlconf.Parse(data)
	if err != nil {
		return Config{}, err
	}
	f.Chihaya.src = src
	return *f.Chihaya, nil
}

// YAMLKey is the key yaml.v2 uses for a struct field, and whether the
// field is inlined.
func YAMLKey(f reflect.StructField) (name string, inline bool) {
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

// storageYAML is the `storage.config` subtree as the YAML document the
// driver decodes; its errors are keyed, and Config.locate finds their
// lines in the file.
func storageYAML(c StorageConfig) ([]byte, error) {
	if len(c.Config) == 0 {
		return nil, nil
	}
	b, err := yaml.Marshal(c.Config)
	if err != nil {
		return nil, yamlconf.Under(err, "storage", "config")
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
