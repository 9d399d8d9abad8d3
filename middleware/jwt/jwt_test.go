package jwt

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/internal/configtest"
	"github.com/chihaya/chihaya/middleware"
)

// TestLoadAccepts: options that load, and what they load to; the
// rejected ones are files in testdata (TestBadOptions).
func TestLoadAccepts(t *testing.T) {
	const base = "issuer: https://registry.example\naudience: tracker\njwk_set_url: https://registry.example/jwks.json\n"
	configtest.Accepts(t, plugin.Load, []configtest.Accept[Config]{
		{Name: "upstream keys, our defaults", YAML: base + "jwk_set_update_interval: 10m\n", Want: Config{
			Issuer: "https://registry.example", Audience: "tracker", JWKSetURL: "https://registry.example/jwks.json",
			JWKSetUpdateInterval: 10 * time.Minute, JWKSetFetchTimeout: 10 * time.Second, Leeway: 30 * time.Second, MaxTokenBytes: 4096,
		}},
		{Name: "our keys", YAML: base + "jwk_set_fetch_timeout: 2s\nleeway: 5s\nmax_token_bytes: 2048\n", Want: Config{
			Issuer: "https://registry.example", Audience: "tracker", JWKSetURL: "https://registry.example/jwks.json",
			JWKSetUpdateInterval: 5 * time.Minute, JWKSetFetchTimeout: 2 * time.Second, Leeway: 5 * time.Second, MaxTokenBytes: 2048,
		}},
		{Name: "no leeway", YAML: base + "leeway: 0s\n", Want: Config{
			Issuer: "https://registry.example", Audience: "tracker", JWKSetURL: "https://registry.example/jwks.json",
			JWKSetUpdateInterval: 5 * time.Minute, JWKSetFetchTimeout: 10 * time.Second, Leeway: 0, MaxTokenBytes: 4096,
		}},
	})
}

// Test keys, made once: RSA key generation takes a while.
var (
	keysOnce         sync.Once
	rsaKey, rsaKey2  *rsa.PrivateKey
	ecKey            *ecdsa.PrivateKey
	edKey            ed25519.PrivateKey
	testIH           = bittorrent.InfoHash{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, '%', '+', 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}
	testIHHex        = "0123456789abcdef252b0a0b0c0d0e0f10111213"
	issuer, audience = "https://registry.example", "tracker.example"
	testNow          = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
)

func keys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if rsaKey2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
		if _, edKey, err = ed25519.GenerateKey(rand.Reader); err != nil {
			panic(err)
		}
	})
}

// jwks serves a JWK Set the test can change, from 127.0.0.1.
type jwks struct {
	srv    *httptest.Server
	body   atomic.Pointer[[]byte]
	status atomic.Int32
	hits   atomic.Int32
}

func newJWKS(t *testing.T, set ...jose.JSONWebKey) *jwks {
	t.Helper()
	j := &jwks{}
	j.status.Store(http.StatusOK)
	j.set(t, set...)
	j.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		j.hits.Add(1)
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(int(j.status.Load()))
		_, _ = w.Write(*j.body.Load())
	}))
	t.Cleanup(j.srv.Close)
	return j
}

