package http

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"net/http/httptrace"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/frontend"
	"github.com/chihaya/chihaya/frontend/frontendtest"
	"github.com/chihaya/chihaya/internal/cleanup"
	"github.com/chihaya/chihaya/internal/testcert"
)

// startFrontend starts a frontend on addr (a free loopback port) and stops
// it when the test ends.
func startFrontend(t *testing.T, logic frontend.TrackerLogic, addr string, mod func(*Config)) *Frontend {
	t.Helper()
	cfg := Config{Addr: addr}
	if mod != nil {
		mod(&cfg)
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	f, err := NewFrontend(logic, cfg)
	if err != nil {
		if strings.Contains(addr, "::1") {
			t.Skipf("no IPv6 loopback: %v", err)
		}
		t.Fatal(err)
	}
	cleanup.Stop(t, f.Stop)
	return f
}

// reply is a decoded answer of the tracker.
type reply struct {
	status      int
	contentType string
	body        map[string]any
	header      nethttp.Header
	raw         []byte
}

func get(t *testing.T, client *nethttp.Client, url string) reply {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return readReply(t, resp)
}

func readReply(t *testing.T, resp *nethttp.Response) reply {
	t.Helper()
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the reply: %v", err)
	}
	v, err := frontendtest.DecodeBencode(raw)
	if err != nil {
		t.Fatalf("reply is not bencode: %v\n%q", err, raw)
	}
	d, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("reply is a %T, not a dictionary", v)
	}
	return reply{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), body: d, header: resp.Header, raw: raw}
}

// wantFailure checks that r is a failure saying reason, in the form every
// failure must take.
func wantFailure(t *testing.T, r reply, reason string) {
	t.Helper()
	if r.status != 200 || r.contentType != "text/plain" {
		t.Errorf("failure sent as %d %q, want 200 text/plain", r.status, r.contentType)
	}
	if got := r.body["failure reason"]; got != reason || len(r.body) != 1 {
		t.Errorf("reply = %q, want only failure reason %q", r.raw, reason)
	}
}

func announceURL(base, path string, port int, changes ...string) string {
	return base + path + "?" + announceQuery(append([]string{"port", fmt.Sprint(port)}, changes...)...)
}

func baseURL(f *Frontend) string { return "http://" + f.Addr().String() }

// TestSuite runs the scenarios every frontend passes, over HTTP, against
// frontendtest's fake logic.
func TestSuite(t *testing.T) {
	frontendtest.Run(t, func(t *testing.T, af bittorrent.AddressFamily) frontendtest.Dialer {
		f := startFrontend(t, frontendtest.NewLogic(), frontendtest.Loopback(af)+":0", nil)
		return func(t *testing.T) frontendtest.Client {
			return frontendtest.HTTP(t, baseURL(f)+"/announce")
		}
	})
}

