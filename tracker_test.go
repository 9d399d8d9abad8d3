package chihaya

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/frontend/frontendtest"
	"github.com/chihaya/chihaya/internal/cleanup"
	"github.com/chihaya/chihaya/internal/daemontest"
	"github.com/chihaya/chihaya/middleware"
	_ "github.com/chihaya/chihaya/middleware/torrentapproval"
	"github.com/chihaya/chihaya/pkg/yamlconf"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/memory"
	_ "github.com/chihaya/chihaya/storage/memory"
)

// The tests of the Tracker's insides; the command's tests (cmd/chihaya)
// drive it from the outside.

func writeFile(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "chihaya.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startTest starts the tracker configured by the file at path and stops it
// when the test ends.
func startTest(t *testing.T, path string) *Tracker {
	t.Helper()
	written, cfg, err := ReadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Start(path, written, cfg)
	if err != nil {
		t.Fatal(err)
	}
	cleanup.Stop(t, s.Stop)
	return s
}

func TestReadyzDuringShutdown(t *testing.T) {
	s := startTest(t, writeFile(t, "chihaya:\n  metrics_addr: \"127.0.0.1:0\"\n  udp:\n    addr: \"127.0.0.1:0\"\n"))
	url := "http://" + s.Addr("metrics") + "/readyz"
	if status, body := daemontest.Get(t, url); status != 200 || body != "ok\n" {
		t.Errorf("/readyz while serving = %d %q", status, body)
	}
	// What shutdown does first, before the frontends stop: a load balancer
	// must see the instance go away while it still answers.
	s.serving.Store(false)
	s.stopping.Store(true)
	if status, body := daemontest.Get(t, url); status != 503 || body != "not ready: frontends: shutting down\n" {
		t.Errorf("/readyz during shutdown = %d %q", status, body)
	}
}

func TestRedactHidesStorageSecrets(t *testing.T) {
	got := redact(map[string]interface{}{
		"redis_broker":      "redis://:hunter2@127.0.0.1:6379/0",
		"sentinel_password": "hunter3",
		"key_prefix":        "tracker1:",
		"gc_interval":       "3m",
		"shard_count":       1024,
	})
	text := fmt.Sprintf("%v", got)
	for _, secret := range []string{"hunter2", "hunter3"} {
		if strings.Contains(text, secret) {
			t.Fatalf("redacted options still show %q: %s", secret, text)
		}
	}
	for _, kept := range []string{"tracker1:", "127.0.0.1:6379", "3m", "1024"} {
		if !strings.Contains(text, kept) {
			t.Fatalf("redacted options lost %q: %s", kept, text)
		}
	}
}

// reloadCounter is a store that counts the daemon's calls to Reload.
type reloadCounter struct {
	storage.PeerStore
	calls int
	err   error
}

func (r *reloadCounter) Reload() error {
	r.calls++
	return r.err
}

func TestReloadReloadsStore(t *testing.T) {
	path := writeFile(t, "chihaya:\n  http:\n    addr: \"127.0.0.1:0\"\n")
	s := startTest(t, path)
	rc := &reloadCounter{PeerStore: s.store}
	s.store = rc
	s.Reload()
	if rc.calls != 1 {
		t.Fatalf("Reload called %d times on SIGHUP's reload, want 1", rc.calls)
	}
	// A failing store reload does not stop the hooks from reloading.
	rc.err = errors.New("storage/memory: reload: topology_file: broken")
	if err := os.WriteFile(path, []byte("chihaya:\n  http:\n    addr: \"127.0.0.1:0\"\n  prehooks:\n    - name: torrent approval\n      options:\n        blacklist: [\""+strings.Repeat("aa", 20)+"\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Reload()
	if rc.calls != 2 || len(s.cfg.PreHooks) != 1 {
		t.Fatalf("after a failed store reload: %d calls, %d prehooks; want 2 and 1", rc.calls, len(s.cfg.PreHooks))
	}
}

// TestStartFromGoConfig is the library without a file: a Config built in
// Go starts a tracker, Apply swaps in a hook, Stop stops it.
func TestStartFromGoConfig(t *testing.T) {
	var cfg Config
	cfg.UDP.Addr = "127.0.0.1:0"
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := Start("", cfg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	cleanup.Stop(t, s.Stop)
	c := frontendtest.UDP(t, s.Addr("udp"))
	a := frontendtest.Announce{InfoHash: frontendtest.Hash(7), PeerID: frontendtest.ID("-TR4050-"), Port: 6881, Left: 1, Event: bittorrent.Started}
	if r, err := c.Announce(a); err != nil || r.Failure != "" {
		t.Fatalf("before Apply: %+v %v", r, err)
	}

	next := cfg
	next.PreHooks = []middleware.HookConfig{{Name: "torrent approval", Options: map[string]interface{}{
		"blacklist": []interface{}{frontendtest.Hash(7).String()},
	}}}
	if err := s.Apply(next, next); err != nil {
		t.Fatal(err)
	}
	if r, err := c.Announce(a); err != nil || r.Failure != "unapproved torrent: this tracker does not track this info hash" {
		t.Fatalf("after Apply: %+v %v, want the blacklist's refusal", r, err)
	}
	bad := cfg
	bad.PreHooks = []middleware.HookConfig{{Name: "no such hook"}}
	if err := s.Apply(bad, bad); err == nil || !strings.Contains(err.Error(), `unknown hook "no such hook"`) {
		t.Fatalf("Apply of an unknown hook: %v", err)
	}
	if r, _ := c.Announce(a); r.Failure == "" {
		t.Fatal("a failed Apply dropped the running hooks")
	}
}

// TestStartFromBareGoConfig: a program that fills in only the address it
// wants gets a serving tracker, without knowing about WithDefaults; and a
// Go-built configuration that is invalid is refused with the key named.
func TestStartFromBareGoConfig(t *testing.T) {
	var cfg Config
	cfg.UDP.Addr = "127.0.0.1:0"
	s, err := Start("", cfg, cfg)
	if err != nil {
		t.Fatalf("Start of a Config with only udp.addr: %v", err)
	}
	cleanup.Stop(t, s.Stop)
	s.Reload() // nothing to re-read: must neither panic nor drop anything
	c := frontendtest.UDP(t, s.Addr("udp"))
	a := frontendtest.Announce{InfoHash: frontendtest.Hash(8), PeerID: frontendtest.ID("-TR4050-"), Port: 6881, Left: 1, Event: bittorrent.Started}
	if r, err := c.Announce(a); err != nil || r.Failure != "" {
		t.Fatalf("announce: %+v %v", r, err)
	}

	bad := Config{ShutdownTimeout: -time.Second}
	bad.UDP.Addr = "127.0.0.1:0"
	if _, err := Start("", bad, bad); err == nil || !strings.Contains(err.Error(), "shutdown_timeout") {
		t.Fatalf("Start of an invalid Config: %v, want shutdown_timeout named", err)
	}
}

// countingConfig is the `storage.config` of the test's own driver.
type countingConfig struct {
	Label string `yaml:"label"`
}

func (c countingConfig) Validate() error {
	if c.Label == "" {
		return yamlconf.Errorf("label", "must be set")
	}
	return nil
}

// countingStore is a driver an embedding program could write: the memory
// store, counting the announces it answers.
type countingStore struct {
	storage.PeerStore
	announces *atomic.Int64
}

func (s countingStore) AnnouncePeers(dst []bittorrent.Peer, ih bittorrent.InfoHash, seeder bool, numWant int, p bittorrent.Peer) ([]bittorrent.Peer, storage.Counts, storage.Role, error) {
	s.announces.Add(1)
	return s.PeerStore.AnnouncePeers(dst, ih, seeder, numWant, p)
}

// TestRegisteredDriverServes: a driver registered through the library is
// chosen by storage.name, decodes its own keys strictly, and serves.
var (
	countingOnce sync.Once
	announces    atomic.Int64
)

func TestRegisteredDriverServes(t *testing.T) {
	// Registered once per process: a name registered twice panics, and
	// -count=2 runs the test twice.
	countingOnce.Do(func() {
		RegisterStorage(storage.Driver[countingConfig]{
			Name: "counting",
			New: func(countingConfig) (storage.PeerStore, error) {
				m, err := memory.New(memory.Config{}.WithDefaults())
				if err != nil {
					return nil, err
				}
				return countingStore{PeerStore: m, announces: &announces}, nil
			},
		})
	})
	before := announces.Load()
	bad := writeFile(t, "chihaya:\n  udp: {addr: \"127.0.0.1:0\"}\n  storage:\n    name: counting\n    config: {lable: x}\n")
	if _, err := Check(context.Background(), bad); err == nil || !strings.Contains(err.Error(), `unknown key "lable"`) {
		t.Fatalf("validate: %v, want the unknown key named", err)
	}
	s := startTest(t, writeFile(t, "chihaya:\n  udp: {addr: \"127.0.0.1:0\"}\n  storage:\n    name: counting\n    config: {label: x}\n"))
	c := frontendtest.UDP(t, s.Addr("udp"))
	if r, err := c.Announce(frontendtest.Announce{InfoHash: frontendtest.Hash(1), PeerID: frontendtest.ID("-TR4050-"), Port: 6881, Left: 1, Event: bittorrent.Started}); err != nil || r.Failure != "" {
		t.Fatalf("announce: %+v %v", r, err)
	}
	if n := announces.Load() - before; n != 1 {
		t.Fatalf("the registered driver answered %d announces, want 1", n)
	}
}