// set serves these keys' public halves.
func (j *jwks) set(t *testing.T, keys ...jose.JSONWebKey) {
	t.Helper()
	var s jose.JSONWebKeySet
	for _, k := range keys {
		if !k.IsPublic() {
			k = k.Public()
		}
		s.Keys = append(s.Keys, k)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	j.setRaw(b)
}

func (j *jwks) setRaw(b []byte) { j.body.Store(&b) }

func jwk(key interface{}, kid string) jose.JSONWebKey {
	return jose.JSONWebKey{Key: key, KeyID: kid, Use: "sig"}
}

func newTestHook(t *testing.T, j *jwks) *Hook {
	t.Helper()
	cfg := Config{Issuer: issuer, Audience: audience, JWKSetURL: j.srv.URL + "/jwks.json", JWKSetUpdateInterval: time.Hour, Leeway: DefaultLeeway}.WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	h := New(cfg)
	h.now = func() time.Time { return testNow }
	t.Cleanup(h.Stop)
	return h
}

type tokenClaims struct {
	josejwt.Claims
	InfoHash interface{} `json:"infohash,omitempty"`
}

func goodClaims() tokenClaims {
	return tokenClaims{
		Claims: josejwt.Claims{
			Issuer:    issuer,
			Audience:  josejwt.Audience{audience},
			Expiry:    josejwt.NewNumericDate(testNow.Add(time.Hour)),
			NotBefore: josejwt.NewNumericDate(testNow.Add(-time.Hour)),
			IssuedAt:  josejwt.NewNumericDate(testNow.Add(-time.Hour)),
		},
		InfoHash: testIHHex,
	}
}

func sign(t testing.TB, alg jose.SignatureAlgorithm, key interface{}, kid string, claims interface{}) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := josejwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func b64(v interface{}) string {
	var b []byte
	switch v := v.(type) {
	case string:
		b = []byte(v)
	default:
		b, _ = json.Marshal(v)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// params is a Params holding one query.
type params url.Values

func (p params) String(k string) (string, bool) {
	v, ok := p[k]
	if !ok || len(v) == 0 {
		return "", false
	}
	return v[0], true
}
func (params) RawPath() string                  { return "/announce" }
func (params) RawQuery() string                 { return "" }
func (params) RouteParam(string) (string, bool) { return "", false }

func announce(h *Hook, token *string, ih bittorrent.InfoHash) error {
	p := params{}
	if token != nil {
		p["jwt"] = []string{*token}
	}
	req := &bittorrent.AnnounceRequest{InfoHash: ih, Params: p}
	return h.HandleAnnounce(context.Background(), req, &bittorrent.AnnounceResponse{})
}

// outcome is what the client reads, after checking that a refusal carries
// its reason for the metrics.
func outcome(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return "ok"
	}
	var r middleware.Refusal
	if !errors.As(err, &r) || r.Reason == "" {
		t.Fatalf("error %#v is not a refusal", err)
	}
	return r.Reason + ": " + err.Error()
}

func TestHandleAnnounce(t *testing.T) {
	keys(t)
	j := newJWKS(t, jwk(rsaKey, "rsa1"), jwk(ecKey, "ec1"), jwk(edKey, "ed1"),
		jose.JSONWebKey{Key: rsaKey2, KeyID: "rsa-pss-only", Use: "sig", Algorithm: string(jose.PS256)})
	h := newTestHook(t, j)

	with := func(f func(c *tokenClaims)) tokenClaims {
		c := goodClaims()
		f(&c)
		return c
	}
	good := sign(t, jose.RS256, rsaKey, "rsa1", goodClaims())
	parts := strings.Split(good, ".")
	rsaDER, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaDER})

	for _, tc := range []struct {
		name  string
		token func() string // nil: no jwt parameter
		ih    bittorrent.InfoHash
		want  string
	}{
		{name: "RS256", token: func() string { return good }, want: "ok"},
		{name: "ES256", token: func() string { return sign(t, jose.ES256, ecKey, "ec1", goodClaims()) }, want: "ok"},
		{name: "EdDSA", token: func() string { return sign(t, jose.EdDSA, edKey, "ed1", goodClaims()) }, want: "ok"},
		{name: "PS256 on a key pinned to it", token: func() string { return sign(t, jose.PS256, rsaKey2, "rsa-pss-only", goodClaims()) }, want: "ok"},
		{name: "audience in a list", token: func() string {
			return sign(t, jose.ES256, ecKey, "ec1", with(func(c *tokenClaims) { c.Audience = josejwt.Audience{"other", audience} }))
		}, want: "ok"},
		{name: "expired within the leeway", token: func() string {
			return sign(t, jose.ES256, ecKey, "ec1", with(func(c *tokenClaims) { c.Expiry = josejwt.NewNumericDate(testNow.Add(-20 * time.Second)) }))
		}, want: "ok"},
		{name: "info hash in upper-case hex", token: func() string {
			return sign(t, jose.ES256, ecKey, "ec1", with(func(c *tokenClaims) { c.InfoHash = strings.ToUpper(testIHHex) }))
		}, want: "ok"},
		{name: "info hash percent-escaped, as upstream", token: func() string {
			return sign(t, jose.ES256, ecKey, "ec1", with(func(c *tokenClaims) { c.InfoHash = url.QueryEscape(string(testIH[:])) }))
		}, want: "ok"},

		{name: "no token", want: "missing_jwt: unapproved request: missing jwt"},
		{name: "empty token", token: func() string { return "" }, want: "missing_jwt: unapproved request: missing jwt"},
		{name: "expired", token: func() string {
			return sign(t, jose.RS256, rsaKey, "rsa1", with(func(c *tokenClaims) { c.Expiry = josejwt.NewNumericDate(testNow.Add(-time.Minute)) }))
		}, want: "expired: unapproved request: jwt expired"},
		{name: "not yet valid", token: func() string {
			return sign(t, jose.RS256, rsaKey, "rsa1", with(func(c *tokenClaims) { c.NotBefore = josejwt.NewNumericDate(testNow.Add(time.Minute)) }))
		}, want: "not_yet_valid: unapproved request: jwt not valid yet"},
		{name: "issued in the future", token: func() string {
			return sign(t, jose.RS256, rsaKey, "rsa1", with(func(c *tokenClaims) { c.IssuedAt = josejwt.NewNumericDate(testNow.Add(time.Hour)) }))
		}, want: "not_yet_valid: unapproved request: jwt not valid yet"},
		{name: "wrong audience", token: func() string {
			return sign(t, jose.RS256, rsaKey, "rsa1", with(func(c *tokenClaims) { c.Audience = josejwt.Audience{"another-tracker"} }))
		}, want: "wrong_audience: unapproved request: jwt audience not accepted"},
		{name: "no audience", token: func() string {
			return sign(t, jose.RS256, rsaKey, "rsa1", with(func(c *tokenClaims) { c.Audience = nil }))
		}, want: "wrong_audience: unapproved request: jwt audience not accepted"},
		{name: "wrong issuer", token: func() string {
			return sign(t, jose.RS256, rsaKey, "rsa1", with(func(c *tokenClaims) { c.Issuer = "https://evil.example" }))
		}, want: "wrong_issuer: unapproved request: jwt issuer not accepted"},
		{name: "wrong info hash", token: func() string { return good }, ih: bittorrent.InfoHash{1},
			want: "wrong_infohash: unapproved request: jwt is not for this info hash"},
		{name: "no info hash claim", token: func() string {
			return sign(t, jose.RS256, rsaKey, "rsa1", with(func(c *tokenClaims) { c.InfoHash = nil }))
		}, want: "wrong_infohash: unapproved request: jwt is not for this info hash"},
		{name: "info hash claim not a string", token: func() string {
			return sign(t, jose.RS256, rsaKey, "rsa1", with(func(c *tokenClaims) { c.InfoHash = 42 }))
		}, want: "malformed_jwt: unapproved request: malformed jwt"},
		{name: "tampered payload", token: func() string {
			return parts[0] + "." + b64(with(func(c *tokenClaims) { c.InfoHash = "ffffffffffffffffffffffffffffffffffffffff" })) + "." + parts[2]
		}, ih: bittorrent.InfoHash{0: 0xff, 1: 0xff, 2: 0xff, 3: 0xff, 4: 0xff, 5: 0xff, 6: 0xff, 7: 0xff, 8: 0xff, 9: 0xff, 10: 0xff, 11: 0xff, 12: 0xff, 13: 0xff, 14: 0xff, 15: 0xff, 16: 0xff, 17: 0xff, 18: 0xff, 19: 0xff},
			want: "bad_signature: unapproved request: jwt signature does not verify"},
		{name: "tampered signature", token: func() string { return parts[0] + "." + parts[1] + "." + b64("not the signature") },
			want: "bad_signature: unapproved request: jwt signature does not verify"},
		{name: "signed by another key with a known kid", token: func() string { return sign(t, jose.RS256, rsaKey2, "rsa1", goodClaims()) },
			want: "bad_signature: unapproved request: jwt signature does not verify"},
		{name: "kid of a key of another type", token: func() string { return sign(t, jose.ES256, ecKey, "rsa1", goodClaims()) },
			want: "bad_signature: unapproved request: jwt signature does not verify"},
		{name: "alg none", token: func() string {
			return b64(`{"alg":"none","kid":"rsa1","typ":"JWT"}`) + "." + parts[1] + "."
		}, want: "bad_algorithm: unapproved request: jwt signature algorithm not accepted"},
		{name: "alg None", token: func() string {
			return b64(`{"alg":"None","kid":"rsa1"}`) + "." + parts[1] + "."
		}, want: "bad_algorithm: unapproved request: jwt signature algorithm not accepted"},
		{name: "HS256 with the RSA public key as secret", token: func() string {
			return sign(t, jose.HS256, rsaPEM, "rsa1", goodClaims())
		}, want: "bad_algorithm: unapproved request: jwt signature algorithm not accepted"},
		{name: "HS256 with the DER public key as secret", token: func() string {
			return sign(t, jose.HS256, rsaDER, "rsa1", goodClaims())
		}, want: "bad_algorithm: unapproved request: jwt signature algorithm not accepted"},
		{name: "RS256 on a key pinned to PS256", token: func() string { return sign(t, jose.RS256, rsaKey2, "rsa-pss-only", goodClaims()) },
			want: "bad_algorithm: unapproved request: jwt signature algorithm not accepted"},
		{name: "unknown kid", token: func() string { return sign(t, jose.RS256, rsaKey, "rsa9", goodClaims()) },
			want: "unknown_key: unapproved request: jwt signed by an unknown key"},
		{name: "no kid", token: func() string { return sign(t, jose.RS256, rsaKey, "", goodClaims()) },
			want: "unknown_key: unapproved request: jwt signed by an unknown key"},
		{name: "oversized", token: func() string { return good + strings.Repeat("A", 4097-len(good)) },
			want: "oversized_jwt: unapproved request: jwt longer than 4096 bytes"},
		{name: "not a JWT", token: func() string { return "hello" }, want: "malformed_jwt: unapproved request: malformed jwt"},
		{name: "header not base64", token: func() string { return "!!!." + parts[1] + "." + parts[2] }, want: "malformed_jwt: unapproved request: malformed jwt"},
		{name: "header not JSON", token: func() string { return b64("alg") + "." + parts[1] + "." + parts[2] }, want: "malformed_jwt: unapproved request: malformed jwt"},
		{name: "two segments", token: func() string { return parts[0] + "." + parts[1] }, want: "malformed_jwt: unapproved request: malformed jwt"},
		{name: "signed payload not JSON", token: func() string {
			signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: ecKey, KeyID: "ec1"}}, nil)
			obj, _ := signer.Sign([]byte("not json"))
			s, _ := obj.CompactSerialize()
			return s
		}, want: "malformed_jwt: unapproved request: malformed jwt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ih := testIH
			if tc.ih != (bittorrent.InfoHash{}) {
				ih = tc.ih
			}
			var token *string
			if tc.token != nil {
				s := tc.token()
				token = &s
			}
			if got := outcome(t, announce(h, token, ih)); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestScrapeAdmitted(t *testing.T) {
	keys(t)
	h := newTestHook(t, newJWKS(t, jwk(rsaKey, "rsa1")))
	req := &bittorrent.ScrapeRequest{InfoHashes: []bittorrent.InfoHash{testIH}, Params: params{}}
	if err := h.HandleScrape(context.Background(), req, &bittorrent.ScrapeResponse{}); err != nil {
		t.Fatal(err)
	}
}

