package udp

import (
	"runtime"
	"testing"
	"time"

	"github.com/chihaya/chihaya/pkg/yamlconf"
	"go.yaml.in/yaml/v2"
)

func TestConfigDecodesUpstreamKeys(t *testing.T) {
	const doc = `
addr: "0.0.0.0:6969"
max_clock_skew: 10s
private_key: "paste a random string here that will be used to hmac connection IDs"
enable_request_timing: true
allow_ip_spoofing: true
max_numwant: 100
default_numwant: 50
max_scrape_infohashes: 50
sockets: 3
batch_size: 16
read_buffer_size: 1048576
`
	var c Config
	if err := yaml.UnmarshalStrict([]byte(doc), &c); err != nil {
		t.Fatalf("decode: %v", err)
	}
	want := Config{
		Addr: "0.0.0.0:6969", MaxClockSkew: 10 * time.Second,
		PrivateKey:          "paste a random string here that will be used to hmac connection IDs",
		EnableRequestTiming: true, AllowIPSpoofing: true,
		MaxNumWant: 100, DefaultNumWant: 50, MaxScrapeInfoHashes: 50,
		Sockets: 3, BatchSize: 16, ReadBufferSize: 1 << 20,
	}
	if c != want {
		t.Errorf("decoded %+v,\nwant    %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestConfigWithDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   Config
		want Config
	}{
		{
			name: "empty",
			in:   Config{},
			want: Config{MaxClockSkew: 10 * time.Second, MaxNumWant: 100, DefaultNumWant: 50, MaxScrapeInfoHashes: 50,
				Sockets: runtime.GOMAXPROCS(0), BatchSize: 32, ReadBufferSize: 4 << 20},
		},
		{
			name: "a lower max_numwant lowers the default numwant",
			in:   Config{MaxNumWant: 30},
			want: Config{MaxClockSkew: 10 * time.Second, MaxNumWant: 30, DefaultNumWant: 30, MaxScrapeInfoHashes: 50,
				Sockets: runtime.GOMAXPROCS(0), BatchSize: 32, ReadBufferSize: 4 << 20},
		},
		{
			name: "set values are kept",
			in:   Config{Addr: ":6969", MaxClockSkew: time.Second, MaxNumWant: 7, DefaultNumWant: 3, MaxScrapeInfoHashes: 2, Sockets: 1, BatchSize: 1, ReadBufferSize: 1},
			want: Config{Addr: ":6969", MaxClockSkew: time.Second, MaxNumWant: 7, DefaultNumWant: 3, MaxScrapeInfoHashes: 2, Sockets: 1, BatchSize: 1, ReadBufferSize: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.in.WithDefaults()
			if got != tt.want {
				t.Errorf("WithDefaults() = %+v,\nwant %+v", got, tt.want)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("defaults do not validate: %v", err)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*Config)
		wantErr string
	}{
		{"addr without port", func(c *Config) { c.Addr = "localhost" }, `udp.addr: must be host:port, got "localhost"`},
		{"addr with a bad port", func(c *Config) { c.Addr = ":70000" }, `udp.addr: port must be 0-65535, got "70000"`},
		{"addr with a named port", func(c *Config) { c.Addr = ":tracker" }, `udp.addr: port must be 0-65535, got "tracker"`},
		{"negative clock skew", func(c *Config) { c.MaxClockSkew = -time.Second }, "udp.max_clock_skew: must be between 0 and 1h0m0s, got -1s"},
		{"clock skew above an hour", func(c *Config) { c.MaxClockSkew = 2 * time.Hour }, "udp.max_clock_skew: must be between 0 and 1h0m0s, got 2h0m0s"},
		{"negative max_numwant", func(c *Config) { c.MaxNumWant = -1 }, "udp.max_numwant: must be > 0 and <= 3638, got -1"},
		{"max_numwant beyond a datagram", func(c *Config) { c.MaxNumWant = 5000 }, "udp.max_numwant: must be > 0 and <= 3638, got 5000"},
		{"negative default_numwant", func(c *Config) { c.DefaultNumWant = -1 }, "udp.default_numwant: must be > 0, got -1"},
		{"default_numwant above max_numwant", func(c *Config) { c.DefaultNumWant = 101 }, "udp.default_numwant: must be <= max_numwant (100), got 101"},
		{"negative max_scrape_infohashes", func(c *Config) { c.MaxScrapeInfoHashes = -1 }, "udp.max_scrape_infohashes: must be > 0, got -1"},
		{"negative sockets", func(c *Config) { c.Sockets = -1 }, "udp.sockets: must be between 1 and 1024, got -1"},
		{"too many sockets", func(c *Config) { c.Sockets = 2000 }, "udp.sockets: must be between 1 and 1024, got 2000"},
		{"negative batch_size", func(c *Config) { c.BatchSize = -1 }, "udp.batch_size: must be between 1 and 1024, got -1"},
		{"negative read_buffer_size", func(c *Config) { c.ReadBufferSize = -1 }, "udp.read_buffer_size: must be >= 0, got -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Addr: "127.0.0.1:0"}.WithDefaults()
			tt.change(&c)
			err := yamlconf.Under(c.Validate(), "udp") // as the daemon keys it
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("Validate() = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