func TestAnnounceAndScrape(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(addr, func(t *testing.T) {
			logic := frontendtest.NewLogic()
			f := startFrontend(t, logic, addr, nil)
			base := baseURL(f)
			client := &nethttp.Client{}
			v6 := strings.HasPrefix(addr, "[")

			// A seeder announces, then a leecher: the leecher gets the
			// seeder, never itself, in the compact form of its family.
			r := get(t, client, announceURL(base, "/announce", 1001, "left", "0", "peer_id", "-SEEDER-000000000000", "event", "started"))
			if r.status != 200 || r.contentType != "text/plain" {
				t.Fatalf("announce answered %d %q", r.status, r.contentType)
			}
			if _, failed := r.body["failure reason"]; failed {
				t.Fatalf("announce failed: %q", r.raw)
			}
			// The swarm update runs once the reply is on its way, as a
			// client that announces again a moment later would see it.
			logic.WaitAfters(t, 1)
			r = get(t, client, announceURL(base, "/announce", 1002, "event", "started"))
			key, size := "peers", 6
			if v6 {
				key, size = "peers6", 18
			}
			peers, _ := r.body[key].(string)
			if len(peers) != size {
				t.Fatalf("%s = %q, want one peer of %d bytes", key, peers, size)
			}
			ip := netip.MustParseAddr("127.0.0.1")
			if v6 {
				ip = netip.IPv6Loopback()
			}
			wantPeer := string(append(ip.AsSlice(), 1001>>8, 1001&0xff))
			if peers != wantPeer {
				t.Errorf("%s = %x, want %x (the seeder)", key, peers, wantPeer)
			}
			if got, _ := r.body["external ip"].(string); got != string(ip.AsSlice()) {
				t.Errorf("external ip = %x, want %x", got, ip.AsSlice())
			}
			if r.body["complete"] != int64(1) || r.body["interval"] != int64(1800) || r.body["min interval"] != int64(900) {
				t.Errorf("counts and intervals = %q", r.raw)
			}

			// Non-compact, without peer IDs.
			r = get(t, client, announceURL(base, "/announce", 1002, "compact", "0", "no_peer_id", "1"))
			list, _ := r.body["peers"].([]any)
			if len(list) != 1 {
				t.Fatalf("non-compact peers = %q", r.raw)
			}
			pd := list[0].(map[string]any)
			if pd["ip"] != ip.String() || pd["port"] != int64(1001) || pd["peer id"] != nil {
				t.Errorf("non-compact peer = %v", pd)
			}

			// The scrape sees both; its files are keyed by raw info hash.
			logic.WaitAfters(t, 3)
			r = get(t, client, base+"/scrape?info_hash="+testIHEscaped+"&info_hash="+testIHEscaped)
			files, _ := r.body["files"].(map[string]any)
			counts, _ := files[string(testIH[:])].(map[string]any)
			if len(files) != 1 || counts["complete"] != int64(1) || counts["incomplete"] != int64(1) {
				t.Errorf("scrape = %q", r.raw)
			}
			if n := logic.WaitAfters(t, 4); n != 4 {
				t.Errorf("After* ran %d times for 4 answered requests", n)
			}
		})
	}
}

func TestFailures(t *testing.T) {
	logic := frontendtest.NewLogic()
	f := startFrontend(t, logic, "127.0.0.1:0", func(c *Config) { c.MaxScrapeInfoHashes = 2 })
	base := baseURL(f)
	esc := func(ih bittorrent.InfoHash) string { return frontendtest.EscapeBytes(ih[:]) }
	tests := []struct {
		name   string
		method string
		url    string
		reason string
	}{
		{"missing info_hash", "GET", announceURL(base, "/announce", 1, "info_hash", "-"), string(bittorrent.ErrMissingInfoHash)},
		{"bad escape", "GET", base + "/announce?info_hash=%zz", string(bittorrent.ErrInvalidEscape)},
		{"bad port", "GET", announceURL(base, "/announce", 70000), string(bittorrent.ErrInvalidPort)},
		{"negative numwant", "GET", announceURL(base, "/announce", 1, "numwant", "-5"), string(bittorrent.ErrInvalidNumWant)},
		{"unknown path", "GET", base + "/index.html", string(errUnknownPath)},
		{"root", "GET", base + "/", string(errUnknownPath)},
		{"trailing slash is not redirected", "GET", base + "/announce/", string(errUnknownPath)},
		{"POST", "POST", announceURL(base, "/announce", 1), string(errMethodNotAllowed)},
		{"OPTIONS", "OPTIONS", base + "/announce", string(errMethodNotAllowed)},
		{"full scrape", "GET", base + "/scrape", string(bittorrent.ErrFullScrapeDisabled)},
		{"too many info hashes", "GET", base + "/scrape?info_hash=" + testIHEscaped + "&info_hash=" + testIHEscaped + "&info_hash=" + testIHEscaped, string(bittorrent.ErrTooManyInfoHashes)},
		{"refused by a hook", "GET", announceURL(base, "/announce", 1, "info_hash", esc(frontendtest.RefusedHash)), string(frontendtest.ErrRefused)},
		{"internal error is not leaked", "GET", announceURL(base, "/announce", 1, "info_hash", esc(frontendtest.InternalHash)), string(bittorrent.ErrInternal)},
		{"panic in announce", "GET", announceURL(base, "/announce", 1, "info_hash", esc(frontendtest.PanicHash)), string(bittorrent.ErrInternal)},
		{"panic in scrape", "GET", base + "/scrape?info_hash=" + esc(frontendtest.PanicHash), string(bittorrent.ErrInternal)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := nethttp.NewRequest(tt.method, tt.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := nethttp.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			wantFailure(t, readReply(t, resp), tt.reason)
		})
	}
	// Still serving after the panics.
	r := get(t, nethttp.DefaultClient, announceURL(base, "/announce", 1))
	if _, failed := r.body["failure reason"]; failed {
		t.Errorf("announce after panics failed: %q", r.raw)
	}
	if n := logic.WaitAfters(t, 1); n != 1 {
		t.Errorf("After* ran %d times, want only for the one answered announce", n)
	}
}

