package httpapproval

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/internal/configtest"
	"github.com/chihaya/chihaya/internal/eventually"
	"github.com/chihaya/chihaya/internal/testcert"
	"github.com/chihaya/chihaya/middleware"
	"github.com/chihaya/chihaya/pkg/clock"
	"github.com/chihaya/chihaya/pkg/query"
	"github.com/chihaya/chihaya/pkg/webhook"
)

// TestBadOptions: each rejected file with its exact error, keyed from the
// hook's entry (the daemon puts prehooks[i] and the line in front).
func TestBadOptions(t *testing.T) {
	configtest.BadHookOptions(t, Name, []configtest.Case{
		{File: "bad-url.yaml", Want: `options.url: must be an http or https URL, got "ftp://approve.example.com/"`},
		{File: "bad-no-url.yaml", Want: `options.url: must be set`},
		{File: "bad-url-port.yaml", Want: `options.url: port 99999 is not 1 to 65535 in "http://127.0.0.1:99999/approve"`},
		{File: "bad-cache-key-no-route.yaml", Want: `options.cache_key[1]: "passkey" is a parameter of no route in routes (none); list the route that has it, or write query:passkey for a query parameter`},
		{File: "bad-cache-key-other-route.yaml", Want: `options.cache_key[0]: "user" is a parameter of no route in routes (/:passkey/announce); list the route that has it, or write query:user for a query parameter`},
		{File: "bad-secret-file.yaml", Want: `options.secret_file: open /nonexistent/approval.secret: no such file or directory`},
		{File: "bad-on-error.yaml", Want: `options.on_error: must be refuse or admit, got "allow"`},
		{File: "bad-unknown-key.yaml", Want: `line 2: unknown key "cache_tll" in options (http approval)`},
		{File: "bad-timeout.yaml", Want: `options.timeout: must be > 0 and <= 1m, got -1s`},
		{File: "bad-client-cert.yaml", Want: `options.tls_key_file: must be set with tls_cert_file`},
		{File: "bad-ca-file.yaml", Want: `options.tls_ca_file: open /nonexistent/ca.pem: no such file or directory`},
		{File: "bad-tls-plain-url.yaml", Want: `options.url: must be https with tls_ca_file or tls_cert_file, got "http://127.0.0.1:8080/approve"`},
		{File: "bad-route.yaml", Want: `options.routes[0]: must start with '/', got "announce"`},
	})
}

// service is an approval service for the tests: it records what it was
// asked and answers with the handler's choice.
type service struct {
	*httptest.Server
	asked atomic.Int64
	mu    sync.Mutex
	last  []middleware.AnnounceFields
	hdrs  []http.Header
	// answer writes the reply to the decoded question.
	answer func(w http.ResponseWriter, q middleware.AnnounceFields)
}

func newService(t *testing.T, answer func(w http.ResponseWriter, q middleware.AnnounceFields)) *service {
	t.Helper()
	s := &service{answer: answer}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *service) serve(w http.ResponseWriter, r *http.Request) {
	s.asked.Add(1)
	body, _ := io.ReadAll(r.Body)
	var q middleware.AnnounceFields
	_ = json.Unmarshal(body, &q)
	s.mu.Lock()
	s.last = append(s.last, q)
	h := r.Header.Clone()
	h.Set("X-Test-Body", string(body))
	s.hdrs = append(s.hdrs, h)
	s.mu.Unlock()
	s.answer(w, q)
}

func (s *service) questions() []middleware.AnnounceFields {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]middleware.AnnounceFields(nil), s.last...)
}

// byPasskey admits passkey "good", and refuses others with a reason.
func byPasskey(w http.ResponseWriter, q middleware.AnnounceFields) {
	if q.Params["passkey"] == "good" {
		io.WriteString(w, `{"allow": true, "interval": 600}`)
		return
	}
	io.WriteString(w, `{"allow": false, "reason": "unknown passkey"}`)
}

