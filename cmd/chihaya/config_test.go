package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chihaya/chihaya"
	"github.com/chihaya/chihaya/internal/daemontest"
	"github.com/chihaya/chihaya/middleware"
	"github.com/chihaya/chihaya/storage"
)

// badConfigs are every rejected configuration in testdata and the exact
// error an operator sees for it (after the file name).
var badConfigs = []struct {
	file string
	want string
}{
	{"bad-unknown-key.yaml", `line 3: unknown key "anounce_interval" in chihaya`},
	{"bad-unknown-top-key.yaml", `line 4: unknown key "chihya" in the top level`},
	{"bad-unknown-http-key.yaml", `line 3: unknown key "adr" in http`},
	{"bad-hook-unknown-key.yaml", `line 6: unknown key "option" in posthooks[0]`},
	{"bad-duplicate-key.yaml", `line 4: key "udp" set twice in chihaya`},
	{"bad-missing-chihaya.yaml", "chihaya: missing; the configuration lives under a top-level `chihaya:` mapping"},
	{"bad-yaml-syntax.yaml", "yaml: line 3: did not find expected key"},
	{"bad-duration.yaml", "line 2: announce_interval: cannot unmarshal !!str `soon` into a duration"},
	{"bad-no-listener.yaml", "http.addr, http.https_addr, udp.addr, websocket.addr: at least one must be set, or the tracker serves nothing"},
	{"bad-both-metrics-addrs.yaml", "line 3: prometheus_addr: is the older name of metrics_addr; set only one of them"},
	{"bad-metrics-addr.yaml", `line 2: metrics_addr: must be host:port, got "6880"`},
	{"bad-pprof-without-metrics.yaml", "line 2: enable_pprof: needs metrics_addr, the server pprof is served on"},
	{"bad-shutdown-timeout.yaml", "line 2: shutdown_timeout: must be > 0, got -1s"},
	{"bad-api-without-metrics.yaml", "line 3: api.tokens_file: needs metrics_addr, the server the API is served on"},
	{"bad-api-history-interval.yaml", "line 5: api.history_interval: must be between 1s and 5m0s, got 10m0s"},
	{"bad-min-announce-interval.yaml", "line 3: min_announce_interval: must not exceed announce_interval (10m0s), got 20m0s"},
	{"bad-storage-name.yaml", `line 5: storage.name: unknown storage driver "mem" (known: ` + strings.Join(storage.DriverNames(), ", ") + ")"},
	{"bad-storage-config.yaml", "line 7: storage.config.shard_count: must be > 0, got -1"},
	// The storage driver and the hooks decode their own subtrees; their
	// errors still name the file's lines.
	{"bad-storage-unknown-key.yaml", `line 8: unknown key "shard_cont" in storage.config (memory)`},
	{"bad-storage-memory-type.yaml", "line 11: storage.config.gc_interval: cannot unmarshal !!str `often` into a duration"},
	{"bad-storage-snapshot-dir.yaml", "line 9: storage.config.snapshot_path: directory testdata/no-such-state-dir is not writable: no such file or directory"},
	{"bad-storage-redis-key.yaml", `line 10: unknown key "shard_count" in storage.config (redis)`},
	{"bad-storage-redis-type.yaml", "line 6: storage.config.redis_read_timeout: cannot unmarshal !!str `1 second` into a duration"},
	{"bad-hook-option-key.yaml", `line 8: unknown key "announce_brust" in prehooks[0].options (rate limit)`},
	{"bad-hook-option-type.yaml", "line 14: posthooks[1].options.max_increase_delta: cannot unmarshal !!str `a minute` into an integer"},
	{"bad-redis-broker.yaml", `line 7: storage.config.redis_broker: scheme must be redis or rediss, got "http"`},
	{"bad-hook-missing-name.yaml", "line 5: prehooks[0].name: must be set"},
	{"bad-udp-numwant.yaml", "line 4: udp.max_numwant: must be > 0 and <= 3638, got -1"},
	{"bad-https-without-cert.yaml", "line 2: http.tls_cert_path: required when https_addr is set\nline 2: http.tls_key_path: required when https_addr is set"},
	{"bad-hook-options.yaml", "line 10: prehooks[1].options (client approval): whitelist and blacklist are both set; use one"},
	{"bad-posthook-unknown.yaml", `line 5: posthooks[0].name: unknown hook "jwt-typo" (known: ` + strings.Join(middleware.HookNames(), ", ") + ")"},
	{"bad-hook-unknown.yaml", `line 5: prehooks[0].name: unknown hook "no such hook" (known: ` + strings.Join(middleware.HookNames(), ", ") + ")"},
}

