// Package jwt implements the `jwt` hook: an announce is admitted only with
// a JSON Web Token, signed by a key of the configured JWK Set, that names
// the announced info hash. A registry that publishes torrents signs one
// token per info hash and puts it in the announce URL as `?jwt=…`; UDP
// clients carry the same query in BEP 41 URL data.
//
// The JOSE work is go-jose's: which algorithms are accepted is fixed here
// (asymmetric signatures only), and a token's key is chosen by its `kid`
// among the fetched keys, never taken from the token itself.
package jwt

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/middleware"
)

// Name is the name operators write in the `prehooks` list.
const Name = "jwt"

// MaxJWKSetBytes caps the size of a fetched key set.
const MaxJWKSetBytes = 1 << 20

// Algorithms are the accepted signature algorithms: asymmetric ones only.
// `none` and the HMAC family are refused outright, so that a token cannot
// choose to be checked against nothing, or against a public key used as
// an HMAC secret.
var Algorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.EdDSA,
}

var keySetFetches = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: "chihaya",
	Subsystem: "middleware",
	Name:      "jwt_key_set_fetches_total",
	Help:      "Fetches of the jwt hook's JWK Set, by result (ok, error); after an error the last good keys stay in use.",
}, []string{"result"})

func init() {
	prometheus.MustRegister(keySetFetches)
	keySetFetches.WithLabelValues("ok")
	keySetFetches.WithLabelValues("error")
	middleware.Register(plugin)
}

// plugin decodes the hook's options and builds it.
var plugin = middleware.Plugin[Config]{
	Name:     Name,
	Start:    Config{Leeway: DefaultLeeway},
	Defaults: Config.WithDefaults,
	New:      func(c Config) (middleware.Hook, error) { return New(c), nil },
	// Constructing the hook fetches the key set: `chihaya validate` only
	// checks the options.
	Check: func(Config) error { return nil },
	Reasons: []string{"missing_jwt", "oversized_jwt", "malformed_jwt", "bad_algorithm", "no_keys", "unknown_key",
		"bad_signature", "expired", "not_yet_valid", "wrong_issuer", "wrong_audience", "wrong_infohash"},
}

func refusal(reason, text string) error {
	return middleware.Refusal{Reason: reason, Err: bittorrent.ClientError("unapproved request: " + text)}
}

// The refusals, by the reason they are counted under.
var (
	ErrMissingJWT    = refusal("missing_jwt", "missing jwt")
	ErrMalformedJWT  = refusal("malformed_jwt", "malformed jwt")
	ErrAlgorithm     = refusal("bad_algorithm", "jwt signature algorithm not accepted")
	ErrUnknownKey    = refusal("unknown_key", "jwt signed by an unknown key")
	ErrNoKeys        = refusal("no_keys", "the tracker has not loaded its signing keys yet; retry later")
	ErrBadSignature  = refusal("bad_signature", "jwt signature does not verify")
	ErrExpired       = refusal("expired", "jwt expired")
	ErrNotValidYet   = refusal("not_yet_valid", "jwt not valid yet")
	ErrWrongIssuer   = refusal("wrong_issuer", "jwt issuer not accepted")
	ErrWrongAudience = refusal("wrong_audience", "jwt audience not accepted")
	ErrWrongInfoHash = refusal("wrong_infohash", "jwt is not for this info hash")
)

// keySet is one fetched generation of keys, by key ID.
type keySet map[string]jose.JSONWebKey

// Hook checks announce tokens against the fetched keys.
type Hook struct {
	cfg       Config
	tooLarge  error
	keys      atomic.Pointer[keySet]
	client    *http.Client
	now       func() time.Time
	cache     cache
	stopOnce  sync.Once
	stop      chan struct{}
	done      chan struct{}
	cancelCtx context.Context
	cancel    context.CancelFunc
}

var (
	_ middleware.Hook    = (*Hook)(nil)
	_ middleware.Stopper = (*Hook)(nil)
)