func newHook(t *testing.T, cfg Config) *Hook {
	t.Helper()
	h := configtest.Build(t, cfg, Config.WithDefaults, New)
	t.Cleanup(h.Stop)
	return h
}

// params builds a request's parameters: path and query as received, and
// the route parameters an HTTP router found (none for UDP).
func params(path, rawQuery string, route ...string) bittorrent.Params {
	v := &query.Values{}
	if err := v.Parse(path, rawQuery); err != nil {
		panic(err)
	}
	for i := 0; i+1 < len(route); i += 2 {
		v.SetRouteParam(route[i], route[i+1])
	}
	return v
}

func announce(ih byte, p bittorrent.Params) *bittorrent.AnnounceRequest {
	req := &bittorrent.AnnounceRequest{
		InfoHash:   bittorrent.InfoHash{ih},
		Peer:       bittorrent.Peer{ID: bittorrent.PeerID{'-', 'T', 'R'}, AddrPort: netip.MustParseAddrPort("127.0.0.2:6881")},
		Event:      bittorrent.Started,
		Left:       100,
		Uploaded:   7,
		Downloaded: 9,
		Params:     p,
	}
	return req
}

func run(h *Hook, req *bittorrent.AnnounceRequest) (*bittorrent.AnnounceResponse, error) {
	resp := &bittorrent.AnnounceResponse{Interval: 30 * time.Minute, MinInterval: 15 * time.Minute}
	return resp, h.HandleAnnounce(context.Background(), req, resp)
}

func TestAdmitsAndRefusesByPasskey(t *testing.T) {
	svc := newService(t, byPasskey)
	h := newHook(t, Config{URL: svc.URL, Routes: []string{"/:passkey/announce"}, CacheKey: []string{"passkey"}, Redact: []string{"secret"}})

	// Over HTTP the router found the passkey.
	resp, err := run(h, announce(1, params("/good/announce", "foo=bar&secret=s3&info_hash=x", "passkey", "good")))
	if err != nil {
		t.Fatalf("good passkey refused: %v", err)
	}
	if resp.Interval != 10*time.Minute || resp.MinInterval != 10*time.Minute {
		t.Errorf("interval %s, min %s; want the service's 10m for both", resp.Interval, resp.MinInterval)
	}
	// Over UDP the BEP 41 path carries it.
	_, err = run(h, announce(1, params("/bad/announce", "")))
	var ce bittorrent.ClientError
	if !errors.As(err, &ce) || string(ce) != "unknown passkey" {
		t.Fatalf("bad passkey: got %v, want the service's reason", err)
	}

	qs := svc.questions()
	if len(qs) != 2 {
		t.Fatalf("service asked %d times, want 2", len(qs))
	}
	q := qs[0]
	want := middleware.AnnounceFields{
		Action: "announce", InfoHash: "0100000000000000000000000000000000000000",
		PeerID: "2d54520000000000000000000000000000000000", IP: "127.0.0.2", Port: 6881,
		Event: "started", Left: 100, Uploaded: 7, Downloaded: 9,
		Params: map[string]string{"passkey": "good", "foo": "bar"},
	}
	if b, w := mustJSON(q), mustJSON(want); b != w {
		t.Errorf("question\n  %s\nwant\n  %s", b, w)
	}
	if qs[1].Params["passkey"] != "bad" {
		t.Errorf("UDP question's params %v, want passkey bad", qs[1].Params)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestCacheAsksOncePerKeyPerTTL(t *testing.T) {
	svc := newService(t, byPasskey)
	h := newHook(t, Config{URL: svc.URL, Routes: []string{"/:passkey/announce"}, CacheKey: []string{"passkey", "info_hash"}, CacheTTL: 400 * time.Millisecond})
	for i := 0; i < 1000; i++ {
		key := "good"
		if i%2 == 1 {
			key = "other"
		}
		_, err := run(h, announce(1, params("/"+key+"/announce", "")))
		if (err == nil) != (key == "good") {
			t.Fatalf("announce %d with %s: %v", i, key, err)
		}
	}
	if n := svc.asked.Load(); n != 2 {
		t.Fatalf("service asked %d times for 1000 announces of 2 keys, want 2", n)
	}
	// Another torrent is another key.
	run(h, announce(2, params("/good/announce", "")))
	if n := svc.asked.Load(); n != 3 {
		t.Fatalf("service asked %d times, want 3 after a new info hash", n)
	}
	time.Sleep(700 * time.Millisecond) // past the TTL, with the coarse clock's lag
	run(h, announce(1, params("/good/announce", "")))
	if n := svc.asked.Load(); n != 4 {
		t.Fatalf("service asked %d times after the TTL, want 4", n)
	}
}

func TestConcurrentMissesAskOnce(t *testing.T) {
	release := make(chan struct{})
	svc := newService(t, func(w http.ResponseWriter, q middleware.AnnounceFields) {
		<-release
		io.WriteString(w, `{"allow": true}`)
	})
	h := newHook(t, Config{URL: svc.URL, Timeout: 5 * time.Second})
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := run(h, announce(7, bittorrent.ParamsNone))
			errs <- err
		}()
	}
	// Wait until the question is being asked, then let a moment pass for
	// the others to queue behind it.
	for svc.asked.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := svc.asked.Load(); n != 1 {
		t.Fatalf("50 concurrent misses asked %d times, want 1", n)
	}
}

