package operator

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// signIn posts the sign-in form and returns the session cookie.
func (f *fixture) signIn(t *testing.T, token string) *http.Cookie {
	t.Helper()
	w := f.form(t, "/status/login", nil, url.Values{"token": {token}})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/status" {
		t.Fatalf("sign-in: %d %s", w.Code, w.Body)
	}
	for _, c := range w.Result().Cookies() {
		if c.Name == sessionCookie {
			return c
		}
	}
	t.Fatal("sign-in set no session cookie")
	return nil
}

func (f *fixture) form(t *testing.T, path string, c *http.Cookie, v url.Values) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("POST", path, strings.NewReader(v.Encode()))
	req.RemoteAddr = "192.0.2.7:1234"
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c != nil {
		req.AddCookie(c)
	}
	w := httptest.NewRecorder()
	f.srv.Handler().ServeHTTP(w, req)
	return w
}

func (f *fixture) page(t *testing.T, path string, c *http.Cookie) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	req.RemoteAddr = "192.0.2.7:1234"
	if c != nil {
		req.AddCookie(c)
	}
	w := httptest.NewRecorder()
	f.srv.Handler().ServeHTTP(w, req)
	return w
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func TestStatusSignIn(t *testing.T) {
	f := newFixture(t, false)
	w := f.page(t, "/status", nil)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `<form method="post" action="/status/login">`) {
		t.Fatalf("front page without a session: %d, no sign-in form:\n%s", w.Code, w.Body)
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	// A swarm's page needs a session.
	if w := f.page(t, "/status/torrents/"+hash(1).String(), nil); w.Code != 401 {
		t.Errorf("swarm page without a session: %d", w.Code)
	}
	// A wrong token: 401, then the address waits.
	if w := f.form(t, "/status/login", nil, url.Values{"token": {"not-a-token-at-all-xyz"}}); w.Code != 401 || !strings.Contains(w.Body.String(), "That token is not valid.") {
		t.Fatalf("wrong token: %d %s", w.Code, w.Body)
	}
	if w := f.form(t, "/status/login", nil, url.Values{"token": {readToken}}); w.Code != 429 || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("right token right after a wrong one: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	f.clock.add(time.Second)
	if w := f.form(t, "/status/login", nil, url.Values{}); w.Code != 400 {
		t.Fatalf("no token: %d", w.Code)
	}
	if w := f.form(t, "/status/login", nil, url.Values{"token": {strings.Repeat("x", 5000)}}); w.Code != 413 {
		t.Fatalf("oversized form: %d", w.Code)
	}
	if w := f.page(t, "/status/login", nil); w.Code != 405 || w.Header().Get("Allow") != "POST" {
		t.Fatalf("GET of the sign-in form's target: %d Allow %q", w.Code, w.Header().Get("Allow"))
	}
	c := f.signIn(t, readToken)
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/status" || len(c.Value) != 43 {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/status, 32 random bytes", c)
	}
	if strings.Contains(c.Value, readToken) {
		t.Fatal("the cookie carries the token")
	}
	// Signing out needs the form's CSRF token.
	w = f.page(t, "/status", c)
	m := csrfField.FindStringSubmatch(w.Body.String())
	if m == nil {
		t.Fatalf("no CSRF token in the front page:\n%s", w.Body)
	}
	if w := f.form(t, "/status/logout", c, url.Values{"csrf": {"forged"}}); w.Code != 403 {
		t.Fatalf("sign-out with a forged CSRF token: %d", w.Code)
	}
	if w := f.form(t, "/status/logout", c, url.Values{"csrf": {m[1]}}); w.Code != 303 {
		t.Fatalf("sign-out: %d", w.Code)
	}
	if w := f.page(t, "/status/torrents/"+hash(1).String(), c); w.Code != 401 {
		t.Fatalf("the session outlived the sign-out: %d", w.Code)
	}
}