// New builds the hook from a validated config. It fetches the key set once
// (bounded by jwk_set_fetch_timeout) so that tokens are accepted from the
// first request; if that fails the hook still starts, refuses tokens until
// keys arrive, and retries in the background.
func New(cfg Config) *Hook {
	h := &Hook{
		cfg:      cfg,
		tooLarge: refusal("oversized_jwt", "jwt longer than "+strconv.Itoa(cfg.MaxTokenBytes)+" bytes"),
		client:   &http.Client{Timeout: cfg.JWKSetFetchTimeout},
		now:      time.Now,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	h.cancelCtx, h.cancel = context.WithCancel(context.Background())
	h.fetch()
	go h.loop()
	return h
}

// loop refreshes the keys every jwk_set_update_interval; while there are
// none yet, it retries sooner.
func (h *Hook) loop() {
	defer close(h.done)
	for {
		wait := h.cfg.JWKSetUpdateInterval
		if h.keys.Load() == nil {
			wait = min(wait, 5*time.Second)
		}
		t := time.NewTimer(wait)
		select {
		case <-h.stop:
			t.Stop()
			return
		case <-t.C:
		}
		h.fetch()
	}
}

// fetch refreshes the keys, logging and counting the outcome.
func (h *Hook) fetch() {
	n, err := h.refresh(h.cancelCtx)
	if err != nil {
		keySetFetches.WithLabelValues("error").Inc()
		if h.keys.Load() == nil {
			logrus.WithError(err).Error("jwt: JWK Set not fetched; refusing tokens until it is")
		} else {
			logrus.WithError(err).Error("jwt: JWK Set not refreshed; keeping the last good keys")
		}
		return
	}
	keySetFetches.WithLabelValues("ok").Inc()
	logrus.WithFields(logrus.Fields{"hook": Name, "keys": n}).Debug("jwt: JWK Set refreshed")
}

// refresh fetches the key set and swaps it in; on error the old set stays.
func (h *Hook) refresh(ctx context.Context) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.cfg.JWKSetURL, nil)
	if err != nil {
		return 0, fmt.Errorf("jwt: fetch JWK Set: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("jwt: fetch JWK Set: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("jwt: fetch JWK Set %s: status %s", h.cfg.JWKSetURL, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxJWKSetBytes+1))
	if err != nil {
		return 0, fmt.Errorf("jwt: fetch JWK Set %s: %w", h.cfg.JWKSetURL, err)
	}
	if len(body) > MaxJWKSetBytes {
		return 0, fmt.Errorf("jwt: JWK Set %s: larger than %d bytes", h.cfg.JWKSetURL, MaxJWKSetBytes)
	}
	set, err := parseKeySet(body)
	if err != nil {
		return 0, fmt.Errorf("jwt: JWK Set %s: %w", h.cfg.JWKSetURL, err)
	}
	if old := h.keys.Load(); old == nil || !sameKeys(*old, set) {
		// A new generation: tokens verified with the old one are checked
		// again.
		h.keys.Store(&set)
	}
	return len(set), nil
}

// sameKeys reports whether two sets hold the same keys under the same IDs.
func sameKeys(a, b keySet) bool {
	if len(a) != len(b) {
		return false
	}
	for kid, ka := range a {
		kb, ok := b[kid]
		if !ok || ka.Algorithm != kb.Algorithm {
			return false
		}
		ta, err1 := ka.Thumbprint(crypto.SHA256)
		tb, err2 := kb.Thumbprint(crypto.SHA256)
		if err1 != nil || err2 != nil || string(ta) != string(tb) {
			return false
		}
	}
	return true
}

// parseKeySet keeps the set's public signing keys that have a key ID.
// Keys are decoded one by one so that one key of a type we do not know
// (an encryption key, a newer curve) does not cost the whole set;
// symmetric keys are dropped, since a key set is public.
func parseKeySet(body []byte) (keySet, error) {
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("not a JWK Set: %w", err)
	}
	set := keySet{}
	for i, r := range raw.Keys {
		var k jose.JSONWebKey
		if err := json.Unmarshal(r, &k); err != nil {
			logrus.WithError(err).WithField("index", i).Warn("jwt: JWK Set key skipped")
			continue
		}
		if k.KeyID == "" || (k.Use != "" && k.Use != "sig") {
			continue
		}
		switch k.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		case *rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
			// A set should never hold private keys; use only their
			// public half.
			k = k.Public()
		default:
			continue
		}
		if !k.Valid() {
			continue
		}
		set[k.KeyID] = k
	}
	if len(set) == 0 {
		return nil, errors.New("no usable signing keys (asymmetric, with a kid, use sig)")
	}
	return set, nil
}

// Stop ends the background refresh, cancelling a fetch in flight.
func (h *Hook) Stop() {
	h.stopOnce.Do(func() {
		h.cancel()
		close(h.stop)
	})
	<-h.done
}

// claims are the token's claims the hook checks.
type claims struct {
	josejwt.Claims
	InfoHash *string `json:"infohash"`
}

// header is the token's protected header, read before go-jose parses the
// token so that a refusal can say what was wrong.
type header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
}

// HandleAnnounce admits the announce when its `jwt` parameter verifies.
func (h *Hook) HandleAnnounce(_ context.Context, req *bittorrent.AnnounceRequest, _ *bittorrent.AnnounceResponse) error {
	token, ok := req.Params.String("jwt")
	if !ok || token == "" {
		return ErrMissingJWT
	}
	return h.verify(token, req.InfoHash)
}

// HandleScrape admits every scrape, as upstream Chihaya does: counts are
// not what the tokens protect, and a scrape names no single torrent a
// token could be for.
func (h *Hook) HandleScrape(context.Context, *bittorrent.ScrapeRequest, *bittorrent.ScrapeResponse) error {
	return nil
}

