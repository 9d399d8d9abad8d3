package http

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/chihaya/chihaya/internal/configtest"
)

// loadConfig reads a testdata file the way the daemon reads the `http:`
// section: strictly, then defaults, then validation.
func loadConfig(t *testing.T, name string) (Config, error) {
	t.Helper()
	return configtest.Load(t, filepath.Join("testdata", "config", name), "http", Config.WithDefaults)
}

func TestConfigGood(t *testing.T) {
	c, err := loadConfig(t, "good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Addr:                "127.0.0.1:6969",
		HTTPSAddr:           "127.0.0.1:6970",
		TLSCertPath:         "cert.pem",
		TLSKeyPath:          "key.pem",
		ReadTimeout:         5 * time.Second,
		WriteTimeout:        5 * time.Second,
		IdleTimeout:         time.Minute,
		EnableKeepAlive:     true,
		EnableRequestTiming: true,
		AnnounceRoutes:      []string{"/:passkey/announce"},
		ScrapeRoutes:        []string{"/:passkey/scrape"},
		RealIPHeader:        "X-Real-IP",
		TrustedProxies:      []string{"10.0.0.0/8", "::1"},
		MaxNumWant:          200,
		DefaultNumWant:      30,
		MaxScrapeInfoHashes: 70,
		MaxHeaderBytes:      16384,
		AllowFullScrape:     true,
		FullScrapeInterval:  5 * time.Minute,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("decoded\n%+v\nwant\n%+v", c, want)
	}
}

func TestConfigDefaults(t *testing.T) {
	got := Config{Addr: ":6969"}.WithDefaults()
	want := Config{
		Addr:                ":6969",
		ReadTimeout:         2 * time.Second,
		WriteTimeout:        2 * time.Second,
		IdleTimeout:         30 * time.Second,
		AnnounceRoutes:      []string{"/announce"},
		ScrapeRoutes:        []string{"/scrape"},
		MaxNumWant:          100,
		DefaultNumWant:      50,
		MaxScrapeInfoHashes: 50,
		MaxHeaderBytes:      8192,
		FullScrapeInterval:  time.Minute,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("WithDefaults =\n%+v\nwant\n%+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
	if err := (Config{}).WithDefaults().Validate(); err != nil {
		t.Errorf("a disabled frontend (no addr, no https_addr) does not validate: %v", err)
	}
	if got := (Config{Addr: ":1", MaxNumWant: 20}).WithDefaults().DefaultNumWant; got != 20 {
		t.Errorf("default_numwant with max_numwant 20 = %d, want 20", got)
	}
}

func TestConfigBad(t *testing.T) {
	tests := []struct {
		file string
		want string
	}{
		{"bad-https-without-cert.yaml", "http.tls_cert_path: required when https_addr is set\nhttp.tls_key_path: required when https_addr is set"},
		{"bad-negative-timeout.yaml", "http.write_timeout: must be > 0, got -1s"},
		{"bad-max-numwant.yaml", "http.max_numwant: must be > 0, got -1"},
		{"bad-default-numwant.yaml", "http.default_numwant: must be between 0 and max_numwant (10), got 20"},
		{"bad-max-scrape-infohashes.yaml", "http.max_scrape_infohashes: must be > 0, got -5"},
		{"bad-max-header-bytes.yaml", "http.max_header_bytes: must be >= 4096, got 1024"},
		{"bad-real-ip-header.yaml", `http.real_ip_header: not a header name: "X-Real-IP: yes"`},
		{"bad-full-scrape-interval.yaml", "http.full_scrape_interval: must be > 0, got -5s"},
		{"bad-trusted-proxies.yaml", `http.trusted_proxies[1]: "not-a-network" is neither an address nor a CIDR`},
		{"bad-route.yaml", `http.announce_routes[0]: must start with '/', got "announce"`},
		{"bad-route-conflict.yaml", "http.announce_routes[1]: a handle is already registered for path '/announce'"},
		{"bad-route-wildcard-conflict.yaml", "http.announce_routes[1]: wildcard route ':passkey' conflicts with existing children in path '/:passkey/announce'"},
		{"bad-unknown-key.yaml", `line 2: unknown key "max_num_want" in http`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := loadConfig(t, tt.file)
			if err == nil {
				t.Fatal("accepted")
			}
			if err.Error() != tt.want {
				t.Errorf("error =\n%s\nwant\n%s", err, tt.want)
			}
		})
	}
}
