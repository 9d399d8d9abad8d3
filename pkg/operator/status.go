package operator

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The status page: server-rendered HTML, inline CSS and SVG, no script
// and no external asset, refreshing itself.

// maxFormBody bounds the sign-in and other forms.
const maxFormBody = 4 << 10

func statusRoute(r *http.Request) string {
	p := strings.TrimPrefix(r.URL.Path, "/status")
	switch {
	case p == "" || p == "/":
		return "status_home"
	case p == "/login":
		return "status_login"
	case p == "/logout":
		return "status_logout"
	case strings.HasPrefix(p, "/torrents/"):
		rest := p[len("/torrents/"):]
		if h, ok := strings.CutSuffix(rest, "/approval"); ok && !strings.Contains(h, "/") {
			return "status_approval"
		}
		if !strings.Contains(rest, "/") {
			return "status_torrent"
		}
	}
	return "status_other"
}

func (s *Server) serveStatus(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	route := statusRoute(r)
	post := route == "status_login" || route == "status_logout" || route == "status_approval"
	switch {
	case route == "status_other":
		s.page(w, http.StatusNotFound, "Not found", nil, pageData{Message: "There is no such page."})
		return
	case post && r.Method != http.MethodPost:
		w.Header().Set("Allow", http.MethodPost)
		s.page(w, http.StatusMethodNotAllowed, "Method not allowed", nil, pageData{Message: "This address takes a form (POST)."})
		return
	case !post && r.Method != http.MethodGet && r.Method != http.MethodHead:
		w.Header().Set("Allow", http.MethodGet)
		s.page(w, http.StatusMethodNotAllowed, "Method not allowed", nil, pageData{Message: "This address is a page (GET)."})
		return
	}
	if post {
		bodyDeadline(w)
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
		if err := r.ParseForm(); err != nil {
			code := http.StatusBadRequest
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				code = http.StatusRequestEntityTooLarge
			}
			s.page(w, code, "Bad form", nil, pageData{Message: "The form could not be read."})
			return
		}
	}
	if route == "status_login" {
		s.serveLogin(w, r)
		return
	}
	sess := s.sessions.get(r, s.tokens)
	if sess == nil {
		if route == "status_home" {
			s.page(w, http.StatusOK, "Sign in", nil, pageData{SignIn: true})
			return
		}
		s.page(w, http.StatusUnauthorized, "Sign in", nil, pageData{SignIn: true, Message: "Sign in to see this page."})
		return
	}
	if post && !sess.checkCSRF(r) {
		s.page(w, http.StatusForbidden, "Forbidden", sess, pageData{Message: "The form is stale or did not come from this page; reload it and try again."})
		return
	}
	switch route {
	case "status_logout":
		s.sessions.end(sess)
		setSessionCookie(w, r, "", -1)
		http.Redirect(w, r, "/status", http.StatusSeeOther)
	case "status_home":
		s.serveHome(w, r, sess)
	case "status_torrent":
		s.serveSwarm(w, r, sess, strings.TrimPrefix(r.URL.Path, "/status/torrents/"))
	case "status_approval":
		s.serveSwarmApproval(w, r, sess, strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/status/torrents/"), "/approval"))
	}
}

