package http

import (
	"reflect"
	"testing"
	"time"

	"github.com/chihaya/chihaya/internal/configtest"
)

func TestConfigGood(t *testing.T) {
	c, err := configtest.Load(t, "good.yaml", "http", Config.WithDefaults)
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
	configtest.BadSections(t, "http", Config.WithDefaults, []configtest.Case{
		{File: "bad-https-without-cert.yaml", Want: "http.tls_cert_path: required when https_addr is set\nhttp.tls_key_path: required when https_addr is set"},
		{File: "bad-negative-timeout.yaml", Want: "http.write_timeout: must be > 0, got -1s"},
		{File: "bad-max-numwant.yaml", Want: "http.max_numwant: must be > 0, got -1"},
		{File: "bad-default-numwant.yaml", Want: "http.default_numwant: must be between 0 and max_numwant (10), got 20"},
		{File: "bad-max-scrape-infohashes.yaml", Want: "http.max_scrape_infohashes: must be > 0, got -5"},
		{File: "bad-max-header-bytes.yaml", Want: "http.max_header_bytes: must be >= 4096, got 1024"},
		{File: "bad-real-ip-header.yaml", Want: `http.real_ip_header: not a header name: "X-Real-IP: yes"`},
		{File: "bad-full-scrape-interval.yaml", Want: "http.full_scrape_interval: must be > 0, got -5s"},
		{File: "bad-trusted-proxies.yaml", Want: `http.trusted_proxies[1]: "not-a-network" is neither an address nor a CIDR`},
		{File: "bad-route.yaml", Want: `http.announce_routes[0]: must start with '/', got "announce"`},
		{File: "bad-route-conflict.yaml", Want: "http.announce_routes[1]: a handle is already registered for path '/announce'"},
		{File: "bad-route-wildcard-conflict.yaml", Want: "http.announce_routes[1]: wildcard route ':passkey' conflicts with existing children in path '/:passkey/announce'"},
		{File: "bad-unknown-key.yaml", Want: `line 2: unknown key "max_num_want" in http`},
	})
}
