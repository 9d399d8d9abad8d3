// Package jwttest is the issuer side of the JWT tests: a signing key, its
// public half served as a JWK Set on loopback (as a registry or a login
// service does), and tokens that approve one info hash, as the jwt hook
// reads them (docs/configuration.md, the `jwt` hook).
package jwttest

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Algorithm is a signing algorithm the jwt hook accepts: ES256, or EdDSA
// for tokens that must be short (BEP 41 URL data over UDP).
type Algorithm string

// The algorithms an Issuer signs with.
const (
	ES256 = Algorithm(jose.ES256)
	EdDSA = Algorithm(jose.EdDSA)
)

// Issuer signs tokens for Issuer and Audience with one key, whose public
// half it serves at KeysURL until the test ends or Down is called.
type Issuer struct {
	Issuer, Audience string
	// KeysURL is the URL of the key set, for the hook's jwk_set_url.
	KeysURL string
	signer  jose.Signer
	srv     *httptest.Server
}

// New makes a key for alg with key ID kid and serves its key set from
// 127.0.0.1. Short issuer, audience and kid make short tokens.
func New(t testing.TB, alg Algorithm, issuer, audience, kid string) *Issuer {
	t.Helper()
	var priv, pub any
	switch alg {
	case ES256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		priv, pub = k, &k.PublicKey
	case EdDSA:
		p, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		priv, pub = k, p
	default:
		t.Fatalf("jwttest: algorithm %q", alg)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: pub, KeyID: kid, Algorithm: string(alg), Use: "sig"}}}
	body, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg), Key: jose.JSONWebKey{Key: priv, KeyID: kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Loopback by address: the test must not depend on how "localhost"
	// resolves.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(body)
	}))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return &Issuer{Issuer: issuer, Audience: audience, KeysURL: srv.URL + "/.well-known/jwks.json", signer: signer, srv: srv}
}

// Token signs a token that approves ih until expiry (a past expiry makes
// an expired token).
func (i *Issuer) Token(t testing.TB, ih [20]byte, expiry time.Time) string {
	t.Helper()
	claims := struct {
		jwt.Claims
		InfoHash string `json:"infohash"`
	}{
		Claims: jwt.Claims{
			Issuer:   i.Issuer,
			Audience: jwt.Audience{i.Audience},
			Expiry:   jwt.NewNumericDate(expiry),
		},
		InfoHash: hex.EncodeToString(ih[:]),
	}
	tok, err := jwt.Signed(i.signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Down takes the key server down, as an outage of the issuer does.
func (i *Issuer) Down() { i.srv.Close() }