// TestBadConfigs runs every bad file through `chihaya validate` and, but
// with -short, through the daemon's start (the binary, which logs the error
// and exits with status 1), and checks that both report exactly the
// expected error.
func TestBadConfigs(t *testing.T) {
	for _, tt := range badConfigs {
		t.Run(strings.TrimSuffix(tt.file, ".yaml"), func(t *testing.T) {
			path := filepath.Join("testdata", tt.file)
			want := path + ": " + tt.want
			_, _, err := runCmd(t, "validate", "--config", path)
			if err == nil || err.Error() != want {
				t.Errorf("validate --config %s:\n got: %v\nwant: %s", path, err, want)
			}
			if testing.Short() {
				return
			}
			d := daemontest.StartFile(t, path, daemontest.NoWait())
			if code := d.ExitCode(t); code != 1 {
				t.Fatalf("chihaya --config %s: exit status %d, want 1", path, code)
			}
			if got := d.WaitLine(t, "chihaya failed").Str("error"); got != want {
				t.Errorf("chihaya --config %s:\n got: %s\nwant: %s", path, got, want)
			}
		})
	}
}

// TestStartPlacesSubtreeErrors follows start-up's path in-process (also
// under -short, where TestBadConfigs does not run the binary): readConfig,
// then the store and the hooks built from what it returns.
func TestStartPlacesSubtreeErrors(t *testing.T) {
	for _, tt := range []struct {
		file, want string
	}{
		{"bad-hook-option-key.yaml", `line 8: unknown key "announce_brust" in prehooks[0].options (rate limit)`},
		{"bad-hook-option-type.yaml", "line 14: posthooks[1].options.max_increase_delta: cannot unmarshal !!str `a minute` into an integer"},
		{"bad-storage-redis-key.yaml", `line 10: unknown key "shard_count" in storage.config (redis)`},
		{"bad-storage-memory-type.yaml", "line 11: storage.config.gc_interval: cannot unmarshal !!str `often` into a duration"},
		{"bad-storage-snapshot-dir.yaml", "line 9: storage.config.snapshot_path: directory testdata/no-such-state-dir is not writable: no such file or directory"},
	} {
		t.Run(strings.TrimSuffix(tt.file, ".yaml"), func(t *testing.T) {
			path := filepath.Join("testdata", tt.file)
			_, cfg, err := chihaya.ReadConfig(path)
			if err == nil {
				var store storage.PeerStore
				if store, err = chihaya.NewStore(cfg); err == nil {
					t.Cleanup(func() { _ = store.Stop(context.Background()) })
					_, _, err = chihaya.NewHooks(cfg)
				}
				if err != nil {
					err = fmt.Errorf("%s: %w", path, err)
				}
			}
			if want := path + ": " + tt.want; err == nil || err.Error() != want {
				t.Errorf("loading %s:\n got: %v\nwant: %s", path, err, want)
			}
		})
	}
}

// TestEveryBadFileIsTested keeps testdata and the table in step: a bad
// file without an expected error would never be checked.
func TestEveryBadFileIsTested(t *testing.T) {
	files, err := filepath.Glob("testdata/bad-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	inTable := map[string]bool{}
	for _, tt := range badConfigs {
		inTable[tt.file] = true
	}
	for _, f := range files {
		if !inTable[filepath.Base(f)] {
			t.Errorf("%s has no case in badConfigs", f)
		}
		delete(inTable, filepath.Base(f))
	}
	for f := range inTable {
		t.Errorf("badConfigs names testdata/%s, which does not exist", f)
	}
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "chihaya.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDefaults(t *testing.T) {
	path := writeConfig(t, "chihaya:\n  udp:\n    addr: \"127.0.0.1:0\"\n")
	written, cfg, err := chihaya.ReadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if written.ShutdownTimeout != 0 || written.Storage.Name != "" {
		t.Errorf("the written configuration has defaults in it: %+v", written)
	}
	checks := []struct {
		key       string
		got, want interface{}
	}{
		{"announce_interval", cfg.Logic.AnnounceInterval, 30 * time.Minute},
		{"min_announce_interval", cfg.Logic.MinAnnounceInterval, 15 * time.Minute},
		{"shutdown_timeout", cfg.ShutdownTimeout, 15 * time.Second},
		{"storage.name", cfg.Storage.Name, "memory"},
		{"metrics_addr", cfg.MetricsAddr, ""},
		{"enable_pprof", cfg.EnablePprof, false},
		{"udp.addr", cfg.UDP.Addr, "127.0.0.1:0"},
		{"http.addr", cfg.HTTP.Addr, ""},
		{"http.https_addr", cfg.HTTP.HTTPSAddr, ""},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.key, c.got, c.want)
		}
	}
}

