package e2e

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/chihaya/chihaya/internal/daemontest"
	"go.yaml.in/yaml/v2"
)

// TestMain runs nothing with -short: every test here drives the daemon,
// most with real Redis programs, and -short is for unit tests.
func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: end-to-end tests skipped with -short")
		os.Exit(0)
	}
	daemontest.Main(m)
}

// exampleConfig reads example_config.yaml as a generic tree, so that a test
// runs the operator's file with only its addresses changed.
func exampleConfig(t *testing.T) map[interface{}]interface{} {
	t.Helper()
	raw, err := os.ReadFile("../example_config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[interface{}]interface{}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// section returns the mapping under key, creating it.
func section(m map[interface{}]interface{}, key string) map[interface{}]interface{} {
	if s, ok := m[key].(map[interface{}]interface{}); ok {
		return s
	}
	s := map[interface{}]interface{}{}
	m[key] = s
	return s
}

// loopbackConfig is example_config.yaml bound to free ports on one loopback
// address (host is "127.0.0.1" or "[::1]").
func loopbackConfig(t *testing.T, host string) map[interface{}]interface{} {
	t.Helper()
	cfg := exampleConfig(t)
	c := section(cfg, "chihaya")
	c["metrics_addr"] = host + ":0"
	section(c, "http")["addr"] = host + ":0"
	section(c, "udp")["addr"] = host + ":0"
	return cfg
}

// start runs the daemon with cfg and waits until every listener is bound.
func start(t *testing.T, cfg map[interface{}]interface{}) *daemontest.Daemon {
	t.Helper()
	raw, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return daemontest.Start(t, string(raw))
}
