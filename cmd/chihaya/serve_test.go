package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chihaya/chihaya"
	"github.com/chihaya/chihaya/internal/cleanup"
	"github.com/chihaya/chihaya/internal/daemontest"
)

// startInProcess starts the tracker from the configuration file at path
// and stops it when the test ends.
func startInProcess(t *testing.T, path string, edit func(*chihaya.Config)) *chihaya.Tracker {
	t.Helper()
	written, cfg, err := chihaya.ReadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(&cfg)
	}
	s, err := chihaya.Start(path, written, cfg)
	if err != nil {
		t.Fatal(err)
	}
	cleanup.Stop(t, s.Stop)
	return s
}

// TestExampleConfigStarts starts example_config.yaml as shipped, except
// that its listeners move to free loopback ports.
func TestExampleConfigStarts(t *testing.T) {
	s := startInProcess(t, "../../example_config.yaml", func(c *chihaya.Config) {
		c.HTTP.Addr = "127.0.0.1:0"
		c.UDP.Addr = "127.0.0.1:0"
		c.MetricsAddr = "127.0.0.1:0"
	})
	for _, f := range []string{"http", "udp", "metrics"} {
		if s.Addr(f) == "" {
			t.Errorf("example_config.yaml does not start the %s listener", f)
		}
	}
	udpConnect(t, s.Addr("udp"))
	if status, body := daemontest.Get(t, "http://"+s.Addr("metrics")+"/readyz"); status != 200 {
		t.Errorf("/readyz = %d %q", status, body)
	}
}

func announceURL(addr string, infoHash byte) string {
	ih := strings.Repeat(fmt.Sprintf("%%%02X", infoHash), 20)
	return "http://" + addr + "/announce?info_hash=" + ih +
		"&peer_id=-TR3000-abcdefghijkl&port=6881&uploaded=0&downloaded=0&left=100&compact=1"
}

func TestReloadSwapsHooks(t *testing.T) {
	const base = "chihaya:\n  http:\n    addr: \"127.0.0.1:0\"\n"
	path := writeConfig(t, base)
	s := startInProcess(t, path, nil)
	addr := s.Addr("http")

	announce := func(ih byte) string {
		t.Helper()
		status, body := daemontest.Get(t, announceURL(addr, ih))
		if status != 200 {
			t.Fatalf("announce: HTTP %d %q", status, body)
		}
		return body
	}
	if body := announce(0xaa); strings.Contains(body, "failure reason") {
		t.Fatalf("announce without hooks failed: %q", body)
	}

	blacklist := base + "  prehooks:\n    - name: torrent approval\n      options:\n        blacklist: [\"" + strings.Repeat("aa", 20) + "\"]\n"
	steps := []struct {
		name     string
		file     string
		ih       byte
		wantFail bool
	}{
		{"blacklist added", blacklist, 0xaa, true},
		{"other torrents still served", blacklist, 0xbb, false},
		{"bad file keeps the blacklist", blacklist + "  prehooks_typo: []\n", 0xaa, true},
		{"blacklist removed", base, 0xaa, false},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := os.WriteFile(path, []byte(st.file), 0o600); err != nil {
				t.Fatal(err)
			}
			s.Reload()
			body := announce(st.ih)
			if got := strings.Contains(body, "unapproved torrent"); got != st.wantFail {
				t.Errorf("announce refused = %v, want %v; reply %q", got, st.wantFail, body)
			}
		})
	}
}

// TestValidateDoesNotFetchKeys: `chihaya validate` checks a jwt hook's
// options but must not reach out to the key set URL, which may be on a
// network the machine that validates cannot (or must not) reach.
func TestValidateDoesNotFetchKeys(t *testing.T) {
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetches.Add(1)
		_, _ = w.Write([]byte(`{"keys":[]}`))
	}))
	t.Cleanup(srv.Close)
	cfg := "chihaya:\n  http:\n    addr: \"127.0.0.1:0\"\n  prehooks:\n    - name: jwt\n      options:\n" +
		"        issuer: i\n        audience: a\n        jwk_set_url: \"" + srv.URL + "\"\n"
	if _, err := chihaya.Check(context.Background(), writeConfig(t, cfg)); err != nil {
		t.Fatalf("checkConfig: %v", err)
	}
	if n := fetches.Load(); n != 0 {
		t.Fatalf("validate fetched the JWK Set %d times", n)
	}
	// The options are still checked.
	bad := strings.Replace(cfg, "        issuer: i\n", "", 1)
	_, err := chihaya.Check(context.Background(), writeConfig(t, bad))
	if err == nil || !strings.HasSuffix(err.Error(), "line 6: prehooks[0].options.issuer: must be set") {
		t.Fatalf("checkConfig with no issuer: %v", err)
	}
}

// TestValidateWarnsOfSpoofableProxyHeader: a proxy header honoured from
// any sender lets a client choose its address, and with the rate limit
// its budget; validate says so, and still accepts the file (upstream
// files set real_ip_header without any list of proxies).
func TestValidateWarnsOfSpoofableProxyHeader(t *testing.T) {
	cfg := "chihaya:\n  http:\n    addr: \"127.0.0.1:0\"\n    real_ip_header: x-real-ip\n" +
		"  prehooks:\n    - name: rate limit\n      options:\n        announces_per_second: 1\n"
	stdout, stderr, err := runCmd(t, "validate", "--config", writeConfig(t, cfg))
	if err != nil || stdout != "configuration OK\n" {
		t.Fatalf("validate: %v, %q", err, stdout)
	}
	for _, want := range []string{"warning: http.real_ip_header is honoured from any sender", "the rate limit", "http.trusted_proxies"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("validate's warnings %q do not say %q", stderr, want)
		}
	}
	trusted := strings.Replace(cfg, "    real_ip_header: x-real-ip\n", "    real_ip_header: x-real-ip\n    trusted_proxies: [127.0.0.1]\n", 1)
	if _, stderr, err := runCmd(t, "validate", "--config", writeConfig(t, trusted)); err != nil || stderr != "" {
		t.Fatalf("validate with trusted proxies: %v, warnings %q; want none", err, stderr)
	}
}

// TestValidateLoadsTLSKeyPair: a key pair the HTTPS listener could not
// load fails validate, as it would fail the daemon's start.
func TestValidateLoadsTLSKeyPair(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.pem")
	cfg := "chihaya:\n  http:\n    https_addr: \"127.0.0.1:0\"\n    tls_cert_path: " + missing + "\n    tls_key_path: " + missing + "\n"
	_, err := chihaya.Check(context.Background(), writeConfig(t, cfg))
	if err == nil || !strings.Contains(err.Error(), "http: load TLS key pair: open "+missing+": no such file or directory") {
		t.Fatalf("checkConfig with a missing key pair: %v", err)
	}
}
