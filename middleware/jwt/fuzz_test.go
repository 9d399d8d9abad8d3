package jwt

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"

	"github.com/chihaya/chihaya/middleware"
)

// fuzzKey is fixed, so that the committed corpus holds tokens it signed.
var fuzzKey = ed25519.NewKeyFromSeed([]byte("chihaya jwt fuzz key: 32 bytes!!"))

func fuzzHook() *Hook {
	h := &Hook{cfg: Config{Issuer: issuer, Audience: audience, Leeway: DefaultLeeway}.WithDefaults(), now: func() time.Time { return testNow }}
	h.tooLarge = refusal("oversized_jwt", "jwt longer than 4096 bytes")
	set := keySet{"fuzz": jwk(fuzzKey.Public(), "fuzz")}
	h.keys.Store(&set)
	return h
}

// FuzzVerify feeds arbitrary tokens to the verifier: it must never panic,
// and must answer with nothing or a counted refusal whose text is one of
// ours.
func FuzzVerify(f *testing.F) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: fuzzKey, KeyID: "fuzz"}}, nil)
	if err != nil {
		f.Fatal(err)
	}
	valid, err := josejwt.Signed(signer).Claims(goodClaims()).Serialize()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add("")
	f.Add("..")
	f.Add(b64(`{"alg":"none"}`) + "." + b64(`{}`) + ".")
	h := fuzzHook()
	f.Fuzz(func(t *testing.T, token string) {
		err := h.verify(token, testIH)
		if err == nil {
			return
		}
		var r middleware.Refusal
		if !errors.As(err, &r) || r.Reason == "" || !strings.HasPrefix(err.Error(), "unapproved request: ") {
			t.Fatalf("verify(%q) = %#v, want a refusal", token, err)
		}
	})
}