func TestMetricsAddrNames(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"metrics_addr", "chihaya:\n  metrics_addr: \"127.0.0.1:6880\"\n  udp: {addr: \"127.0.0.1:0\"}\n", "127.0.0.1:6880"},
		{"upstream prometheus_addr", "chihaya:\n  prometheus_addr: \"127.0.0.1:6881\"\n  udp: {addr: \"127.0.0.1:0\"}\n", "127.0.0.1:6881"},
		{"neither", "chihaya:\n  udp: {addr: \"127.0.0.1:0\"}\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, cfg, err := chihaya.ReadConfig(writeConfig(t, tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.MetricsAddr != tt.want {
				t.Errorf("metrics_addr = %q, want %q", cfg.MetricsAddr, tt.want)
			}
		})
	}
}

func TestRestartKeys(t *testing.T) {
	base := "chihaya:\n  udp: {addr: \"127.0.0.1:0\"}\n"
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"same file", base, nil},
		{"hooks only", base + "  prehooks: []\n  posthooks: []\n", nil},
		{"udp address", "chihaya:\n  udp: {addr: \"127.0.0.1:1\"}\n", []string{"udp"}},
		{"interval and storage", base + "  announce_interval: 10m\n  storage: {name: memory}\n", []string{"announce_interval/min_announce_interval", "storage"}},
		{"metrics", base + "  metrics_addr: \"127.0.0.1:0\"\n  shutdown_timeout: 1s\n", []string{"metrics_addr", "shutdown_timeout"}},
	}
	old, err := chihaya.ParseConfig([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := chihaya.ParseConfig([]byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if got := chihaya.RestartKeys(old, c); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("restartKeys = %q, want %q", got, tt.want)
			}
		})
	}
}

func runCmd(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newRootCmd(&out, &errOut)
	cmd.SetArgs(args)
	err = cmd.Execute()
	return out.String(), errOut.String(), err
}

func TestValidateCommand(t *testing.T) {
	files := []string{"../../example_config.yaml"}
	dist, err := filepath.Glob("../../dist/config/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(dist) == 0 {
		t.Error("no example configurations in dist/config")
	}
	files = append(files, dist...)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			// Files the deployment has (a snapshot's state directory) are
			// replaced by temporary ones, as for the docs' examples.
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if local := localFiles(t, string(b)); local != string(b) {
				f = filepath.Join(t.TempDir(), filepath.Base(f))
				if err := os.WriteFile(f, []byte(local), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			out, _, err := runCmd(t, "validate", "--config", f)
			if err != nil {
				t.Fatalf("validate --config %s: %v", f, err)
			}
			if out != "configuration OK\n" {
				t.Errorf("validate printed %q", out)
			}
		})
	}
	t.Run("bad file", func(t *testing.T) {
		out, _, err := runCmd(t, "validate", "--config", "testdata/bad-no-listener.yaml")
		if err == nil || !strings.Contains(err.Error(), "at least one must be set") {
			t.Errorf("validate of a bad file: err = %v", err)
		}
		if out != "" {
			t.Errorf("validate of a bad file printed %q", out)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		if _, _, err := runCmd(t, "validate", "--config", "testdata/does-not-exist.yaml"); !os.IsNotExist(err) {
			t.Errorf("validate of a missing file: err = %v, want not-exist", err)
		}
	})
}

func TestVersionCommand(t *testing.T) {
	tests := []struct {
		name, version, commit string
		want                  []string
	}{
		{"from the build info", "", "", []string{"chihaya ", runtime.Version()}},
		{"from ldflags", "v3.1.0", "abc123", []string{"chihaya v3.1.0 (commit abc123, " + runtime.Version()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			oldV, oldC := version, commit
			t.Cleanup(func() { version, commit = oldV, oldC })
			version, commit = tt.version, tt.commit
			out, _, err := runCmd(t, "version")
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("version printed %q, want it to contain %q", out, w)
				}
			}
		})
	}
}