func (s *Server) serveLogin(w http.ResponseWriter, r *http.Request) {
	addr := clientAddr(r)
	if wait := s.limiter.wait(addr); wait > 0 {
		secs := int((wait + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		s.page(w, http.StatusTooManyRequests, "Sign in", nil, pageData{SignIn: true, Message: fmt.Sprintf("Too many failed sign-ins from this address; try again in %d s.", secs)})
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	if token == "" {
		s.page(w, http.StatusBadRequest, "Sign in", nil, pageData{SignIn: true, Message: "Enter a token."})
		return
	}
	role := s.tokens.Role(token)
	if role == NoRole {
		s.limiter.failed(addr)
		s.page(w, http.StatusUnauthorized, "Sign in", nil, pageData{SignIn: true, Message: "That token is not valid."})
		return
	}
	s.limiter.succeeded(addr)
	sess := s.sessions.create(role, token)
	setSessionCookie(w, r, sess.id, int(sessionTTL/time.Second))
	http.Redirect(w, r, "/status", http.StatusSeeOther)
}

// pageData is what the page template shows.
type pageData struct {
	Title   string
	Refresh int
	Session *session
	Message string
	SignIn  bool

	Home  *homeData
	Swarm *swarmData
}

type homeData struct {
	Stats      statsReply
	Top        []topRow
	Followed   int
	HistoryMB  string
	WalkTook   string
	LastWalkAt string
}

type topRow struct {
	Hash                        string
	Peers                       uint64
	Seeders, Leechers, Snatches uint32
}

type swarmData struct {
	Detail    torrentDetail
	Known     bool
	HourChart template.HTML
	DayChart  template.HTML
	Followed  bool
	List      string // the approval list's name, "" without one
	Listed    bool
	Admin     bool
}

func (s *Server) refresh() int { return max(5, min(30, int(s.cfg.HistoryInterval/time.Second))) }

func (s *Server) serveHome(w http.ResponseWriter, r *http.Request, sess *session) {
	st, err := s.stats(r)
	if err != nil {
		s.page(w, http.StatusInternalServerError, "Error", sess, pageData{Message: "The store could not be read; see the tracker's log."})
		return
	}
	t := s.hist.current(r.Context(), s.cfg.HistoryInterval)
	hd := &homeData{
		Stats:      st,
		Followed:   s.hist.followedCount(),
		HistoryMB:  fmt.Sprintf("%.1f", float64(HistoryBytes(s.cfg.HistoryInterval))/1e6),
		WalkTook:   t.walkTook.Round(time.Millisecond).String(),
		LastWalkAt: t.at.UTC().Format("15:04:05 MST"),
	}
	for i, sw := range t.top {
		if i == topShown {
			break
		}
		hd.Top = append(hd.Top, topRow{Hash: hex.EncodeToString(sw.InfoHash[:]), Peers: sw.Peers(), Seeders: sw.Seeders[0] + sw.Seeders[1], Leechers: sw.Leechers[0] + sw.Leechers[1], Snatches: sw.Downloads})
	}
	s.page(w, http.StatusOK, "Tracker status", sess, pageData{Refresh: s.refresh(), Home: hd})
}

func (s *Server) serveSwarm(w http.ResponseWriter, r *http.Request, sess *session, hexHash string) {
	ih, ok := parseInfoHash(hexHash)
	if !ok {
		s.page(w, http.StatusBadRequest, "Bad info hash", sess, pageData{Message: "An info hash is 40 hex digits."})
		return
	}
	d, known, err := s.detail(ih)
	if err != nil {
		s.page(w, http.StatusInternalServerError, "Error", sess, pageData{Message: "The store could not be read; see the tracker's log."})
		return
	}
	sd := &swarmData{Detail: d, Known: known, Admin: sess.role >= Admin}
	hour, day, followed := s.hist.series(ih)
	if known {
		// Someone looks at it: keep its history from now on.
		s.hist.follow(ih)
	}
	sd.Followed = followed
	now := s.now()
	sd.HourChart = chart(hour, now.Add(-time.Hour), now, "last hour")
	sd.DayChart = chart(day, now.Add(-24*time.Hour), now, "last day")
	if list := s.approval(); list != nil {
		sd.List, sd.Listed = list.ListName(), list.Listed(ih)
	}
	code := http.StatusOK
	if !known && !followed {
		code = http.StatusNotFound
	}
	s.page(w, code, "Swarm "+d.InfoHash[:8], sess, pageData{Refresh: s.refresh(), Swarm: sd})
}

func (s *Server) serveSwarmApproval(w http.ResponseWriter, r *http.Request, sess *session, hexHash string) {
	ih, ok := parseInfoHash(hexHash)
	if !ok {
		s.page(w, http.StatusBadRequest, "Bad info hash", sess, pageData{Message: "An info hash is 40 hex digits."})
		return
	}
	if sess.role < Admin {
		s.page(w, http.StatusForbidden, "Forbidden", sess, pageData{Message: "Changing the approval list needs an admin token."})
		return
	}
	listed := r.PostFormValue("listed") == "true"
	rep, code, err := s.setListed(ih, listed)
	switch {
	case code == http.StatusInternalServerError:
		s.logInternal("status approval", err)
		s.page(w, code, "Error", sess, pageData{Message: "The list could not be changed; see the tracker's log."})
	case err != nil:
		s.page(w, code, "Conflict", sess, pageData{Message: err.Error()})
	default:
		logApproval(rep)
		http.Redirect(w, r, "/status/torrents/"+rep.InfoHash, http.StatusSeeOther)
	}
}

// page renders the page template with status code.
func (s *Server) page(w http.ResponseWriter, code int, title string, sess *session, d pageData) {
	d.Title, d.Session = title, sess
	var b bytes.Buffer
	if err := pageTemplate.Execute(&b, d); err != nil {
		s.logInternal("status page", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(b.Bytes())
}

// chart draws points between from and to as an inline SVG line chart of
// seeders, leechers and snatches, each point a circle.
func chart(pts []point, from, to time.Time, label string) template.HTML {
	const W, H, left, bottom = 600.0, 200.0, 40.0, 20.0
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %g %g" role="img" aria-label="seeders, leechers and snatches over the %s">`, W, H+bottom, label)
	top := uint32(1)
	for _, p := range pts {
		top = max(top, p.seeders, p.leechers, p.snatches)
	}
	// The chart starts at its first point when the history is younger
	// than the window, so that a rollout of minutes is not a sliver at
	// the right edge of an hour.
	if len(pts) > 0 {
		if first := time.Unix(pts[0].unix, 0); first.After(from) {
			from = first
		}
	}
	if to.Sub(from) < 10*time.Second {
		from = to.Add(-10 * time.Second)
	}
	clockFormat := "15:04"
	if to.Sub(from) < time.Hour {
		clockFormat = "15:04:05"
	}
	span := to.Sub(from).Seconds()
	x := func(unix int64) float64 {
		f := (float64(unix) - float64(from.Unix())) / span
		return left + max(0, min(1, f))*(W-left-5)
	}
	y := func(v uint32) float64 { return 5 + (H-5)*(1-float64(v)/float64(top)) }
	fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" class="axis"/>`, left, H, W-5, H)
	fmt.Fprintf(&b, `<line x1="%g" y1="5" x2="%g" y2="%g" class="axis"/>`, left, left, H)
	fmt.Fprintf(&b, `<text x="%g" y="12" class="lbl" text-anchor="end">%d</text>`, left-4, top)
	fmt.Fprintf(&b, `<text x="%g" y="%g" class="lbl" text-anchor="end">0</text>`, left-4, H)
	fmt.Fprintf(&b, `<text x="%g" y="%g" class="lbl">%s</text>`, left, H+16, from.UTC().Format(clockFormat))
	fmt.Fprintf(&b, `<text x="%g" y="%g" class="lbl" text-anchor="end">%s UTC</text>`, W-5, H+16, to.UTC().Format(clockFormat))
	if len(pts) == 0 {
		fmt.Fprintf(&b, `<text x="%g" y="%g" class="lbl" text-anchor="middle">no samples yet</text>`, (W+left)/2, H/2)
	}
	for _, series := range []struct {
		class string
		v     func(point) uint32
	}{
		{"seeders", func(p point) uint32 { return p.seeders }},
		{"leechers", func(p point) uint32 { return p.leechers }},
		{"snatches", func(p point) uint32 { return p.snatches }},
	} {
		if len(pts) > 1 {
			fmt.Fprintf(&b, `<polyline class="%s" points="`, series.class)
			for i, p := range pts {
				if i > 0 {
					b.WriteByte(' ')
				}
				fmt.Fprintf(&b, "%.1f,%.1f", x(p.unix), y(series.v(p)))
			}
			b.WriteString(`"/>`)
		}
		for _, p := range pts {
			fmt.Fprintf(&b, `<circle class="%s pt" cx="%.1f" cy="%.1f" r="2.5"><title>%s %s: %d</title></circle>`,
				series.class, x(p.unix), y(series.v(p)), time.Unix(p.unix, 0).UTC().Format("15:04:05"), series.class, series.v(p))
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built from numbers and fixed names only
}

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{{if .Refresh}}<meta http-equiv="refresh" content="{{.Refresh}}">{{end}}
<title>{{.Title}} · chihaya</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:60rem;padding:0.75rem;color:#1d2733;background:#fafbfc;line-height:1.4}
header{display:flex;flex-wrap:wrap;align-items:center;justify-content:space-between;gap:0.5rem;border-bottom:1px solid #d0d7de;margin-bottom:1rem}
header a{color:inherit;text-decoration:none;font-weight:600}
h1{font-size:1.3rem;margin:0.5rem 0}h2{font-size:1.1rem;margin:1.2rem 0 0.5rem}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(9rem,1fr));gap:0.5rem}
.card{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:0.5rem 0.75rem}
.card b{display:block;font-size:1.4rem}.card span{color:#57606a;font-size:0.85rem}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:right;padding:0.3rem 0.5rem;border-bottom:1px solid #eaeef2;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
.hash{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:0.85rem;word-break:break-all;white-space:normal}
.msg{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:0.5rem 0.75rem}
.muted{color:#57606a;font-size:0.85rem}
form.inline{display:inline}button{font:inherit;padding:0.3rem 0.8rem;border-radius:6px;border:1px solid #8c959f;background:#f6f8fa}
input[type=password]{font:inherit;padding:0.4rem;width:100%;max-width:24rem;box-sizing:border-box}
svg.chart{width:100%;height:auto;background:#fff;border:1px solid #d0d7de;border-radius:6px}
.axis{stroke:#8c959f;stroke-width:1}.lbl{font-size:11px;fill:#57606a}
polyline{fill:none;stroke-width:2}
.seeders{stroke:#1a7f37;fill:#1a7f37}.leechers{stroke:#cf222e;fill:#cf222e}.snatches{stroke:#0969da;fill:#0969da}
polyline.seeders,polyline.leechers,polyline.snatches{fill:none}
.key span{display:inline-block;margin-right:1rem}.key i{display:inline-block;width:0.8rem;height:0.8rem;border-radius:2px;margin-right:0.3rem;vertical-align:middle}
</style></head><body>
<header><a href="/status">chihaya status</a>
{{with .Session}}<form class="inline" method="post" action="/status/logout"><input type="hidden" name="csrf" value="{{.CSRF}}"><button type="submit">Sign out</button></form>{{end}}
</header>
<h1>{{.Title}}</h1>
{{with .Message}}<p class="msg" role="alert">{{.}}</p>{{end}}
{{if .SignIn}}
<form method="post" action="/status/login">
<p><label for="token">API token (read or admin)</label><br>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus></p>
<p><button type="submit">Sign in</button></p>
</form>
{{end}}
{{with .Home}}
<section id="totals"><h2>Totals</h2><div class="cards">
<div class="card"><b id="total-swarms">{{.Stats.Swarms}}</b><span>swarms</span></div>
<div class="card"><b id="total-seeders">{{.Stats.Seeders}}</b><span>seeders</span></div>
<div class="card"><b id="total-leechers">{{.Stats.Leechers}}</b><span>leechers</span></div>
<div class="card"><b id="total-snatches">{{.Stats.Snatches}}</b><span>snatches</span></div>
<div class="card"><b>{{.Stats.AnnouncesPerSecond}}</b><span>announces/s (last minute)</span></div>
<div class="card"><b>{{.Stats.ScrapesPerSecond}}</b><span>scrapes/s (last minute)</span></div>
</div>
<div class="scroll"><table><tr><th>family</th><th>swarms</th><th>seeders</th><th>leechers</th></tr>
<tr><td>IPv4</td><td>{{.Stats.IPv4.Swarms}}</td><td>{{.Stats.IPv4.Seeders}}</td><td>{{.Stats.IPv4.Leechers}}</td></tr>
<tr><td>IPv6</td><td>{{.Stats.IPv6.Swarms}}</td><td>{{.Stats.IPv6.Seeders}}</td><td>{{.Stats.IPv6.Leechers}}</td></tr></table></div>
<p class="muted">Version {{.Stats.Version}}, up {{.Stats.UptimeSeconds}} s. Last walk of the store at {{.LastWalkAt}} took {{.WalkTook}}. History kept for {{.Followed}} swarms (at most 1000, {{.HistoryMB}} MB).</p>
</section>
<section id="top"><h2>Top swarms</h2>
{{if .Top}}<div class="scroll"><table><tr><th>info hash</th><th>peers</th><th>seeders</th><th>leechers</th><th>snatches</th></tr>
{{range .Top}}<tr class="swarm"><td class="hash"><a href="/status/torrents/{{.Hash}}">{{.Hash}}</a></td><td>{{.Peers}}</td><td>{{.Seeders}}</td><td>{{.Leechers}}</td><td>{{.Snatches}}</td></tr>
{{end}}</table></div>{{else}}<p>No swarms yet.</p>{{end}}
</section>
{{end}}
{{with .Swarm}}
<p class="hash" id="info-hash">{{.Detail.InfoHash}}</p>
{{if not .Known}}<p class="msg">The tracker has no peers for this torrent now.</p>{{end}}
<div class="cards">
<div class="card"><b id="swarm-seeders">{{.Detail.Seeders}}</b><span>seeders (IPv4 {{.Detail.IPv4.Seeders}}, IPv6 {{.Detail.IPv6.Seeders}})</span></div>
<div class="card"><b id="swarm-leechers">{{.Detail.Leechers}}</b><span>leechers (IPv4 {{.Detail.IPv4.Leechers}}, IPv6 {{.Detail.IPv6.Leechers}})</span></div>
<div class="card"><b id="swarm-snatches">{{.Detail.Snatches}}</b><span>snatches</span></div>
</div>
<p class="key"><span><i class="seeders" style="background:#1a7f37"></i>seeders</span><span><i style="background:#cf222e"></i>leechers</span><span><i style="background:#0969da"></i>snatches</span></p>
<h2>Last hour</h2>{{.HourChart}}
<h2>Last day</h2>{{.DayChart}}
{{if not .Followed}}<p class="muted">History is kept for at most 1000 swarms at a time: the largest, the recently changed, and those looked at.{{if .Known}} This one is followed from now on.{{end}}</p>{{end}}
{{if .Detail.Groups}}<h2>Groups</h2><div class="scroll"><table id="groups"><tr><th>group</th><th>family</th><th>seeders</th><th>leechers</th></tr>
{{range .Detail.Groups}}<tr><td>{{.Name}}</td><td>{{.Family}}</td><td>{{.Seeders}}</td><td>{{.Leechers}}</td></tr>{{end}}</table></div>{{end}}
{{if .List}}<h2>Approval</h2><p>{{if .Listed}}On the {{.List}}.{{else}}Not on the {{.List}}.{{end}}</p>
{{if .Admin}}<form method="post" action="/status/torrents/{{.Detail.InfoHash}}/approval"><input type="hidden" name="csrf" value="{{$.Session.CSRF}}">
<input type="hidden" name="listed" value="{{if .Listed}}false{{else}}true{{end}}"><button type="submit">{{if .Listed}}Remove from the {{.List}}{{else}}Add to the {{.List}}{{end}}</button></form>{{end}}{{end}}
{{end}}
</body></html>
`))