func TestStatusPages(t *testing.T) {
	f := newFixture(t, true)
	ih := hash(0x5a)
	must(t, f.store.PutSeeder(ih, peer("10.1.1.1")))
	for i := 0; i < 3; i++ {
		must(t, f.store.PutLeecher(ih, peer("10.1.2."+string(rune('1'+i)))))
	}
	must(t, f.store.PutSeeder(hash(0x11), peer("10.1.1.9")))
	// Three walks a minute apart, the leechers finishing in between.
	f.srv.hist.walk(t.Context())
	f.clock.add(time.Minute)
	must(t, f.store.GraduateLeecher(ih, peer("10.1.2.1")))
	f.srv.hist.walk(t.Context())
	f.clock.add(time.Minute)
	must(t, f.store.GraduateLeecher(ih, peer("10.1.2.2")))
	f.srv.hist.walk(t.Context())

	c := f.signIn(t, adminToken)
	w := f.page(t, "/status", c)
	body := w.Body.String()
	for _, want := range []string{
		`<b id="total-swarms">2</b>`, `<b id="total-seeders">4</b>`, `<b id="total-leechers">1</b>`, `<b id="total-snatches">2</b>`,
		`<a href="/status/torrents/` + ih.String() + `">`, `<meta http-equiv="refresh"`, `name="viewport"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("front page lacks %s", want)
		}
	}
	if strings.Contains(body, "http://") || strings.Contains(body, "https://") || strings.Contains(body, "<script") {
		t.Error("the page refers to something outside itself or runs script")
	}
	// The largest swarm comes first.
	if i, j := strings.Index(body, ih.String()), strings.Index(body, hash(0x11).String()); i < 0 || j < 0 || i > j {
		t.Errorf("top swarms out of order")
	}

	w = f.page(t, "/status/torrents/"+ih.String(), c)
	body = w.Body.String()
	if w.Code != 200 {
		t.Fatalf("swarm page: %d", w.Code)
	}
	charts := strings.Count(body, `<svg class="chart"`)
	points := strings.Count(body, `<circle class="seeders pt"`)
	if charts != 2 || points != 3+1 { // three in the hour, one in the day
		t.Errorf("%d charts with %d seeder points, want 2 charts with 4", charts, points)
	}
	for _, want := range []string{`<b id="swarm-seeders">3</b>`, `<b id="swarm-leechers">1</b>`, `<b id="swarm-snatches">2</b>`, `<td>10.1.1.0/24</td>`, `<td>10.1.2.0/24</td>`, `Not on the whitelist.`, `Add to the whitelist`} {
		if !strings.Contains(body, want) {
			t.Errorf("swarm page lacks %s", want)
		}
	}
	// Approving from the page, with the CSRF token, changes the list.
	m := csrfField.FindStringSubmatch(body)
	if w := f.form(t, "/status/torrents/"+ih.String()+"/approval", c, url.Values{"listed": {"true"}}); w.Code != 403 {
		t.Fatalf("approval without CSRF token: %d", w.Code)
	}
	if w := f.form(t, "/status/torrents/"+ih.String()+"/approval", c, url.Values{"csrf": {m[1]}, "listed": {"true"}}); w.Code != 303 {
		t.Fatalf("approval: %d %s", w.Code, w.Body)
	}
	if b, _ := os.ReadFile(f.listPath); !strings.Contains(string(b), ih.String()) {
		t.Fatalf("list file after approval from the page: %q", b)
	}
	// A read session may look but not change.
	rc := f.signIn(t, readToken)
	w = f.page(t, "/status/torrents/"+ih.String(), rc)
	if !strings.Contains(w.Body.String(), "On the whitelist.") || strings.Contains(w.Body.String(), "Remove from the whitelist") {
		t.Error("read session: wrong approval section")
	}
	m = csrfField.FindStringSubmatch(w.Body.String())
	if w := f.form(t, "/status/torrents/"+ih.String()+"/approval", rc, url.Values{"csrf": {m[1]}, "listed": {"false"}}); w.Code != 403 {
		t.Fatalf("approval by a read session: %d", w.Code)
	}
	for path, code := range map[string]int{
		"/status/torrents/xyz":                     400,
		"/status/nothing":                          404,
		"/status/torrents/" + hash(0x77).String():  404,
		"/status/torrents/" + ih.String() + "/etc": 404,
	} {
		if w := f.page(t, path, c); w.Code != code {
			t.Errorf("%s: %d, want %d", path, w.Code, code)
		}
	}
}

func TestHistoryBounds(t *testing.T) {
	if got := HistoryBytes(DefaultHistoryInterval); got != 1000*(120+288)*16 {
		t.Errorf("HistoryBytes(30s) = %d", got)
	}
	if got := HistoryBytes(time.Second); got != 1000*(720+288)*16 {
		t.Errorf("HistoryBytes(1s) = %d", got)
	}
	r := newRing(3)
	for i := int64(1); i <= 5; i++ {
		r.add(point{unix: i})
	}
	if pts := r.points(); len(pts) != 3 || pts[0].unix != 3 || pts[2].unix != 5 {
		t.Errorf("ring: %+v", pts)
	}
}

// TestHistoryFollowsActiveSwarms: besides the largest swarms, a small one
// is followed once it changes or appears; an unchanged one is not.
func TestHistoryFollowsActiveSwarms(t *testing.T) {
	f := newFixture(t, false)
	h := f.srv.hist
	for i := 0; i < topFollowed+20; i++ {
		ih := hash(0)
		ih[0], ih[1] = byte(i), byte(i>>8)
		for p := 0; p < 5; p++ {
			must(t, f.store.PutSeeder(ih, peer("10.0."+strconv.Itoa(i)+"."+strconv.Itoa(p))))
		}
	}
	quiet, busy, newcomer := hash(0xa1), hash(0xa2), hash(0xa3)
	must(t, f.store.PutSeeder(quiet, peer("10.9.0.1")))
	must(t, f.store.PutSeeder(busy, peer("10.9.0.2")))
	followed := func(ih [20]byte) bool { _, _, ok := h.series(ih); return ok }

	h.walk(t.Context()) // learns
	if followed(quiet) || followed(busy) || h.followedCount() != topFollowed {
		t.Fatalf("after the first walk: %d followed, small ones %v %v; want only the %d largest", h.followedCount(), followed(quiet), followed(busy), topFollowed)
	}
	f.clock.add(time.Minute)
	must(t, f.store.PutLeecher(busy, peer("10.9.0.3")))
	h.walk(t.Context())
	if !followed(busy) || followed(quiet) {
		t.Fatalf("after a change: busy followed %v, quiet followed %v", followed(busy), followed(quiet))
	}
	f.clock.add(time.Minute)
	must(t, f.store.PutLeecher(newcomer, peer("10.9.0.4")))
	h.walk(t.Context())
	if !followed(newcomer) || followed(quiet) {
		t.Fatalf("after a new swarm: newcomer followed %v, quiet followed %v", followed(newcomer), followed(quiet))
	}
}

// A session is only as good as its token: once a reload of the tokens
// file removes the token, its sessions end; once it lowers the token to
// read, its sessions may no longer change the approval list.
func TestStatusSessionFollowsTokensFile(t *testing.T) {
	f := newFixture(t, false)
	readSess, adminSess := f.signIn(t, readToken), f.signIn(t, adminToken)
	swarm := "/status/torrents/" + hash(1).String()
	w := f.page(t, swarm, adminSess)
	m := csrfField.FindStringSubmatch(w.Body.String())
	if m == nil || !strings.Contains(w.Body.String(), "Add to the whitelist") {
		t.Fatalf("admin's swarm page: %d, no approval form:\n%s", w.Code, w.Body)
	}

	tokens := f.srv.cfg.TokensFile
	if err := os.WriteFile(tokens, []byte(adminToken+" read\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	if w := f.page(t, "/status", readSess); w.Code != 200 || !strings.Contains(w.Body.String(), `action="/status/login"`) {
		t.Fatalf("the session of a removed token: %d, want the sign-in form:\n%s", w.Code, w.Body)
	}
	if w := f.page(t, swarm, readSess); w.Code != 401 {
		t.Fatalf("the session of a removed token on a swarm's page: %d, want 401", w.Code)
	}
	if w := f.page(t, swarm, adminSess); w.Code != 404 || strings.Contains(w.Body.String(), "Add to the whitelist") {
		t.Fatalf("the session of a token lowered to read: %d, still offers the approval form", w.Code)
	}
	if w := f.form(t, swarm+"/approval", adminSess, url.Values{"csrf": {m[1]}, "listed": {"true"}}); w.Code != 403 {
		t.Fatalf("approval by the session of a token lowered to read: %d, want 403", w.Code)
	}
	if f.list.Listed(hash(1)) {
		t.Fatal("the list was changed")
	}
}
