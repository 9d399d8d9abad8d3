// Package webhook holds what the hooks that call an operator's service
// over HTTP share: the HTTP client (TLS with the operator's CA and client
// certificate, redirects never followed), and request signing with an
// HMAC-SHA256 over a timestamp and the body.
//
// A signed request carries two headers:
//
//	X-Chihaya-Timestamp: 1765000000
//	X-Chihaya-Signature: sha256=<hex of HMAC-SHA256(secret, timestamp + "." + body)>
//
// A service recomputes the HMAC over the timestamp header, a dot and the
// raw body, compares it in constant time, and refuses a timestamp further
// than its replay window (Verify uses MaxSkew) from its own clock, so that
// a recorded request cannot be replayed later.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/chihaya/chihaya/pkg/yamlconf"
)

// The signature headers.
const (
	TimestampHeader = "X-Chihaya-Timestamp"
	SignatureHeader = "X-Chihaya-Signature"
)

// MaxSkew is the replay window Verify allows between the timestamp of a
// request and the verifier's clock, either way.
const MaxSkew = 5 * time.Minute

// TLS names the files of a client's TLS settings; all are optional. The
// hooks that use it offer them as the options tls_ca_file, tls_cert_file
// and tls_key_file, which ClientTLS's errors name.
type TLS struct {
	// CAFile holds the PEM certificates that verify the service; empty
	// means the system's roots.
	CAFile string
	// CertFile and KeyFile hold the client certificate presented for
	// mutual TLS; both or neither.
	CertFile, KeyFile string
}

// CheckTLS checks t against the URL it is for, without reading the files:
// a client certificate and its key go together, and a CA or a client
// certificate needs an https URL. Errors name the option.
func CheckTLS(rawURL string, t TLS) error {
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		return yamlconf.Errorf("tls_key_file", "must be set with tls_cert_file")
	case t.KeyFile != "" && t.CertFile == "":
		return yamlconf.Errorf("tls_cert_file", "must be set with tls_key_file")
	}
	if t.CAFile != "" || t.CertFile != "" {
		if u, err := url.Parse(rawURL); err != nil || u.Scheme != "https" {
			return yamlconf.Errorf("url", "must be https with tls_ca_file or tls_cert_file, got %q", rawURL)
		}
	}
	return nil
}

// ReadSecret reads a signing secret from a file. Surrounding white space
// (the newline an editor adds) is not part of it; an empty secret is an
// error.
func ReadSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil, fmt.Errorf("%s: empty", path)
	}
	return []byte(s), nil
}

// ClientTLS builds the TLS settings t names. Errors name the option
// (yamlconf.Errorf: "tls_ca_file") and the file.
func ClientTLS(t TLS) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, yamlconf.Errorf("tls_ca_file", "%w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, yamlconf.Errorf("tls_ca_file", "%s: no PEM certificate in it", t.CAFile)
		}
		c.RootCAs = pool
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, yamlconf.Errorf("tls_cert_file", "a client certificate needs both its certificate and its key")
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, yamlconf.Errorf("tls_cert_file", "%w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// CheckURL reports why raw is not a URL a service can be called at: an
// http or https URL with a host, and a port, if any, from 1 to 65535.
// Hooks return it keyed by their option ("url").
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return fmt.Errorf("must be an http or https URL, got %q", raw)
	}
	return checkPort(u.Port(), raw)
}

// CheckAddrPort reports a host:port address whose port is not 1 to 65535;
// raw is what the operator wrote, for the message.
func CheckAddrPort(addr, raw string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%v in %q", err, raw)
	}
	return checkPort(port, raw)
}

func checkPort(port, raw string) error {
	if port == "" {
		return nil
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %s is not 1 to 65535 in %q", port, raw)
	}
	return nil
}

// NewClient returns an HTTP client for calls to an operator's service: at
// most maxConns connections, each request bounded by timeout, and
// redirects returned as they are instead of followed (a redirect is a
// misconfigured service, and following it would send signed requests
// elsewhere).
func NewClient(tlsConf *tls.Config, maxConns int, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tlsConf,
		TLSHandshakeTimeout: timeout,
		MaxConnsPerHost:     maxConns,
		MaxIdleConns:        maxConns,
		MaxIdleConnsPerHost: maxConns,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   tlsConf != nil,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// Endpoint is a service's URL with what calls to it need from the
// operator's files: the signing secret and the HTTP client (with its TLS
// settings). Reload reads the files again, so that a rotated secret or
// client certificate takes effect on a configuration reload; calls made
// meanwhile use either the old or the new ones, never a mix.
type Endpoint struct {
	URL        string
	SecretFile string
	TLS        TLS
	MaxConns   int
	Timeout    time.Duration

	cur atomic.Pointer[endpointFiles]
}

type endpointFiles struct {
	secret []byte
	client *http.Client
}

// Open reads the files of e for the first time. Errors name the option
// (secret_file, tls_ca_file, tls_cert_file).
func (e *Endpoint) Open() error { return e.Reload() }

// Reload reads the files of e again and swaps them in. On error the ones
// in use are kept.
func (e *Endpoint) Reload() error {
	var f endpointFiles
	if e.SecretFile != "" {
		var err error
		if f.secret, err = ReadSecret(e.SecretFile); err != nil {
			return yamlconf.Errorf("secret_file", "%w", err)
		}
	}
	tc, err := ClientTLS(e.TLS)
	if err != nil {
		return err // keyed by ClientTLS
	}
	if !strings.HasPrefix(e.URL, "https:") {
		tc = nil
	}
	f.client = NewClient(tc, e.MaxConns, e.Timeout)
	if old := e.cur.Swap(&f); old != nil {
		old.client.CloseIdleConnections()
	}
	return nil
}

// Post sends body to the endpoint, signed when it has a secret, with the
// content type given, under ctx.
func (e *Endpoint) Post(ctx context.Context, contentType, userAgent string, body []byte) (*http.Response, error) {
	f := e.cur.Load()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.URL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", userAgent)
	Sign(req, f.secret, body, time.Now())
	return f.client.Do(req)
}

// Close closes the idle connections to the endpoint.
func (e *Endpoint) Close() {
	if f := e.cur.Load(); f != nil {
		f.client.CloseIdleConnections()
	}
}

// Sign sets the signature headers of req, whose body is body, for the time
// now. A nil secret leaves req unsigned.
func Sign(req *http.Request, secret, body []byte, now time.Time) {
	if secret == nil {
		return
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	req.Header.Set(TimestampHeader, ts)
	req.Header.Set(SignatureHeader, "sha256="+hex.EncodeToString(mac(secret, ts, body)))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Errors of Verify.
var (
	ErrUnsigned     = errors.New("webhook: request not signed")
	ErrBadSignature = errors.New("webhook: signature does not match")
	ErrStale        = errors.New("webhook: timestamp outside the replay window")
)

// Verify checks the signature headers h of a request with body body, as a
// service would: the HMAC must match and the timestamp must lie within
// MaxSkew of now. Services written in Go may use it; it is the reference
// for those written in other languages.
func Verify(h http.Header, secret, body []byte, now time.Time) error {
	ts, sig := h.Get(TimestampHeader), h.Get(SignatureHeader)
	if ts == "" || sig == "" {
		return ErrUnsigned
	}
	got, err := hex.DecodeString(strings.TrimPrefix(sig, "sha256="))
	if err != nil || !strings.HasPrefix(sig, "sha256=") {
		return ErrBadSignature
	}
	if !hmac.Equal(got, mac(secret, ts, body)) {
		return ErrBadSignature
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); d > MaxSkew || d < -MaxSkew {
		return ErrStale
	}
	return nil
}