func TestFaultyServices(t *testing.T) {
	redirected := atomic.Int64{}
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		redirected.Add(1)
		io.WriteString(w, `{"allow": true}`)
	}))
	t.Cleanup(target.Close)

	for _, tc := range []struct {
		name   string
		answer func(w http.ResponseWriter)
		kind   string
	}{
		{"not JSON", func(w http.ResponseWriter) { io.WriteString(w, "<html>OK</html>") }, kindBadResponse},
		{"wrong types", func(w http.ResponseWriter) { io.WriteString(w, `{"allow": "yes"}`) }, kindBadResponse},
		{"no allow", func(w http.ResponseWriter) { io.WriteString(w, `{"reason": "x"}`) }, kindBadResponse},
		{"bad interval", func(w http.ResponseWriter) { io.WriteString(w, `{"allow": true, "interval": -5}`) }, kindBadResponse},
		{"huge body", func(w http.ResponseWriter) {
			io.WriteString(w, `{"allow": true, "reason": "`+strings.Repeat("x", MaxResponseBytes)+`"}`)
		}, kindBadResponse},
		{"5xx", func(w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) }, kindStatus},
		{"4xx", func(w http.ResponseWriter) { w.WriteHeader(http.StatusNotFound) }, kindStatus},
		{"redirect", func(w http.ResponseWriter) {
			w.Header().Set("Location", target.URL)
			w.WriteHeader(http.StatusTemporaryRedirect)
		}, kindRedirect},
		{"hang", func(w http.ResponseWriter) { time.Sleep(2 * time.Second) }, kindTimeout},
	} {
		for _, onError := range []string{"refuse", "admit"} {
			t.Run(tc.name+"/"+onError, func(t *testing.T) {
				svc := newService(t, func(w http.ResponseWriter, q middleware.AnnounceFields) { tc.answer(w) })
				// Only the hanging service is meant to time out: the
				// others get a timeout that a loaded machine never
				// reaches, so that each fails for its own reason.
				timeout := 10 * time.Second
				if tc.kind == kindTimeout {
					timeout = 300 * time.Millisecond
				}
				h := newHook(t, Config{URL: svc.URL, OnError: onError, Timeout: timeout})
				before := testutil.ToFloat64(serviceErrors.WithLabelValues(tc.kind))
				_, err := run(h, announce(3, bittorrent.ParamsNone))
				switch onError {
				case "refuse":
					if err != ErrUnavailable {
						t.Fatalf("got %v, want the generic refusal", err)
					}
				case "admit":
					if err != nil {
						t.Fatalf("got %v, want admitted", err)
					}
				}
				if got := testutil.ToFloat64(serviceErrors.WithLabelValues(tc.kind)) - before; got != 1 {
					t.Errorf("errors{kind=%q} grew by %v, want 1", tc.kind, got)
				}
				// A failure is not cached: the next request asks again.
				// (A question that timed out may reach the service late.)
				run(h, announce(3, bittorrent.ParamsNone))
				eventually.Holds(t, func() string {
					if n := svc.asked.Load(); n != 2 {
						return fmt.Sprintf("service asked %d times, want 2 (failures are not cached)", n)
					}
					return ""
				})
			})
		}
	}
	if n := redirected.Load(); n != 0 {
		t.Errorf("the redirect was followed %d times", n)
	}
}