// TestHookBadOptionsThroughValidate puts every hook's rejected options
// (middleware/<hook>/testdata/bad-*.yaml) into a configuration file and
// runs `chihaya validate` on it: the operator reads the hook's own error,
// keyed from the entry (prehooks[0].options...) and with its line in the
// file, the line the hook reported moved by where the options start.
func TestHookBadOptionsThroughValidate(t *testing.T) {
	found := 0
	for name, typ := range hookConfigTypes {
		dir := "../../" + strings.TrimPrefix(typ.PkgPath(), "github.com/chihaya/chihaya/")
		head := "chihaya:\n  udp:\n    addr: \"127.0.0.1:0\"\n  prehooks:\n    - name: " + name + "\n      options:\n"
		found += throughValidate(t, name, dir, head, "        ",
			func(b []byte) error { return middleware.CheckHook(name, b) },
			func(text string) string { return strings.Replace(text, "options", "prehooks[0].options", 1) }, nil)
	}
	if found < 40 {
		t.Errorf("found %d bad options files; the search is broken", found)
	}
}

// TestDriverBadConfigsThroughValidate does the same with every driver's
// rejected storage.config (storage/<driver>/testdata/bad-*.yaml), whose
// errors the registry keys from the top of the configuration already.
func TestDriverBadConfigsThroughValidate(t *testing.T) {
	// What the daemon's decoding of the whole file rejects before a
	// driver sees it: the driver's registry is not asked, so the error
	// names no driver.
	daemonRejects := map[string]string{
		"memory/bad-not-a-mapping.yaml": "line 7: storage.config: cannot unmarshal !!seq into a mapping",
	}
	found := 0
	for name, typ := range storageConfigTypes {
		dir := "../../" + strings.TrimPrefix(typ.PkgPath(), "github.com/chihaya/chihaya/")
		head := "chihaya:\n  udp:\n    addr: \"127.0.0.1:0\"\n  storage:\n    name: " + name + "\n    config:\n"
		found += throughValidate(t, name, dir, head, "      ",
			func(b []byte) error { return storage.Check(context.Background(), name, b) },
			func(text string) string { return text }, daemonRejects)
	}
	if found < 20 {
		t.Errorf("found %d bad storage.config files; the search is broken", found)
	}
}

// throughValidate runs `chihaya validate` on head followed by each of
// dir's testdata/bad-*.yaml, indented, and checks that the error is the
// component's own (component(the file)), rewritten by key, with the
// component's line moved to the file's; an error the component gave no
// line gets one too. daemonRejects names, by "component/file", what the
// daemon's decoding of the whole file rejects itself, with the exact
// error. It returns the number of files.
func throughValidate(t *testing.T, name, dir, head, indent string, component func([]byte) error, key func(string) string, daemonRejects map[string]string) int {
	t.Helper()
	files, err := filepath.Glob(dir + "/testdata/bad-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	first := strings.Count(head, "\n") + 1 // the file's line of the subtree's first
	lineRE := regexp.MustCompile(`^line (\d+): (.*)$`)
	for _, f := range files {
		t.Run(name+"/"+filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			// Files the subtree names are found from here too.
			sub := strings.ReplaceAll(string(b), "testdata/", dir+"/testdata/")
			compErr := component([]byte(sub))
			if compErr == nil {
				t.Fatalf("%s accepts %s", name, f)
			}
			var file strings.Builder
			file.WriteString(head)
			for _, l := range strings.SplitAfter(sub, "\n") {
				if l != "" {
					file.WriteString(indent + l)
				}
			}
			path := writeConfig(t, file.String())
			_, _, err = runCmd(t, "validate", "--config", path)
			if err == nil {
				t.Fatalf("validate accepted %s inside a configuration", f)
			}
			if want, ok := daemonRejects[name+"/"+filepath.Base(f)]; ok {
				if got := strings.TrimPrefix(err.Error(), path+": "); got != want {
					t.Errorf("validate:\n got: %s\nwant: %s", got, want)
				}
				return
			}
			got := strings.Split(strings.TrimPrefix(err.Error(), path+": "), "\n")
			want := strings.Split(compErr.Error(), "\n")
			if len(got) != len(want) {
				t.Fatalf("validate:\n%v\n%s:\n%v", err, name, compErr)
			}
			for i := range want {
				g := lineRE.FindStringSubmatch(got[i])
				if g == nil {
					t.Errorf("validate: %q has no line", got[i])
					continue
				}
				rest := want[i]
				if w := lineRE.FindStringSubmatch(want[i]); w != nil {
					n, _ := strconv.Atoi(w[1])
					if g[1] != strconv.Itoa(n+first-1) {
						t.Errorf("validate says line %s; %s said line %d of its subtree, line %d of the file", g[1], name, n, n+first-1)
					}
					rest = w[2]
				}
				if wantRest := key(rest); g[2] != wantRest {
					t.Errorf("validate:\n got: %s\nwant: line %s: %s", got[i], g[1], wantRest)
				}
			}
		})
	}
	return len(files)
}