func TestKeySet(t *testing.T) {
	keys(t)
	tokRSA := sign(t, jose.RS256, rsaKey, "rsa1", goodClaims())
	tokEC := sign(t, jose.ES256, ecKey, "ec2", goodClaims())
	errorsBefore := func() float64 { return testutil.ToFloat64(keySetFetches.WithLabelValues("error")) }

	t.Run("keys not fetched yet", func(t *testing.T) {
		j := newJWKS(t, jwk(rsaKey, "rsa1"))
		j.status.Store(http.StatusServiceUnavailable)
		before := errorsBefore()
		h := newTestHook(t, j)
		if got := outcome(t, announce(h, &tokRSA, testIH)); got != "no_keys: unapproved request: the tracker has not loaded its signing keys yet; retry later" {
			t.Fatal(got)
		}
		if errorsBefore() != before+1 {
			t.Fatalf("failed fetch not counted")
		}
		j.status.Store(http.StatusOK)
		h.fetch()
		if got := outcome(t, announce(h, &tokRSA, testIH)); got != "ok" {
			t.Fatal(got)
		}
	})

	t.Run("rotation", func(t *testing.T) {
		j := newJWKS(t, jwk(rsaKey, "rsa1"))
		h := newTestHook(t, j)
		if got := outcome(t, announce(h, &tokEC, testIH)); got != "unknown_key: unapproved request: jwt signed by an unknown key" {
			t.Fatal(got)
		}
		// Both during the overlap, then only the new key.
		j.set(t, jwk(rsaKey, "rsa1"), jwk(ecKey, "ec2"))
		h.fetch()
		for _, tok := range []string{tokRSA, tokEC} {
			if got := outcome(t, announce(h, &tok, testIH)); got != "ok" {
				t.Fatal(got)
			}
		}
		j.set(t, jwk(ecKey, "ec2"))
		h.fetch()
		if got := outcome(t, announce(h, &tokEC, testIH)); got != "ok" {
			t.Fatal(got)
		}
		if got := outcome(t, announce(h, &tokRSA, testIH)); got != "unknown_key: unapproved request: jwt signed by an unknown key" {
			t.Fatal(got)
		}
	})

	t.Run("failed refresh keeps the last good keys", func(t *testing.T) {
		j := newJWKS(t, jwk(rsaKey, "rsa1"))
		h := newTestHook(t, j)
		for _, bad := range []struct {
			name   string
			status int
			body   string
			err    string
		}{
			{"server error", 500, `{"keys":[]}`, "jwt: fetch JWK Set URL: status 500 Internal Server Error"},
			{"not JSON", 200, `<html>`, "jwt: JWK Set URL: not a JWK Set: invalid character '<' looking for beginning of value"},
			{"no keys", 200, `{"keys":[]}`, "jwt: JWK Set URL: no usable signing keys (asymmetric, with a kid, use sig)"},
			{"only a symmetric key", 200, `{"keys":[{"kty":"oct","kid":"rsa1","k":"c2VjcmV0"}]}`, "jwt: JWK Set URL: no usable signing keys (asymmetric, with a kid, use sig)"},
			{"only an encryption key", 200, string(mustJSON(t, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &rsaKey.PublicKey, KeyID: "rsa1", Use: "enc"}}})),
				"jwt: JWK Set URL: no usable signing keys (asymmetric, with a kid, use sig)"},
			{"too large", 200, `{"keys":[` + strings.Repeat(" ", MaxJWKSetBytes) + `]}`, "jwt: JWK Set URL: larger than 1048576 bytes"},
		} {
			j.status.Store(int32(bad.status))
			j.setRaw([]byte(bad.body))
			before := errorsBefore()
			_, err := h.refresh(context.Background())
			want := strings.ReplaceAll(bad.err, "URL", j.srv.URL+"/jwks.json")
			if err == nil || err.Error() != want {
				t.Fatalf("%s: error %v, want %q", bad.name, err, want)
			}
			h.fetch()
			if errorsBefore() != before+1 {
				t.Fatalf("%s: failed fetch not counted", bad.name)
			}
			if got := outcome(t, announce(h, &tokRSA, testIH)); got != "ok" {
				t.Fatalf("%s: %s", bad.name, got)
			}
		}
	})

	t.Run("unknown key types are skipped, not fatal", func(t *testing.T) {
		j := newJWKS(t)
		good := mustJSON(t, jwk(&rsaKey.PublicKey, "rsa1"))
		j.setRaw([]byte(`{"keys":[{"kty":"XYZ","kid":"future"},{"kty":"oct","kid":"hmac","k":"` + b64(strings.Repeat("s", 32)) + `"},` + string(good) + `]}`))
		h := newTestHook(t, j)
		if got := outcome(t, announce(h, &tokRSA, testIH)); got != "ok" {
			t.Fatal(got)
		}
		tokHMAC := sign(t, jose.HS256, []byte(strings.Repeat("s", 32)), "hmac", goodClaims())
		if got := outcome(t, announce(h, &tokHMAC, testIH)); got != "bad_algorithm: unapproved request: jwt signature algorithm not accepted" {
			t.Fatal(got)
		}
	})

	t.Run("a private key in the set is used for its public half", func(t *testing.T) {
		j := newJWKS(t)
		j.setRaw(mustJSON(t, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk(ecKey, "ec2")}}))
		h := newTestHook(t, j)
		if got := outcome(t, announce(h, &tokEC, testIH)); got != "ok" {
			t.Fatal(got)
		}
	})

	t.Run("refreshed in the background", func(t *testing.T) {
		j := newJWKS(t, jwk(rsaKey, "rsa1"))
		cfg := Config{Issuer: issuer, Audience: audience, JWKSetURL: j.srv.URL, JWKSetUpdateInterval: time.Second, Leeway: DefaultLeeway}.WithDefaults()
		h := New(cfg)
		h.now = func() time.Time { return testNow }
		t.Cleanup(h.Stop)
		j.set(t, jwk(ecKey, "ec2"))
		deadline := time.Now().Add(10 * time.Second)
		for outcome(t, announce(h, &tokEC, testIH)) != "ok" {
			if time.Now().After(deadline) {
				t.Fatalf("the new key was not fetched; %d fetches", j.hits.Load())
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	t.Run("stop ends the refresh", func(t *testing.T) {
		j := newJWKS(t, jwk(rsaKey, "rsa1"))
		h := New(Config{Issuer: issuer, Audience: audience, JWKSetURL: j.srv.URL, JWKSetUpdateInterval: time.Second, Leeway: DefaultLeeway}.WithDefaults())
		h.Stop()
		h.Stop()
		hits := j.hits.Load()
		if hits != 1 {
			t.Fatalf("%d fetches before stop, want the first one only", hits)
		}
	})
}

// TestZeroLeeway: an operator who sets `leeway: 0s` gets no skew at all,
// on the first verification and from the cache.
func TestZeroLeeway(t *testing.T) {
	keys(t)
	j := newJWKS(t, jwk(ecKey, "ec1"))
	cfg, err := plugin.Load([]byte("issuer: " + issuer + "\naudience: " + audience + "\njwk_set_url: " + j.srv.URL + "/jwks.json\nleeway: 0s\n"))
	if err != nil {
		t.Fatal(err)
	}
	h := New(cfg)
	t.Cleanup(h.Stop)
	now := testNow
	h.now = func() time.Time { return now }
	c := goodClaims()
	c.Expiry = josejwt.NewNumericDate(testNow.Add(time.Minute))
	tok := sign(t, jose.ES256, ecKey, "ec1", c)
	if got := outcome(t, announce(h, &tok, testIH)); got != "ok" {
		t.Fatalf("before expiry: %q", got)
	}
	now = testNow.Add(time.Minute + time.Second)
	if got, want := outcome(t, announce(h, &tok, testIH)), "expired: unapproved request: jwt expired"; got != want {
		t.Fatalf("cached, 1s after expiry: %q, want %q", got, want)
	}
	h.cache.entries = nil
	if got, want := outcome(t, announce(h, &tok, testIH)), "expired: unapproved request: jwt expired"; got != want {
		t.Fatalf("verified, 1s after expiry: %q, want %q", got, want)
	}
}

func TestVerifiedTokenCache(t *testing.T) {
	keys(t)
	j := newJWKS(t, jwk(ecKey, "ec1"))
	h := newTestHook(t, j)
	now := testNow
	h.now = func() time.Time { return now }
	c := goodClaims()
	c.Expiry = josejwt.NewNumericDate(testNow.Add(time.Minute))
	tok := sign(t, jose.ES256, ecKey, "ec1", c)

	steps := []struct {
		name string
		at   time.Duration
		ih   bittorrent.InfoHash
		want string
	}{
		{"first use verifies", 0, testIH, "ok"},
		{"reuse is served from the cache", time.Second, testIH, "ok"},
		{"cached token for another torrent", time.Second, bittorrent.InfoHash{9}, "wrong_infohash: unapproved request: jwt is not for this info hash"},
		{"within the leeway after expiry", time.Minute + 29*time.Second, testIH, "ok"},
		{"cached token past its expiry", time.Minute + 31*time.Second, testIH, "expired: unapproved request: jwt expired"},
	}
	for _, s := range steps {
		now = testNow.Add(s.at)
		if got := outcome(t, announce(h, &tok, s.ih)); got != s.want {
			t.Fatalf("%s: %q, want %q", s.name, got, s.want)
		}
	}

	// Fetching the same keys again keeps the generation, and the cache.
	now = testNow
	gen := h.keys.Load()
	h.fetch()
	if h.keys.Load() != gen {
		t.Fatal("an unchanged key set started a new generation")
	}
	// A changed set starts a new one: a token cached under a key that is
	// gone is refused.
	j.set(t, jwk(edKey, "ed1"))
	h.fetch()
	if got := outcome(t, announce(h, &tok, testIH)); got != "unknown_key: unapproved request: jwt signed by an unknown key" {
		t.Fatal(got)
	}
}

func mustJSON(t *testing.T, v interface{}) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMatchInfoHash(t *testing.T) {
	for _, tc := range []struct {
		claim string
		want  bool
	}{
		{testIHHex, true},
		{strings.ToUpper(testIHHex), true},
		{string(testIH[:]), true},
		{url.QueryEscape(string(testIH[:])), true},
		{strings.Repeat("0", 40), false},
		{testIHHex[:38], false},
		{"", false},
		{"%zz", false},
		{testIHHex + "00", false},
	} {
		if got := MatchInfoHash(tc.claim, testIH); got != tc.want {
			t.Errorf("MatchInfoHash(%q) = %v, want %v", tc.claim, got, tc.want)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	keys(b)
	for _, bc := range []struct {
		alg jose.SignatureAlgorithm
		key interface{}
		kid string
	}{{jose.RS256, rsaKey, "rsa1"}, {jose.ES256, ecKey, "ec1"}, {jose.EdDSA, edKey, "ed1"}} {
		b.Run(string(bc.alg), func(b *testing.B) {
			h := &Hook{cfg: Config{Issuer: issuer, Audience: audience, Leeway: DefaultLeeway}.WithDefaults(), now: func() time.Time { return testNow }}
			set := keySet{"rsa1": jwk(&rsaKey.PublicKey, "rsa1"), "ec1": jwk(&ecKey.PublicKey, "ec1"), "ed1": jwk(edKey.Public(), "ed1")}
			h.keys.Store(&set)
			tok := sign(b, bc.alg, bc.key, bc.kid, goodClaims())
			b.Run("first use", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					h.cache.entries = nil
					if err := h.verify(tok, testIH); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("cached", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if err := h.verify(tok, testIH); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

func Example() {
	// The `infohash` claim a registry writes: 40 hex digits.
	ih := bittorrent.InfoHash{0xde, 0xad, 0xbe, 0xef}
	fmt.Println(MatchInfoHash(ih.String(), ih))
	// Output: true
}

// TestBadOptions: every rejected options file in testdata, with the exact
// error the registry gives (the daemon puts the entry's key and the line in
// front: prehooks[0].options...).
func TestBadOptions(t *testing.T) {
	configtest.BadHookOptions(t, Name, []configtest.Case{
		{File: "bad-no-issuer.yaml", Want: `options.issuer: must be set`},
		{File: "bad-no-audience.yaml", Want: `options.audience: must be set`},
		{File: "bad-no-key-set.yaml", Want: `options.jwk_set_url: must be set`},
		{File: "bad-key-set-file.yaml", Want: `options.jwk_set_url: must be an http or https URL, got "file:///etc/jwks.json"`},
		{File: "bad-key-set-no-host.yaml", Want: `options.jwk_set_url: must be an http or https URL, got "https:///jwks.json"`},
		{File: "bad-update-interval.yaml", Want: `options.jwk_set_update_interval: must be >= 1s, got 10ms`},
		{File: "bad-fetch-timeout.yaml", Want: `options.jwk_set_fetch_timeout: must be > 0, got -1s`},
		{File: "bad-negative-leeway.yaml", Want: `options.leeway: must be 0s to 10m0s, got -5s`},
		{File: "bad-huge-leeway.yaml", Want: `options.leeway: must be 0s to 10m0s, got 1h0m0s`},
		{File: "bad-token-cap.yaml", Want: `options.max_token_bytes: must be 64 to 65536, got 10`},
		{File: "bad-unknown-key.yaml", Want: `line 4: unknown key "jwk_url" in options (jwt)`},
		{File: "bad-interval-type.yaml", Want: "line 4: options.jwk_set_update_interval: cannot unmarshal !!str `often` into a duration"},
	})
}

// TestRefusalReasonsRegistered: every reason the hook refuses under has
// its series created when the hook is built (Plugin.Reasons).
func TestRefusalReasonsRegistered(t *testing.T) {
	known := map[string]bool{}
	for _, r := range plugin.Reasons {
		known[r] = true
	}
	h := New(Config{MaxTokenBytes: 64, JWKSetURL: "http://127.0.0.1:1/jwks.json", JWKSetUpdateInterval: time.Hour, JWKSetFetchTimeout: time.Second})
	defer h.Stop()
	refusals := []error{ErrMissingJWT, ErrMalformedJWT, ErrAlgorithm, ErrUnknownKey, ErrNoKeys, ErrBadSignature,
		ErrExpired, ErrNotValidYet, ErrWrongIssuer, ErrWrongAudience, ErrWrongInfoHash, h.tooLarge}
	for _, err := range refusals {
		var r middleware.Refusal
		if !errors.As(err, &r) || !known[r.Reason] {
			t.Errorf("%v: reason %q is not in plugin.Reasons", err, r.Reason)
		}
	}
}