func TestRouteParamsAndRealIP(t *testing.T) {
	logic := frontendtest.NewLogic()
	f := startFrontend(t, logic, "127.0.0.1:0", func(c *Config) {
		c.AnnounceRoutes = []string{"/:passkey/announce"}
		c.ScrapeRoutes = []string{"/:passkey/scrape"}
		c.RealIPHeader = "X-Forwarded-For"
		c.TrustedProxies = []string{"127.0.0.0/8"}
	})
	req, err := nethttp.NewRequest("GET", announceURL(baseURL(f), "/s3cret/announce", 4242, "numwant", "5"), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Forwarded-For", "203.0.113.1, 198.51.100.7")
	resp, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r := readReply(t, resp)
	if _, failed := r.body["failure reason"]; failed {
		t.Fatalf("announce failed: %q", r.raw)
	}
	last := logic.Last()
	if last.Passkey != "s3cret" {
		t.Errorf("RouteParam(passkey) = %q, want s3cret", last.Passkey)
	}
	if want := netip.MustParseAddrPort("198.51.100.7:4242"); last.Announce.Peer.AddrPort != want {
		t.Errorf("peer address = %v, want %v from X-Forwarded-For", last.Announce.Peer.AddrPort, want)
	}
	if last.Announce.NumWant != 5 {
		t.Errorf("numwant = %d, want 5", last.Announce.NumWant)
	}
	if got := string(r.body["external ip"].(string)); got != string(netip.MustParseAddr("198.51.100.7").AsSlice()) {
		t.Errorf("external ip = %x", got)
	}
}

// rawExchange sends raw bytes on a new connection and returns everything
// the server writes until it closes the connection.
func rawExchange(t *testing.T, addr string, send []byte) []byte {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A safety net against a hung test, not an assertion on timing.
	c.SetDeadline(time.Now().Add(30 * time.Second))
	go func() {
		c.Write(send) //nolint:errcheck // the server may hang up mid-write
	}()
	got, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("reading: %v", err)
	}
	return got
}

func TestRefusedRequests(t *testing.T) {
	f := startFrontend(t, frontendtest.NewLogic(), "127.0.0.1:0", nil)
	tests := []struct {
		name   string
		send   string
		reason string
		metric string
	}{
		{"headers over max_header_bytes", "GET /announce HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 20<<10) + "\r\n\r\n", string(errHeaderTooLarge), "header_too_large"},
		{"junk without a newline", strings.Repeat("\x00\x01junk", 4<<10), string(errHeaderTooLarge), "header_too_large"},
		{"junk request line", "\x16\x03\x01 nonsense\r\n\r\n", string(bittorrent.ErrMalformedRequest), "bad_request"},
		{"missing Host", "GET /announce HTTP/1.1\r\n\r\n", string(bittorrent.ErrMalformedRequest), "bad_request"},
		{"bad HTTP version", "GET /announce HTTP/9.9\r\nHost: x\r\n\r\n", string(bittorrent.ErrMalformedRequest), "bad_request"},
		{"unknown expectation", "GET /announce HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n", string(bittorrent.ErrMalformedRequest), "bad_request"},
		{"unsupported transfer encoding", "GET /announce HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", string(bittorrent.ErrMalformedRequest), "bad_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := frontendtest.ErrorsCounted("http", tt.metric)
			got := rawExchange(t, f.Addr().String(), []byte(tt.send))
			resp, err := nethttp.ReadResponse(bufio.NewReader(strings.NewReader(string(got))), nil)
			if err != nil {
				t.Fatalf("reading the answer %q: %v", got, err)
			}
			wantFailure(t, readReply(t, resp), tt.reason)
			if after := frontendtest.ErrorsCounted("http", tt.metric); after != before+1 {
				t.Errorf("errors_total{reason=%q} went from %v to %v, want one more", tt.metric, before, after)
			}
		})
	}
	// A request just under the limit is served.
	req, _ := nethttp.NewRequest("GET", announceURL(baseURL(f), "/announce", 1), nil)
	req.Header.Set("X-Pad", strings.Repeat("a", DefaultMaxHeaderBytes-1024))
	resp, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if r := readReply(t, resp); r.body["failure reason"] != nil {
		t.Errorf("request under max_header_bytes refused: %q", r.raw)
	}
}

