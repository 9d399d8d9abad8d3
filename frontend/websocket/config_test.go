package websocket

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/chihaya/chihaya/internal/configtest"
)

// loadConfig reads a testdata file the way the daemon reads the `websocket:`
// section: strictly, then defaults, then validation.
func loadConfig(t *testing.T, name string) (Config, error) {
	t.Helper()
	return configtest.Load(t, filepath.Join("testdata", "config", name), "websocket", Config.WithDefaults)
}

func TestConfigGood(t *testing.T) {
	c, err := loadConfig(t, "good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Addr: ":8000", TLSCertPath: "cert.pem", TLSKeyPath: "key.pem",
		AllowedOrigins: []string{"https://example.com"}, AnnounceInterval: time.Minute,
		Routes: []string{"/:passkey/announce"}, MaxMessageBytes: 32768, MaxOffers: 5, MaxScrapeInfoHashes: 100,
		MaxSwarmsPerConnection: 10, MaxConnectionsPerIP: 4, SendQueueMessages: 16,
		IdleTimeout: 3 * time.Minute, WriteTimeout: 5 * time.Second, OfferTimeout: time.Minute, EnableRequestTiming: true,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("decoded\n%+v\nwant\n%+v", c, want)
	}
}

func TestConfigDefaults(t *testing.T) {
	got := Config{Addr: ":8000"}.WithDefaults()
	want := Config{
		Addr: ":8000", AnnounceInterval: 2 * time.Minute, MaxMessageBytes: 64 << 10, MaxOffers: 10,
		MaxScrapeInfoHashes: 255, MaxSwarmsPerConnection: 1024, MaxConnectionsPerIP: 128, SendQueueMessages: 64,
		IdleTimeout: 5 * time.Minute, WriteTimeout: 10 * time.Second, OfferTimeout: 2 * time.Minute,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaults\n%+v\nwant\n%+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
}

func TestConfigBad(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"bad-addr.yaml", `websocket.addr: must be host:port, got "localhost"`},
		{"bad-key-without-cert.yaml", "websocket.tls_cert_path: required when tls_key_path is set"},
		{"bad-origin.yaml", `websocket.allowed_origins[0]: must be an origin such as https://example.com, got "example.com"`},
		{"bad-idle-shorter-than-interval.yaml", "websocket.idle_timeout: must be longer than announce_interval (10m0s), got 5m0s: clients are idle between announces"},
		{"bad-max-message-bytes.yaml", "websocket.max_message_bytes: must be >= 4096, got 1000"},
		{"bad-max-offers.yaml", "websocket.max_offers: must be > 0, got -1"},
		{"bad-real-ip-without-proxies.yaml", "websocket.trusted_proxies: required with real_ip_header: list the proxies' addresses, or anyone could choose the address they are counted under"},
		{"bad-trusted-proxies.yaml", `websocket.trusted_proxies[0]: "10.0.0.0/33" is neither an address nor a CIDR`},
		{"bad-route.yaml", `websocket.routes[0]: must start with '/', got "announce"`},
		{"bad-route-conflict.yaml", "websocket.routes[1]: wildcard route ':passkey' conflicts with existing children in path '/:passkey/announce'"},
		{"bad-unknown-key.yaml", `line 2: unknown key "max_conections_per_ip" in websocket`},
	} {
		t.Run(tc.file, func(t *testing.T) {
			_, err := loadConfig(t, tc.file)
			if err == nil || err.Error() != tc.want {
				t.Errorf("got  %v\nwant %s", err, tc.want)
			}
		})
	}
}