func TestDownService(t *testing.T) {
	svc := newService(t, byPasskey)
	url := svc.URL
	svc.Close() // nothing listens there any more
	for _, onError := range []string{"refuse", "admit"} {
		h := newHook(t, Config{URL: url, OnError: onError})
		_, err := run(h, announce(1, bittorrent.ParamsNone))
		if (onError == "admit") != (err == nil) || (err != nil && err != ErrUnavailable) {
			t.Errorf("on_error %s: got %v", onError, err)
		}
	}
}

func TestBreakerStopsAskingAFailingService(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	svc := newService(t, func(w http.ResponseWriter, q middleware.AnnounceFields) {
		if failing.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		io.WriteString(w, `{"allow": true}`)
	})
	h := newHook(t, Config{URL: svc.URL, BreakerFailures: 3, BreakerCooldown: 300 * time.Millisecond})
	for i := 0; i < 20; i++ {
		if _, err := run(h, announce(byte(i), bittorrent.ParamsNone)); err != ErrUnavailable {
			t.Fatalf("announce %d: %v", i, err)
		}
	}
	if n := svc.asked.Load(); n != 3 {
		t.Fatalf("service asked %d times, want 3: the breaker opens after 3 failures", n)
	}
	failing.Store(false)
	time.Sleep(500 * time.Millisecond)
	if _, err := run(h, announce(99, bittorrent.ParamsNone)); err != nil {
		t.Fatalf("after the cooldown the probe should reach the recovered service: %v", err)
	}
	if _, err := run(h, announce(98, bittorrent.ParamsNone)); err != nil {
		t.Fatalf("breaker should be closed: %v", err)
	}
	if n := svc.asked.Load(); n != 5 {
		t.Fatalf("service asked %d times, want 5", n)
	}
}

// TestPanicFreesSlotAndProbe: a question that panics (the frontend
// recovers the request) gives back its max_in_flight slot and its breaker
// probe; otherwise one panic per slot, or one during a probe, would stop
// the hook from ever asking the service again.
func TestPanicFreesSlotAndProbe(t *testing.T) {
	svc := newService(t, byPasskey)
	h := newHook(t, Config{URL: svc.URL, MaxInFlight: 1, BreakerFailures: 1, BreakerCooldown: time.Nanosecond})
	h.brk.openUntil.Store(1) // open, its cooldown over: the next question probes
	func() {
		defer func() { _ = recover() }()
		_, _ = h.ask(question{}) // a question about nothing panics
	}()
	time.Sleep(2 * clock.Resolution) // past the cooldown the panic started again
	if _, err := h.ask(question{ann: announce(1, bittorrent.ParamsNone)}); err != nil {
		t.Fatalf("after a panicking question: %v, want the service asked", err)
	}
	if n := svc.asked.Load(); n != 1 {
		t.Fatalf("service asked %d times, want 1", n)
	}
}