func TestSlowClientIsDropped(t *testing.T) {
	f := startFrontend(t, frontendtest.NewLogic(), "127.0.0.1:0", func(c *Config) { c.ReadTimeout = 100 * time.Millisecond })
	before := frontendtest.ErrorsCounted("http", "read_timeout")
	c, err := net.Dial("tcp", f.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second)) // safety net only
	if _, err := c.Write([]byte("GET /announce?info_hash=")); err != nil {
		t.Fatal(err)
	}
	// Meanwhile other clients are served.
	if r := get(t, nethttp.DefaultClient, announceURL(baseURL(f), "/announce", 1)); r.body["failure reason"] != nil {
		t.Errorf("announce beside a slow client failed: %q", r.raw)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("the slow connection was not closed: %v", err)
	}
	if len(got) != 0 {
		t.Errorf("the slow client was sent %q, want nothing", got)
	}
	if after := frontendtest.ErrorsCounted("http", "read_timeout"); after != before+1 {
		t.Errorf("errors_total{reason=read_timeout} went from %v to %v", before, after)
	}
}

func TestKeepAlive(t *testing.T) {
	for _, keepAlive := range []bool{false, true} {
		t.Run(fmt.Sprint("enable_keepalive=", keepAlive), func(t *testing.T) {
			f := startFrontend(t, frontendtest.NewLogic(), "127.0.0.1:0", func(c *Config) { c.EnableKeepAlive = keepAlive })
			client := &nethttp.Client{Transport: &nethttp.Transport{}}
			t.Cleanup(client.CloseIdleConnections)
			var reused bool
			for i := 0; i < 2; i++ {
				trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused }}
				req, _ := nethttp.NewRequest("GET", announceURL(baseURL(f), "/announce", 1), nil)
				req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				readReply(t, resp)
			}
			if reused != keepAlive {
				t.Errorf("second request reused the connection = %v, want %v", reused, keepAlive)
			}
		})
	}
}

func TestLargeReplyHasContentLength(t *testing.T) {
	logic := frontendtest.NewLogic()
	f := startFrontend(t, logic, "127.0.0.1:0", nil)
	for i := 0; i < 60; i++ {
		get(t, nethttp.DefaultClient, announceURL(baseURL(f), "/announce", 2000+i, "peer_id", fmt.Sprintf("-XX0000-%012d", i)))
	}
	resp, err := nethttp.Get(announceURL(baseURL(f), "/announce", 1, "compact", "0"))
	if err != nil {
		t.Fatal(err)
	}
	r := readReply(t, resp)
	if len(r.raw) < 2048 {
		t.Fatalf("reply of %d bytes is too small for this test", len(r.raw))
	}
	if resp.ContentLength != int64(len(r.raw)) || len(resp.TransferEncoding) != 0 {
		t.Errorf("Content-Length %d, Transfer-Encoding %v for a %d-byte reply", resp.ContentLength, resp.TransferEncoding, len(r.raw))
	}
	if list, _ := r.body["peers"].([]any); len(list) != DefaultDefaultNumWant {
		t.Errorf("%d peers, want default_numwant = %d", len(list), DefaultDefaultNumWant)
	}
}

// writeTestCert writes a self-signed certificate for 127.0.0.1 and returns
// the paths and a pool that trusts it.
func writeTestCert(t *testing.T) (certPath, keyPath string, pool *x509.CertPool) {
	t.Helper()
	certPath, keyPath = testcert.Write(t)
	pem, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("the test certificate does not parse")
	}
	return certPath, keyPath, pool
}

