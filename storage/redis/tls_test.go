package redis

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/chihaya/chihaya/internal/testcert"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/redis/redistest"
)

// TestTLS connects with rediss:// to a Redis serving TLS, trusting the
// certificate through redis_tls_ca_path, and checks that an untrusted
// certificate is refused.
func TestTLS(t *testing.T) {
	certPath, keyPath := testcert.Write(t)
	tlsPort := strconv.Itoa(redistest.FreePort(t))
	srv := startRedis(t, "tls-port "+tlsPort, "tls-cert-file "+certPath, "tls-key-file "+keyPath,
		"tls-ca-cert-file "+certPath, "tls-auth-clients no")
	if strings.Contains(srv.LogText(), "TLS") && strings.Contains(srv.LogText(), "not supported") {
		t.Skip("redis-server built without TLS")
	}
	url := "rediss://127.0.0.1:" + tlsPort + "/0"
	tests := []struct {
		name   string
		caPath string
		ok     bool
	}{
		{"trusted", certPath, true},
		{"untrusted", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, srv, func(c *Config) { c.RedisBroker, c.TLSCAPath = url, tc.caPath })
			err := s.Ready(context.Background())
			if (err == nil) != tc.ok {
				t.Fatalf("Ready: %v, want ok=%v", err, tc.ok)
			}
			if tc.ok {
				must(t, "put over TLS", s.PutSeeder(ih(1), peer4(1)))
				// An announce goes on the wire path's own connection
				// (resp.go), over TLS too.
				peers, c, _, err := s.Announce(nil, ih(1), storage.UpdateLeecher, 10, peer4(2))
				must(t, "announce over TLS", err)
				if len(peers) != 1 || peers[0] != peer4(1) || c != (storage.Counts{Seeders: 1}) {
					t.Errorf("announce over TLS: %v %+v, want the seeder", peers, c)
				}
			}
		})
	}
}
