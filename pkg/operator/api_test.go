package operator

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/middleware/torrentapproval"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/locality"
	"github.com/chihaya/chihaya/storage/memory"
)

const (
	readToken  = "read-token-0123456789"
	adminToken = "admin-token-0123456789"
)

// clock is a settable time for the tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	srv      *Server
	store    storage.PeerStore
	clock    *clock
	requests *prometheus.CounterVec
	list     *torrentapproval.Hook
	listPath string
	noHook   bool
}

func hash(b byte) bittorrent.InfoHash {
	var ih bittorrent.InfoHash
	for i := range ih {
		ih[i] = b
	}
	return ih
}

func peer(a string) bittorrent.Peer {
	return bittorrent.Peer{AddrPort: netip.AddrPortFrom(netip.MustParseAddr(a), 6881)}
}

// newFixture builds a server over a memory store (locality by /24 when
// local) and a whitelist file, with a fixed clock.
func newFixture(t *testing.T, local bool) *fixture {
	t.Helper()
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("# operators\n"+readToken+" read\n\n"+adminToken+" admin # deploy bot\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := memory.Config{}.WithDefaults()
	if local {
		cfg.Locality = locality.Config{Enabled: true}.WithDefaults()
	}
	store, err := memory.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Stop(context.Background()) })
	f := &fixture{store: store, clock: &clock{t: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)}}
	f.listPath = filepath.Join(dir, "whitelist")
	if err := os.WriteFile(f.listPath, []byte("# approved builds\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.list, err = torrentapproval.New(torrentapproval.Config{WhitelistFile: f.listPath, FileCheckInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.list.Stop)
	reg := prometheus.NewRegistry()
	f.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chihaya_frontend_requests_total"}, []string{"frontend", "action"})
	reg.MustRegister(f.requests)
	f.srv, err = New(Config{TokensFile: tokens}.WithDefaults(), Options{
		Store: storeOf(store),
		Approval: func() ApprovalList {
			if f.noHook {
				return nil
			}
			return f.list
		},
		Version:  "v9.9.9-test",
		Gatherer: reg,
		Now:      f.clock.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// do sends a request to the handler and returns the status and body.
func (f *fixture) do(t *testing.T, method, path, token, body string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, r)
	req.RemoteAddr = "192.0.2.1:40000"
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	f.srv.Handler().ServeHTTP(w, req)
	return w
}

func wantJSON(t *testing.T, w *httptest.ResponseRecorder, code int, body string) {
	t.Helper()
	if w.Code != code || w.Body.String() != body+"\n" {
		t.Fatalf("got %d %s\nwant %d %s", w.Code, w.Body.String(), code, body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestStats(t *testing.T) {
	f := newFixture(t, false)
	must(t, f.store.PutSeeder(hash(1), peer("10.0.0.1")))
	must(t, f.store.PutLeecher(hash(1), peer("10.0.0.2")))
	must(t, f.store.GraduateLeecher(hash(1), peer("2001:db8::1")))
	must(t, f.store.PutLeecher(hash(2), peer("2001:db8::2")))
	f.requests.WithLabelValues("http", "announce").Add(100)
	f.srv.hist.sampleRequests()
	f.clock.add(time.Minute)
	f.requests.WithLabelValues("http", "announce").Add(120)
	f.requests.WithLabelValues("udp", "announce").Add(60)
	f.requests.WithLabelValues("udp", "scrape").Add(30)
	f.srv.hist.sampleRequests()
	f.clock.add(time.Second)
	wantJSON(t, f.do(t, "GET", "/api/v1/stats", readToken, ""), 200,
		`{"swarms":2,"seeders":2,"leechers":2,"snatches":1,"ipv4":{"swarms":1,"seeders":1,"leechers":1},"ipv6":{"swarms":2,"seeders":1,"leechers":1},"announces_per_second":3,"scrapes_per_second":0.5,"uptime_seconds":61,"version":"v9.9.9-test"}`)
}

func TestAuth(t *testing.T) {
	f := newFixture(t, false)
	for _, tc := range []struct {
		name, header string
	}{
		{"none", ""},
		{"basic", "Basic cmVhZDpyZWFk"},
		{"empty bearer", "Bearer "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := f.do(t, "GET", "/api/v1/stats", "", "", "Authorization", tc.header)
			wantJSON(t, w, 401, `{"error":"missing or invalid bearer token"}`)
			if got := w.Header().Get("WWW-Authenticate"); got != `Bearer realm="chihaya"` {
				t.Errorf("WWW-Authenticate %q", got)
			}
		})
	}
	// A wrong token is answered as a missing one, unknown paths too: the
	// answer says nothing of what exists.
	wantJSON(t, f.do(t, "GET", "/api/v1/nothing", "", ""), 401, `{"error":"missing or invalid bearer token"}`)
	wantJSON(t, f.do(t, "GET", "/api/v1/nothing", readToken, ""), 404, `{"error":"no such endpoint; see docs/operator.md"}`)
	wantJSON(t, f.do(t, "GET", "/api/v1/stats", "wrong-token-0123456789", ""), 401, `{"error":"missing or invalid bearer token"}`)
	// ... and slows the address down: 1 s, then 2 s, ...
	w := f.do(t, "GET", "/api/v1/stats", readToken, "")
	wantJSON(t, w, 429, `{"error":"too many failed attempts from this address; try again in 1s"}`)
	if w.Header().Get("Retry-After") != "1" {
		t.Errorf("Retry-After %q", w.Header().Get("Retry-After"))
	}
	f.clock.add(time.Second)
	wantJSON(t, f.do(t, "GET", "/api/v1/stats", "wrong-token-9876543210", ""), 401, `{"error":"missing or invalid bearer token"}`)
	wantJSON(t, f.do(t, "GET", "/api/v1/stats", adminToken, ""), 429, `{"error":"too many failed attempts from this address; try again in 2s"}`)
	f.clock.add(2 * time.Second)
	if w := f.do(t, "GET", "/api/v1/stats", adminToken, ""); w.Code != 200 {
		t.Fatalf("after the wait: %d %s", w.Code, w.Body)
	}
	// A success forgets the failures.
	wantJSON(t, f.do(t, "GET", "/api/v1/stats", "wrong-token-0123456789", ""), 401, `{"error":"missing or invalid bearer token"}`)
	wantJSON(t, f.do(t, "GET", "/api/v1/stats", adminToken, ""), 429, `{"error":"too many failed attempts from this address; try again in 1s"}`)
}

func TestTorrents(t *testing.T) {
	f := newFixture(t, false)
	// Swarm n has n seeders and 10-n leechers; swarm 5 has 3 snatches.
	for n := 1; n <= 9; n++ {
		for i := 0; i < 10; i++ {
			p := peer("10.0." + string(rune('0'+n)) + "." + string(rune('0'+i)))
			if i < n {
				must(t, f.store.PutSeeder(hash(byte(n)), p))
			} else {
				must(t, f.store.PutLeecher(hash(byte(n)), p))
			}
		}
	}
	for i := 0; i < 3; i++ {
		must(t, f.store.GraduateLeecher(hash(5), peer("10.9.9."+string(rune('0'+i)))))
	}
	w := f.do(t, "GET", "/api/v1/torrents?sort=seeders&limit=2", readToken, "")
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	body := w.Body.String()
	const first = `{"torrents":[{"info_hash":"0909090909090909090909090909090909090909","seeders":9,"leechers":1,"snatches":0},{"info_hash":"0505050505050505050505050505050505050505","seeders":8,"leechers":5,"snatches":3}],"next_cursor":"`
	if !strings.HasPrefix(body, first) {
		t.Fatalf("first page:\n%s\nwant it to start\n%s", body, first)
	}
	cursor := strings.TrimSuffix(strings.TrimPrefix(body, first), "\"}\n")
	// The swarms change between pages: the walk goes on as it started.
	must(t, f.store.PutSeeder(hash(1), peer("10.8.8.1")))
	must(t, f.store.PutSeeder(hash(1), peer("10.8.8.2")))
	must(t, f.store.PutSeeder(hash(1), peer("10.8.8.3")))
	must(t, f.store.PutSeeder(hash(1), peer("10.8.8.4")))
	must(t, f.store.PutSeeder(hash(1), peer("10.8.8.5")))
	must(t, f.store.PutSeeder(hash(1), peer("10.8.8.6")))
	must(t, f.store.PutSeeder(hash(1), peer("10.8.8.7")))
	must(t, f.store.PutSeeder(hash(1), peer("10.8.8.8")))
	seen := map[string]bool{}
	order := []string{}
	for cursor != "" {
		w := f.do(t, "GET", "/api/v1/torrents?limit=3&cursor="+cursor, readToken, "")
		if w.Code != 200 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		var rep torrentsReply
		decode(t, w.Body.String(), &rep)
		for _, tr := range rep.Torrents {
			if seen[tr.InfoHash] {
				t.Fatalf("%s repeated", tr.InfoHash)
			}
			seen[tr.InfoHash] = true
			order = append(order, tr.InfoHash[:2])
		}
		cursor = rep.NextCursor
	}
	if got := strings.Join(order, ","); got != "08,07,06,04,03,02,01" {
		t.Fatalf("rest of the walk: %s, want 08,07,06,04,03,02,01", got)
	}
	// A new walk sees the change, sorts by peers by default, breaks ties
	// by info hash, and its last page has no cursor.
	wantJSON(t, f.do(t, "GET", "/api/v1/torrents?limit=1000", readToken, ""), 200,
		`{"torrents":[{"info_hash":"0101010101010101010101010101010101010101","seeders":9,"leechers":9,"snatches":0},{"info_hash":"0505050505050505050505050505050505050505","seeders":8,"leechers":5,"snatches":3},{"info_hash":"0202020202020202020202020202020202020202","seeders":2,"leechers":8,"snatches":0},{"info_hash":"0303030303030303030303030303030303030303","seeders":3,"leechers":7,"snatches":0},{"info_hash":"0404040404040404040404040404040404040404","seeders":4,"leechers":6,"snatches":0},{"info_hash":"0606060606060606060606060606060606060606","seeders":6,"leechers":4,"snatches":0},{"info_hash":"0707070707070707070707070707070707070707","seeders":7,"leechers":3,"snatches":0},{"info_hash":"0808080808080808080808080808080808080808","seeders":8,"leechers":2,"snatches":0},{"info_hash":"0909090909090909090909090909090909090909","seeders":9,"leechers":1,"snatches":0}]}`)
}

func decode(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("%v: %s", err, s)
	}
}

func TestTorrent(t *testing.T) {
	f := newFixture(t, true)
	ih := hash(0xab)
	must(t, f.store.PutSeeder(ih, peer("10.1.1.1")))
	must(t, f.store.PutSeeder(ih, peer("10.1.1.2")))
	must(t, f.store.PutLeecher(ih, peer("10.1.2.1")))
	must(t, f.store.GraduateLeecher(ih, peer("2001:db8:1::1")))
	wantJSON(t, f.do(t, "GET", "/api/v1/torrents/"+strings.ToUpper(ih.String()), readToken, ""), 200,
		`{"info_hash":"abababababababababababababababababababab","seeders":3,"leechers":1,"snatches":1,"ipv4":{"seeders":2,"leechers":1},"ipv6":{"seeders":1,"leechers":0},"groups":[{"name":"10.1.1.0/24","family":"ipv4","seeders":2,"leechers":0},{"name":"10.1.2.0/24","family":"ipv4","seeders":0,"leechers":1},{"name":"2001:db8:1::/64","family":"ipv6","seeders":1,"leechers":0}]}`)
	wantJSON(t, f.do(t, "GET", "/api/v1/torrents/"+hash(0xcd).String(), readToken, ""), 404,
		`{"error":"no such torrent: the tracker has no peers or snatches for it"}`)
	for _, bad := range []string{"abab", strings.Repeat("g", 40), strings.Repeat("ab", 21), "%00"} {
		wantJSON(t, f.do(t, "GET", "/api/v1/torrents/"+bad, readToken, ""), 400, `{"error":"malformed info hash: want 40 hex digits"}`)
	}
}

func TestTorrentWithoutLocality(t *testing.T) {
	f := newFixture(t, false)
	must(t, f.store.PutSeeder(hash(1), peer("10.1.1.1")))
	wantJSON(t, f.do(t, "GET", "/api/v1/torrents/"+hash(1).String(), adminToken, ""), 200,
		`{"info_hash":"0101010101010101010101010101010101010101","seeders":1,"leechers":0,"snatches":0,"ipv4":{"seeders":1,"leechers":0},"ipv6":{"seeders":0,"leechers":0}}`)
}

func TestApproval(t *testing.T) {
	f := newFixture(t, false)
	ih := hash(0x42)
	path := "/api/v1/approval/torrents/" + ih.String()
	wantJSON(t, f.do(t, "PUT", path, readToken, ""), 403, `{"error":"this token may only read: changing the approval list needs an admin token"}`)
	wantJSON(t, f.do(t, "PUT", path, adminToken, ""), 200,
		`{"info_hash":"4242424242424242424242424242424242424242","list":"whitelist","listed":true,"changed":true,"file":"`+f.listPath+`"}`)
	wantJSON(t, f.do(t, "PUT", path, adminToken, ""), 200,
		`{"info_hash":"4242424242424242424242424242424242424242","list":"whitelist","listed":true,"changed":false,"file":"`+f.listPath+`"}`)
	b, _ := os.ReadFile(f.listPath)
	if string(b) != "# approved builds\n4242424242424242424242424242424242424242\n" {
		t.Fatalf("list file after PUT: %q", b)
	}
	if err := f.list.HandleAnnounce(context.Background(), &bittorrent.AnnounceRequest{InfoHash: ih}, &bittorrent.AnnounceResponse{}); err != nil {
		t.Fatalf("the hook refuses the approved torrent: %v", err)
	}
	wantJSON(t, f.do(t, "DELETE", path, adminToken, ""), 200,
		`{"info_hash":"4242424242424242424242424242424242424242","list":"whitelist","listed":false,"changed":true,"file":"`+f.listPath+`"}`)
	if b, _ := os.ReadFile(f.listPath); string(b) != "# approved builds\n" {
		t.Fatalf("list file after DELETE: %q", b)
	}
	wantJSON(t, f.do(t, "PUT", "/api/v1/approval/torrents/42", adminToken, ""), 400, `{"error":"malformed info hash: want 40 hex digits"}`)
	f.noHook = true
	wantJSON(t, f.do(t, "PUT", path, adminToken, ""), 409, `{"error":"no torrent approval hook is running: add one to prehooks to have a list to change"}`)
}

func TestBadRequests(t *testing.T) {
	f := newFixture(t, false)
	ih := hash(7).String()
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		want, allow              string
	}{
		{"POST stats", "POST", "/api/v1/stats", "", 405, `{"error":"method not allowed: use GET"}`, "GET"},
		{"DELETE torrents", "DELETE", "/api/v1/torrents", "", 405, `{"error":"method not allowed: use GET"}`, "GET"},
		{"GET approval", "GET", "/api/v1/approval/torrents/" + ih, "", 405, `{"error":"method not allowed: use PUT or DELETE"}`, "PUT, DELETE"},
		{"POST approval", "POST", "/api/v1/approval/torrents/" + ih, "", 405, `{"error":"method not allowed: use PUT or DELETE"}`, "PUT, DELETE"},
		{"body on PUT", "PUT", "/api/v1/approval/torrents/" + ih, `{"listed":true}`, 400, `{"error":"unexpected request body: this endpoint takes none"}`, ""},
		{"huge body", "PUT", "/api/v1/approval/torrents/" + ih, strings.Repeat("x", 5000), 413, `{"error":"request body too large: this endpoint takes none"}`, ""},
		{"body on GET", "GET", "/api/v1/stats", "x", 400, `{"error":"unexpected request body: this endpoint takes none"}`, ""},
		{"huge limit", "GET", "/api/v1/torrents?limit=1000000", "", 400, `{"error":"limit: must be an integer from 1 to 1000, got \"1000000\""}`, ""},
		{"zero limit", "GET", "/api/v1/torrents?limit=0", "", 400, `{"error":"limit: must be an integer from 1 to 1000, got \"0\""}`, ""},
		{"word limit", "GET", "/api/v1/torrents?limit=ten", "", 400, `{"error":"limit: must be an integer from 1 to 1000, got \"ten\""}`, ""},
		{"long limit", "GET", "/api/v1/torrents?limit=" + strings.Repeat("9", 40), "", 400, `{"error":"limit: must be an integer from 1 to 1000, got \"99999999999999999999999999999999...\""}`, ""},
		{"bad sort", "GET", "/api/v1/torrents?sort=name", "", 400, `{"error":"sort: must be peers, seeders, leechers or snatches, got \"name\""}`, ""},
		{"unknown parameter", "GET", "/api/v1/torrents?page=2", "", 400, `{"error":"unknown parameter \"page\": use sort, limit and cursor"}`, ""},
		{"malformed cursor", "GET", "/api/v1/torrents?cursor=abc", "", 400, `{"error":"cursor: malformed; pass next_cursor as it was returned"}`, ""},
		{"cursor of bad base64", "GET", "/api/v1/torrents?cursor=!!!!!!!!!!!!!!!!!!", "", 400, `{"error":"cursor: malformed; pass next_cursor as it was returned"}`, ""},
		{"cursor with a bad sort", "GET", "/api/v1/torrents?cursor=" + cursor{sort: 9}.String(), "", 400, `{"error":"cursor: malformed; pass next_cursor as it was returned"}`, ""},
		{"unknown cursor", "GET", "/api/v1/torrents?cursor=AAAAAAAAAAAAAAAAAA", "", 400, `{"error":"cursor: expired or unknown: start the walk again without cursor"}`, ""},
		{"cursor of another sort", "GET", "/api/v1/torrents?sort=seeders&cursor=AAAAAAAAAAAAAAAAAA", "", 400, `{"error":"cursor: belongs to a walk with sort=peers"}`, ""},
		{"nested path", "GET", "/api/v1/torrents/" + ih + "/peers", "", 404, `{"error":"no such endpoint; see docs/operator.md"}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := f.do(t, tc.method, tc.path, adminToken, tc.body)
			wantJSON(t, w, tc.code, tc.want)
			if got := w.Header().Get("Allow"); got != tc.allow {
				t.Errorf("Allow %q, want %q", got, tc.allow)
			}
		})
	}
}

func TestCursorExpires(t *testing.T) {
	f := newFixture(t, false)
	for i := 1; i <= 3; i++ {
		must(t, f.store.PutSeeder(hash(byte(i)), peer("10.0.0.1")))
	}
	var rep torrentsReply
	decode(t, f.do(t, "GET", "/api/v1/torrents?limit=1", readToken, "").Body.String(), &rep)
	if rep.NextCursor == "" {
		t.Fatal("no cursor")
	}
	f.clock.add(listingTTL + time.Second)
	wantJSON(t, f.do(t, "GET", "/api/v1/torrents?limit=1&cursor="+rep.NextCursor, readToken, ""), 400,
		`{"error":"cursor: expired or unknown: start the walk again without cursor"}`)
	// Walks beyond maxListings end the least recently used one.
	var cursors []string
	for i := 0; i <= maxListings; i++ {
		decode(t, f.do(t, "GET", "/api/v1/torrents?limit=1", readToken, "").Body.String(), &rep)
		cursors = append(cursors, rep.NextCursor)
		f.clock.add(time.Second)
	}
	if w := f.do(t, "GET", "/api/v1/torrents?limit=1&cursor="+cursors[0], readToken, ""); w.Code != 400 {
		t.Errorf("the oldest walk is still kept: %d", w.Code)
	}
	if w := f.do(t, "GET", "/api/v1/torrents?limit=1&cursor="+cursors[maxListings], readToken, ""); w.Code != 200 {
		t.Errorf("the newest walk is gone: %d", w.Code)
	}
}

func TestRequestsCounted(t *testing.T) {
	f := newFixture(t, false)
	count := func(route, code string) float64 {
		return testutil.ToFloat64(requestsTotal.WithLabelValues(route, code))
	}
	before := [3]float64{count("api_stats", "200"), count("api_torrent", "400"), count("status_home", "200")}
	f.do(t, "GET", "/api/v1/stats", readToken, "")
	f.do(t, "GET", "/api/v1/torrents/xyz", readToken, "")
	f.do(t, "GET", "/status", "", "")
	after := [3]float64{count("api_stats", "200"), count("api_torrent", "400"), count("status_home", "200")}
	for i := range after {
		if after[i]-before[i] != 1 {
			t.Errorf("series %d counted %v times, want 1", i, after[i]-before[i])
		}
	}
}

// A client that announces a body and never sends it gets an error once
// bodyTimeout has passed, instead of holding its request open for ever;
// an approval it asked for is not made.
func TestBodyNeverSent(t *testing.T) {
	f := newFixture(t, false)
	srv := httptest.NewServer(f.srv.Handler())
	defer srv.Close()
	defer func(d time.Duration) { bodyTimeout = d }(bodyTimeout)
	bodyTimeout = 200 * time.Millisecond
	for _, tc := range []struct{ req, want string }{
		{"PUT /api/v1/approval/torrents/" + hash(7).String() + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + adminToken + "\r\nContent-Length: 10\r\n\r\n", "HTTP/1.1 400 "},
		{"GET /api/v1/stats HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + readToken + "\r\nContent-Length: 10\r\n\r\nab", "HTTP/1.1 400 "},
		{"POST /status/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ntoken=", "HTTP/1.1 400 "},
	} {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, tc.req); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if !strings.HasPrefix(line, tc.want) {
			t.Errorf("%s...: answer %q (%v), want %q", tc.req[:24], line, err, tc.want)
		}
	}
	if f.list.Listed(hash(7)) {
		t.Fatal("the approval of a request whose body never came was made")
	}
}

// slowStore is a store whose walks wait for release, counting how many
// run at once.
type slowStore struct {
	downStore
	mu            sync.Mutex
	running, most int
	started       chan struct{}
	release       chan struct{}
}

func (s *slowStore) Walk(ctx context.Context, fn func([]Swarm) error) error {
	s.mu.Lock()
	s.running++
	s.most = max(s.most, s.running)
	s.mu.Unlock()
	s.started <- struct{}{}
	<-s.release
	s.mu.Lock()
	s.running--
	s.mu.Unlock()
	return fn([]Swarm{{InfoHash: hash(1), Seeders: [2]uint32{1, 0}}})
}

// The first pages of walks through the torrents, each a walk of the whole
// store and a copy of every swarm, are taken one at a time: dashboards
// that ask at once do not multiply the memory docs/operator.md states.
func TestTorrentsWalksOneAtATime(t *testing.T) {
	f := newFixture(t, false)
	store := &slowStore{started: make(chan struct{}, 4), release: make(chan struct{})}
	srv, err := New(f.srv.cfg, Options{Store: store, Now: f.clock.now})
	if err != nil {
		t.Fatal(err)
	}
	const n = 3
	codes := make(chan int, n)
	for i := 0; i < n; i++ {
		go func() {
			req := httptest.NewRequest("GET", "/api/v1/torrents", nil)
			req.Header.Set("Authorization", "Bearer "+readToken)
			w := httptest.NewRecorder()
			srv.Handler().ServeHTTP(w, req)
			codes <- w.Code
		}()
	}
	<-store.started
	// The others would have started theirs by now.
	time.Sleep(100 * time.Millisecond)
	close(store.release)
	for i := 0; i < n; i++ {
		if c := <-codes; c != 200 {
			t.Fatalf("a walk answered %d", c)
		}
	}
	if store.most != 1 {
		t.Fatalf("%d walks of the store at once, want 1", store.most)
	}
}