func TestMaxInFlight(t *testing.T) {
	release := make(chan struct{})
	svc := newService(t, func(w http.ResponseWriter, q middleware.AnnounceFields) {
		<-release
		io.WriteString(w, `{"allow": true}`)
	})
	h := newHook(t, Config{URL: svc.URL, MaxInFlight: 2, Timeout: 5 * time.Second})
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); run(h, announce(byte(10+i), bittorrent.ParamsNone)) }()
	}
	for svc.asked.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	// A third distinct question finds both slots taken and is not asked.
	if _, err := run(h, announce(20, bittorrent.ParamsNone)); err != ErrUnavailable {
		t.Fatalf("third question: got %v, want the generic refusal", err)
	}
	close(release)
	wg.Wait()
	if n := svc.asked.Load(); n != 2 {
		t.Fatalf("service asked %d times, want 2", n)
	}
}

func TestSignedRequests(t *testing.T) {
	secret := configtest.File(t, "secret", "s3cret\n")
	svc := newService(t, byPasskey)
	h := newHook(t, Config{URL: svc.URL, SecretFile: secret})
	run(h, announce(1, bittorrent.ParamsNone))
	hd := svc.hdrs[0]
	body := []byte(hd.Get("X-Test-Body"))
	if err := webhook.Verify(hd, []byte("s3cret"), body, time.Now()); err != nil {
		t.Fatalf("signature does not verify: %v", err)
	}
	if err := webhook.Verify(hd, []byte("other"), body, time.Now()); !errors.Is(err, webhook.ErrBadSignature) {
		t.Errorf("wrong secret: %v", err)
	}
	if err := webhook.Verify(hd, []byte("s3cret"), append(body, ' '), time.Now()); !errors.Is(err, webhook.ErrBadSignature) {
		t.Errorf("changed body: %v", err)
	}
	if err := webhook.Verify(hd, []byte("s3cret"), body, time.Now().Add(10*time.Minute)); !errors.Is(err, webhook.ErrStale) {
		t.Errorf("replayed 10 minutes later: %v", err)
	}
}

// TestReloadRereadsSecret: an operator rotates the secret by rewriting
// secret_file and reloading; the hook's entry is unchanged, so the running
// hook is kept and must read the file again. A file that cannot be read
// leaves the hook signing with the secret it had.
func TestReloadRereadsSecret(t *testing.T) {
	secret := configtest.File(t, "secret", "s3cret\n")
	svc := newService(t, byPasskey)
	h := newHook(t, Config{URL: svc.URL, SecretFile: secret})
	r, ok := any(h).(middleware.Reloader)
	if !ok {
		t.Fatal("the hook does not re-read its files on reload")
	}
	run(h, announce(1, bittorrent.ParamsNone))
	configtest.Rewrite(t, secret, "rotated\n")
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	run(h, announce(2, bittorrent.ParamsNone))
	if err := os.Remove(secret); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(); err == nil || !strings.Contains(err.Error(), "secret_file") {
		t.Fatalf("Reload with the file gone: %v, want secret_file named", err)
	}
	run(h, announce(3, bittorrent.ParamsNone))
	for i, want := range []string{"s3cret", "rotated", "rotated"} {
		hd := svc.hdrs[i]
		if err := webhook.Verify(hd, []byte(want), []byte(hd.Get("X-Test-Body")), time.Now()); err != nil {
			t.Errorf("question %d: not signed with %q: %v", i+1, want, err)
		}
	}
}

