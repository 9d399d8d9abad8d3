package websocket

import (
	"reflect"
	"testing"
	"time"

	"github.com/chihaya/chihaya/internal/configtest"
)

func TestConfigGood(t *testing.T) {
	c, err := configtest.Load(t, "good.yaml", "websocket", Config.WithDefaults)
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
	configtest.BadSections(t, "websocket", Config.WithDefaults, []configtest.Case{
		{File: "bad-addr.yaml", Want: `websocket.addr: must be host:port, got "localhost"`},
		{File: "bad-key-without-cert.yaml", Want: "websocket.tls_cert_path: required when tls_key_path is set"},
		{File: "bad-origin.yaml", Want: `websocket.allowed_origins[0]: must be an origin such as https://example.com, got "example.com"`},
		{File: "bad-idle-shorter-than-interval.yaml", Want: "websocket.idle_timeout: must be longer than announce_interval (10m0s), got 5m0s: clients are idle between announces"},
		{File: "bad-max-message-bytes.yaml", Want: "websocket.max_message_bytes: must be >= 4096, got 1000"},
		{File: "bad-max-offers.yaml", Want: "websocket.max_offers: must be > 0, got -1"},
		{File: "bad-real-ip-without-proxies.yaml", Want: "websocket.trusted_proxies: required with real_ip_header: list the proxies' addresses, or anyone could choose the address they are counted under"},
		{File: "bad-trusted-proxies.yaml", Want: `websocket.trusted_proxies[0]: "10.0.0.0/33" is neither an address nor a CIDR`},
		{File: "bad-route.yaml", Want: `websocket.routes[0]: must start with '/', got "announce"`},
		{File: "bad-route-conflict.yaml", Want: "websocket.routes[1]: wildcard route ':passkey' conflicts with existing children in path '/:passkey/announce'"},
		{File: "bad-unknown-key.yaml", Want: `line 2: unknown key "max_conections_per_ip" in websocket`},
	})
}