func TestHTTPSOnly(t *testing.T) {
	certPath, keyPath, pool := writeTestCert(t)
	f := startFrontend(t, frontendtest.NewLogic(), "", func(c *Config) {
		c.HTTPSAddr = "127.0.0.1:0"
		c.TLSCertPath, c.TLSKeyPath = certPath, keyPath
	})
	if f.Addr() != nil {
		t.Errorf("Addr() = %v with no plain listener", f.Addr())
	}
	client := &nethttp.Client{Transport: &nethttp.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	t.Cleanup(client.CloseIdleConnections)
	base := "https://" + f.TLSAddr().String()
	r := get(t, client, announceURL(base, "/announce", 1))
	if _, failed := r.body["failure reason"]; failed || r.status != 200 {
		t.Errorf("HTTPS announce: %d %q", r.status, r.raw)
	}
	wantFailure(t, get(t, client, base+"/nowhere"), string(errUnknownPath))

	// Plain HTTP on the TLS port gets nothing readable, and the server
	// keeps serving.
	got := rawExchange(t, f.TLSAddr().String(), []byte("GET /announce HTTP/1.1\r\nHost: x\r\n\r\n"))
	if strings.Contains(string(got), "text/plain; charset") {
		t.Errorf("plain request on the TLS port answered with net/http's text: %q", got)
	}
	if r := get(t, client, announceURL(base, "/announce", 1)); r.status != 200 {
		t.Errorf("HTTPS announce after a plain request: %d", r.status)
	}
}

func TestNewFrontendErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	certPath, keyPath, _ := writeTestCert(t)
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"address in use", Config{Addr: busy.Addr().String()}, "address already in use"},
		{"https address in use", Config{Addr: "127.0.0.1:0", HTTPSAddr: busy.Addr().String(), TLSCertPath: certPath, TLSKeyPath: keyPath}, "http: https: listen tcp"},
		{"missing certificate", Config{Addr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", TLSCertPath: "/nonexistent/cert.pem", TLSKeyPath: "/nonexistent/key.pem"}, "http: load TLS key pair"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg.WithDefaults()
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			f, err := NewFrontend(frontendtest.NewLogic(), cfg)
			if err == nil {
				f.Stop(context.Background())
				t.Fatal("NewFrontend succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestReplyIsSentBeforeTheAfterStep(t *testing.T) {
	// The swarm update and the posthooks run after the reply: a client
	// has its whole answer while they are still running.
	for _, tc := range []struct {
		name, path string
	}{
		{"announce", announceURL("", "/announce", 6881)},
		{"scrape", "/scrape?info_hash=" + strings.Repeat("a", 20)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logic := frontendtest.NewLogic()
			release := logic.HoldAfters()
			f := startFrontend(t, logic, "127.0.0.1:0", nil)
			t.Cleanup(release)
			client := &nethttp.Client{Timeout: 10 * time.Second}
			r := get(t, client, baseURL(f)+tc.path)
			if _, failed := r.body["failure reason"]; failed || r.header.Get("Transfer-Encoding") != "" {
				t.Errorf("reply = %q (Transfer-Encoding %q), want a whole bencoded answer", r.raw, r.header.Get("Transfer-Encoding"))
			}
			if n := logic.Afters(); n != 0 {
				t.Errorf("%d After steps finished before the client had its reply", n)
			}
		})
	}
}

func TestWaitingRequestsDoNotStopOthers(t *testing.T) {
	// A request whose logic waits (a store over the network) holds the
	// goroutine that accepted it: clients that connect meanwhile, each
	// on a new connection, are still served, and Stop gives up on the
	// waiting ones when its context ends.
	logic := frontendtest.NewLogic()
	release := logic.HoldAfters()
	defer release()
	cfg := Config{Addr: "127.0.0.1:0"}.WithDefaults()
	f, err := NewFrontend(logic, cfg)
	if err != nil {
		t.Fatal(err)
	}
	client := &nethttp.Client{Timeout: 10 * time.Second, Transport: &nethttp.Transport{DisableKeepAlives: true}}
	const n = 20
	for i := range n {
		r := get(t, client, announceURL(baseURL(f), "/announce", 6881+i))
		if _, failed := r.body["failure reason"]; failed {
			t.Fatalf("announce %d beside %d waiting ones: %q", i, i, r.raw)
		}
	}
	if got := logic.Afters(); got != 0 {
		t.Fatalf("%d After steps finished while held", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := f.Stop(ctx); err == nil {
		t.Error("Stop returned no error while requests were still waiting")
	}
	release()
}