func TestMutualTLS(t *testing.T) {
	serverCert, serverKey := testcert.PEM(t)
	clientCert, clientKey := testcert.PEM(t)
	ca, cc, ck := configtest.File(t, "ca.pem", string(serverCert)), configtest.File(t, "client.pem", string(clientCert)), configtest.File(t, "client.key", string(clientKey))
	pair, err := tls.X509KeyPair(serverCert, serverKey)
	if err != nil {
		t.Fatal(err)
	}
	wantClient, _ := tls.X509KeyPair(clientCert, clientKey)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"allow": true}`)
	}))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{pair},
		// The service admits exactly the client certificate it was given.
		ClientAuth: tls.RequireAnyClientCert,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 || string(raw[0]) != string(wantClient.Certificate[0]) {
				return errors.New("unknown client certificate")
			}
			return nil
		},
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	h := newHook(t, Config{URL: srv.URL, TLSCAFile: ca, TLSCertFile: cc, TLSKeyFile: ck})
	if _, err := run(h, announce(1, bittorrent.ParamsNone)); err != nil {
		t.Fatalf("with the client certificate: %v", err)
	}
	h2 := newHook(t, Config{URL: srv.URL, TLSCAFile: ca})
	if _, err := run(h2, announce(1, bittorrent.ParamsNone)); err != ErrUnavailable {
		t.Fatalf("without a client certificate: got %v, want refused", err)
	}
	h3 := newHook(t, Config{URL: srv.URL, TLSCertFile: cc, TLSKeyFile: ck})
	if _, err := run(h3, announce(1, bittorrent.ParamsNone)); err != ErrUnavailable {
		t.Fatalf("without the CA: got %v, want refused", err)
	}
}

func TestScrapes(t *testing.T) {
	svc := newService(t, func(w http.ResponseWriter, q middleware.AnnounceFields) {
		io.WriteString(w, `{"allow": false}`)
	})
	req := &bittorrent.ScrapeRequest{InfoHashes: []bittorrent.InfoHash{{1}, {2}}, Params: bittorrent.ParamsNone}
	off := newHook(t, Config{URL: svc.URL})
	if err := off.HandleScrape(context.Background(), req, &bittorrent.ScrapeResponse{}); err != nil || svc.asked.Load() != 0 {
		t.Fatalf("scrapes: false: got %v after %d questions, want admitted unasked", err, svc.asked.Load())
	}
	on := newHook(t, Config{URL: svc.URL, Scrapes: true})
	for i := 0; i < 3; i++ {
		err := on.HandleScrape(context.Background(), req, &bittorrent.ScrapeResponse{})
		var ce bittorrent.ClientError
		if !errors.As(err, &ce) || string(ce) != defaultReason {
			t.Fatalf("got %v, want the default refusal", err)
		}
	}
	if n := svc.asked.Load(); n != 1 {
		t.Fatalf("service asked %d times, want 1", n)
	}
}

func TestCleanReason(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"ratio too low", "ratio too low"},
		{"line\r\nbreak\x00", "line  break"},
		{strings.Repeat("é", 100), strings.Repeat("é", MaxReasonBytes/2)},
		{"\xff\xfebad utf8", "bad utf8"},
	} {
		if got := cleanReason(tc.in); got != tc.want {
			t.Errorf("cleanReason(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// BenchmarkCacheHit is the cost of an announce whose answer is cached,
// keyed by passkey and info hash, the passkey read from a BEP 41 path.
func BenchmarkCacheHit(b *testing.B) {
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"allow": true}`)
	}))
	defer svc.Close()
	cfg := Config{URL: svc.URL, Routes: []string{"/:passkey/announce"}, CacheKey: []string{"passkey", "info_hash"}, CacheTTL: time.Hour}.WithDefaults()
	h, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Stop()
	req := announce(1, params("/0123456789abcdef0123456789abcdef/announce", ""))
	resp := &bittorrent.AnnounceResponse{}
	if err := h.HandleAnnounce(context.Background(), req, resp); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		resp := &bittorrent.AnnounceResponse{}
		for pb.Next() {
			if err := h.HandleAnnounce(context.Background(), req, resp); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.StopTimer()
	// On a machine other processes load, ns/op counts the time spent
	// waiting for a core too; the process's CPU time per hit does not.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
