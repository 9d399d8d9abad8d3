package redis

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chihaya/chihaya/storage/redis/redistest"
)

// writeCert writes a self-signed certificate for 127.0.0.1 and its key,
// and returns their paths.
func writeCert(t *testing.T) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "chihaya test redis"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

// TestTLS connects with rediss:// to a Redis serving TLS, trusting the
// certificate through redis_tls_ca_path, and checks that an untrusted
// certificate is refused.
func TestTLS(t *testing.T) {
	certPath, keyPath := writeCert(t)
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
			}
		})
	}
}