func (h *Hook) verify(token string, ih bittorrent.InfoHash) error {
	if len(token) > h.cfg.MaxTokenBytes {
		return h.tooLarge
	}
	// Copied through a stack buffer: most tokens fit, and a cache hit then
	// allocates nothing.
	var buf [1024]byte
	sum := sha256.Sum256(append(buf[:0], token...))
	now := h.now()
	if keys := h.keys.Load(); keys != nil && h.cache.valid(sum, keys, ih, now.Unix(), int64(h.cfg.Leeway/time.Second)) {
		return nil
	}
	dot := strings.IndexByte(token, '.')
	if dot < 0 {
		return ErrMalformedJWT
	}
	rawHeader, err := base64.RawURLEncoding.DecodeString(token[:dot])
	if err != nil {
		return ErrMalformedJWT
	}
	var hdr header
	if err := json.Unmarshal(rawHeader, &hdr); err != nil {
		return ErrMalformedJWT
	}
	if !accepted(hdr.Alg) {
		return ErrAlgorithm
	}
	keys := h.keys.Load()
	if keys == nil {
		return ErrNoKeys
	}
	key, ok := (*keys)[hdr.Kid]
	if !ok {
		return ErrUnknownKey
	}
	if key.Algorithm != "" && key.Algorithm != hdr.Alg {
		// The key set pins this key to another algorithm.
		return ErrAlgorithm
	}
	jws, err := jose.ParseSignedCompact(token, Algorithms)
	if err != nil {
		return ErrMalformedJWT
	}
	payload, err := jws.Verify(key.Key)
	if err != nil {
		return ErrBadSignature
	}
	// Only a verified payload is decoded.
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return ErrMalformedJWT
	}
	err = c.ValidateWithLeeway(josejwt.Expected{
		Issuer:      h.cfg.Issuer,
		AnyAudience: josejwt.Audience{h.cfg.Audience},
		Time:        now,
	}, h.cfg.Leeway)
	switch {
	case errors.Is(err, josejwt.ErrInvalidIssuer):
		return ErrWrongIssuer
	case errors.Is(err, josejwt.ErrInvalidAudience):
		return ErrWrongAudience
	case errors.Is(err, josejwt.ErrExpired):
		return ErrExpired
	case errors.Is(err, josejwt.ErrNotValidYet), errors.Is(err, josejwt.ErrIssuedInTheFuture):
		return ErrNotValidYet
	case err != nil:
		return ErrMalformedJWT
	}
	if c.InfoHash == nil || !MatchInfoHash(*c.InfoHash, ih) {
		return ErrWrongInfoHash
	}
	e := cacheEntry{keys: keys, ih: ih, nbf: math.MinInt64, exp: math.MaxInt64}
	if c.NotBefore != nil {
		e.nbf = c.NotBefore.Time().Unix()
	}
	if c.Expiry != nil {
		e.exp = c.Expiry.Time().Unix()
	}
	h.cache.put(sum, e)
	return nil
}

// CacheSize bounds the verified tokens remembered. A client re-announces
// with the same token every interval, so remembering a verified token
// spares a signature check (tens of microseconds) on every announce but
// the first.
const CacheSize = 1 << 16

// cacheEntry is a verified token: what still has to be checked on reuse.
type cacheEntry struct {
	keys     *keySet // the generation it was verified with
	ih       bittorrent.InfoHash
	nbf, exp int64 // Unix seconds
}

// cache remembers verified tokens by their SHA-256. Only tokens whose
// signature, issuer and audience verified are stored; their time window
// and info hash are checked on every use, and a new key generation makes
// every entry stale.
type cache struct {
	mu      sync.Mutex
	entries map[[sha256.Size]byte]cacheEntry
}

func (c *cache) valid(sum [sha256.Size]byte, keys *keySet, ih bittorrent.InfoHash, now, leeway int64) bool {
	c.mu.Lock()
	e, ok := c.entries[sum]
	c.mu.Unlock()
	return ok && e.keys == keys && e.ih == ih && now+leeway >= e.nbf && now-leeway <= e.exp
}

func (c *cache) put(sum [sha256.Size]byte, e cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = make(map[[sha256.Size]byte]cacheEntry)
	}
	if len(c.entries) >= CacheSize {
		// Forget an arbitrary one: map order is random enough to keep a
		// flood of one-off tokens from pinning the cache.
		for k := range c.entries {
			delete(c.entries, k)
			break
		}
	}
	c.entries[sum] = e
}

func accepted(alg string) bool {
	for _, a := range Algorithms {
		if string(a) == alg {
			return true
		}
	}
	return false
}

// MatchInfoHash reports whether an `infohash` claim names ih. The claim is
// 40 hex digits, either case (what a registry should write); for
// compatibility with upstream Chihaya, the 20 raw bytes or their
// percent-escaped form (as in an announce URL) are accepted too.
func MatchInfoHash(claim string, ih bittorrent.InfoHash) bool {
	var got bittorrent.InfoHash
	if len(claim) == 2*len(got) {
		if _, err := hex.Decode(got[:], []byte(claim)); err == nil {
			return got == ih
		}
	}
	if len(claim) == len(got) && claim == string(ih[:]) {
		return true
	}
	s, err := url.QueryUnescape(claim)
	return err == nil && s == string(ih[:])
}
