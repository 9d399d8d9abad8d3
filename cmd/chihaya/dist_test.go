package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chihaya/chihaya/internal/daemontest"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"go.yaml.in/yaml/v2"
)

// The operator artefacts whose queries must only name metrics the tracker
// exports.
const (
	dashboardPath = "../../dist/grafana/chihaya.json"
	rulesPath     = "../../dist/prometheus/rules.yml"
)

// externalMetrics are the series the artefacts may use that Prometheus
// itself makes, not the tracker.
var externalMetrics = map[string]bool{"up": true}

// refusedHash is blacklisted in distConfig, so that an announce for it
// makes the torrent approval hook refuse, and the refusal metric grows a
// series.
const refusedHash = "3532cf2d327fad8448c075b4cb42c8136964a435"

// distConfig turns on everything that exports a metric: request timing on
// both frontends and a hook that refuses.
const distConfig = `chihaya:
  metrics_addr: "127.0.0.1:0"
  shutdown_timeout: 10s
  http:
    addr: "127.0.0.1:0"
    enable_request_timing: true
  udp:
    addr: "127.0.0.1:0"
    sockets: 1
    enable_request_timing: true
  websocket:
    addr: "127.0.0.1:0"
    enable_request_timing: true
  storage:
    name: memory
    config:
      prometheus_reporting_interval: 1s
  prehooks:
    - name: torrent approval
      options:
        blacklist: ["` + refusedHash + `"]
`

// scrape holds the metric families a running tracker exports, by name,
// with their type, and the raw exposition text.
type scrape struct {
	types map[string]string
	text  string
}

// scrapeDaemon starts the tracker, sends it the requests that make its
// metric vectors grow series, and scrapes /metrics.
func scrapeDaemon(t *testing.T) scrape {
	t.Helper()
	d := daemontest.Start(t, distConfig)
	addrs := d.Addrs()

	udpConnect(t, addrs["udp"])
	announce := func(infoHash string) string {
		t.Helper()
		ih, err := hex.DecodeString(infoHash)
		if err != nil {
			t.Fatal(err)
		}
		q := url.Values{
			"info_hash":  {string(ih)},
			"peer_id":    {"-TR3000-dist12345678"},
			"port":       {"51413"},
			"uploaded":   {"0"},
			"downloaded": {"0"},
			"left":       {"100"},
			"compact":    {"1"},
		}
		_, body := daemontest.Get(t, "http://"+addrs["http"]+"/announce?"+q.Encode())
		return body
	}
	if body := announce(refusedHash); !strings.Contains(body, "failure reason") {
		t.Fatalf("announce of a blacklisted hash = %q, want a failure", body)
	}
	if body := announce("0123456789abcdef0123456789abcdef01234567"); strings.Contains(body, "failure reason") {
		t.Fatalf("announce = %q, want success", body)
	}
	// Without parameters: a client error, counted by reason.
	daemontest.Get(t, "http://"+addrs["http"]+"/announce")

	// The storage gauges are set by the store's reporting loop: scrape
	// until its first report is in, within daemontest.Timeout.
	deadline := time.Now().Add(daemontest.Timeout)
	var body string
	for {
		var status int
		status, body = daemontest.Get(t, "http://"+addrs["metrics"]+"/metrics")
		if status != 200 {
			t.Fatalf("GET /metrics = %d", status)
		}
		if strings.Contains(body, "\nchihaya_storage_peers{") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics has no chihaya_storage_peers series after %s", daemontest.Timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
	s := scrape{types: map[string]string{}, text: body}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		// "# TYPE name type" names every family with at least one series.
		if f := strings.Fields(sc.Text()); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			s.types[f[2]] = f[3]
		}
	}
	if len(s.types) == 0 {
		t.Fatalf("/metrics has no # TYPE line:\n%s", body)
	}
	return s
}

// exports reports whether a query may use name: a family of the scrape,
// or the _bucket, _sum or _count series of a histogram or summary.
func (s scrape) exports(name string) bool {
	if _, ok := s.types[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base := strings.TrimSuffix(name, suffix)
		if base == name {
			continue
		}
		switch s.types[base] {
		case "histogram":
			return true
		case "summary":
			return suffix != "_bucket"
		}
	}
	return false
}

var (
	promqlString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	promqlMatchers = regexp.MustCompile(`\{[^}]*\}`)
	promqlRange    = regexp.MustCompile(`\[[^\]]*\]`)
	promqlGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promqlIdent    = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	promqlKeywords = map[string]bool{
		"and": true, "or": true, "unless": true, "bool": true, "offset": true,
		"by": true, "without": true, "on": true, "ignoring": true,
		"group_left": true, "group_right": true, "inf": true, "nan": true,
	}
)

// metricNames lists the metric names a PromQL expression selects. It is
// not a parser: it removes what cannot hold a metric name (strings, label
// matchers, ranges, grouping labels), then takes the identifiers that are
// neither keywords nor function calls nor parts of a number or duration.
func metricNames(expr string) []string {
	s := promqlString.ReplaceAllString(expr, `""`)
	s = promqlMatchers.ReplaceAllString(s, " ")
	s = promqlRange.ReplaceAllString(s, " ")
	s = promqlGrouping.ReplaceAllString(s, " ")
	seen := map[string]bool{}
	var names []string
	for _, loc := range promqlIdent.FindAllStringIndex(s, -1) {
		id := s[loc[0]:loc[1]]
		if loc[0] > 0 && strings.ContainsRune("0123456789.$", rune(s[loc[0]-1])) {
			continue // 1e-3, 5m, $variable
		}
		if rest := strings.TrimLeft(s[loc[1]:], " \t\n"); strings.HasPrefix(rest, "(") {
			continue // a function
		}
		if promqlKeywords[strings.ToLower(id)] || seen[id] {
			continue
		}
		seen[id] = true
		names = append(names, id)
	}
	sort.Strings(names)
	return names
}

func TestMetricNames(t *testing.T) {
	tests := []struct {
		name, expr string
		want       []string
	}{
		{"plain", `up`, []string{"up"}},
		{"matchers and range", `rate(chihaya_frontend_requests_total{job=~"a.*", result!="ok"}[5m])`, []string{"chihaya_frontend_requests_total"}},
		{"grafana variables", `sum by (frontend) (rate(x_total{instance=~"$instance"}[$__rate_interval]))`, []string{"x_total"}},
		{"quantile of a histogram", `histogram_quantile(0.99, sum by (le) (rate(a_seconds_bucket[5m]))) > 1e-3`, []string{"a_seconds_bucket"}},
		{"binary operators", "a / on (job) group_left b\n  or\nc * 0 unless d offset 5m", []string{"a", "b", "c", "d"}},
		{"comparison with bool", `a > bool 0.5`, []string{"a"}},
		{"label_values query", variableQuery(`label_values(chihaya_frontend_requests_total{job=~"$job"}, instance)`), []string{"chihaya_frontend_requests_total"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := metricNames(tt.expr); strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("metricNames(%q) = %v, want %v", tt.expr, got, tt.want)
			}
		})
	}
}

// query is one PromQL expression of an artefact, with where it is.
type query struct{ where, expr string }

// rulesFile is the Prometheus rule file format, decoded strictly so that a
// misspelled field is an error.
type rulesFile struct {
	Groups []struct {
		Name     string `yaml:"name"`
		Interval string `yaml:"interval"`
		Rules    []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// ruleQueries reads the rules file, checks what every alert needs to be
// routed and understood, and returns its expressions.
func ruleQueries(t *testing.T) []query {
	t.Helper()
	b, err := os.ReadFile(rulesPath)
	if err != nil {
		t.Fatal(err)
	}
	var f rulesFile
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		t.Fatalf("%s: %v", rulesPath, err)
	}
	var qs []query
	alerts := map[string]bool{}
	for _, g := range f.Groups {
		if g.Name == "" {
			t.Errorf("%s: a group has no name", rulesPath)
		}
		for i, r := range g.Rules {
			where := fmt.Sprintf("%s: group %s rule %d (%s%s)", rulesPath, g.Name, i, r.Alert, r.Record)
			if strings.TrimSpace(r.Expr) == "" {
				t.Errorf("%s: no expr", where)
			}
			qs = append(qs, query{where, r.Expr})
			if r.Record != "" {
				continue
			}
			if !strings.HasPrefix(r.Alert, "Chihaya") || alerts[r.Alert] {
				t.Errorf("%s: alert names start with Chihaya and are unique", where)
			}
			alerts[r.Alert] = true
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: labels.severity = %q, want critical or warning", where, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: needs annotations summary and description", where)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for: %v", where, err)
				}
			}
		}
	}
	for _, want := range []string{"ChihayaDown", "ChihayaInternalErrors", "ChihayaHighLatency", "ChihayaStorageErrors", "ChihayaNoAnnounces"} {
		if !alerts[want] {
			t.Errorf("%s: no alert %s", rulesPath, want)
		}
	}
	return qs
}

// dashboardQueries reads the dashboard, checks its structure, and returns
// every expression of its panels and template variables.
func dashboardQueries(t *testing.T) []query {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	type target struct {
		Expr       string `json:"expr"`
		RefID      string `json:"refId"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	}
	type panel struct {
		ID      int      `json:"id"`
		Type    string   `json:"type"`
		Title   string   `json:"title"`
		Targets []target `json:"targets"`
		GridPos struct {
			X, Y, W, H int
		} `json:"gridPos"`
	}
	var d struct {
		UID        string  `json:"uid"`
		Title      string  `json:"title"`
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("%s: needs a uid and a title", dashboardPath)
	}
	var qs []query
	ids := map[int]bool{}
	for _, p := range d.Panels {
		where := fmt.Sprintf("%s: panel %d %q", dashboardPath, p.ID, p.Title)
		if ids[p.ID] {
			t.Errorf("%s: id used twice", where)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("%s: gridPos %+v outside the 24 columns", where, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no queries", where)
		}
		for _, tg := range p.Targets {
			// The data source is the dashboard's variable, so that the
			// dashboard imports into any Grafana.
			if tg.Datasource.UID != "${datasource}" {
				t.Errorf("%s: query %s uses data source %q, want ${datasource}", where, tg.RefID, tg.Datasource.UID)
			}
			qs = append(qs, query{where + " query " + tg.RefID, tg.Expr})
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Errorf("%s: variable %s: %v", dashboardPath, v.Name, err)
		}
		qs = append(qs, query{dashboardPath + ": variable " + v.Name, variableQuery(q.Query)})
	}
	return qs
}

// variableQuery returns the PromQL of a Grafana variable query:
// label_values(SELECTOR, LABEL) selects with SELECTOR.
func variableQuery(q string) string {
	q = strings.TrimSpace(q)
	if inner, ok := strings.CutPrefix(q, "label_values("); ok {
		if i := strings.LastIndex(inner, ","); i >= 0 {
			return inner[:i]
		}
		return strings.TrimSuffix(inner, ")")
	}
	return q
}

// TestDistMetrics starts the tracker, scrapes it, lints what it exports,
// and checks that the Grafana dashboard and the alert rules only use
// metrics it exports.
func TestDistMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	s := scrapeDaemon(t)

	t.Run("promlint", func(t *testing.T) {
		problems, err := promlint.New(strings.NewReader(s.text)).Lint()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	})

	for _, artefact := range []struct {
		name    string
		queries func(*testing.T) []query
	}{
		{"dashboard", dashboardQueries},
		{"alert rules", ruleQueries},
	} {
		t.Run(artefact.name, func(t *testing.T) {
			qs := artefact.queries(t)
			used := 0
			for _, q := range qs {
				for _, name := range metricNames(q.expr) {
					used++
					switch {
					case externalMetrics[name], s.exports(name):
					case strings.HasPrefix(name, "chihaya_") && registered(name):
						// A vector with no series until its event happens
						// (a storage error with the memory store never
						// does); the probe shows the tracker registers it.
						t.Logf("%s: %s is registered but has no series in this run", q.where, name)
					default:
						t.Errorf("%s: uses %s, which the tracker does not export", q.where, name)
					}
				}
			}
			if used == 0 {
				t.Errorf("found no metric in %d queries; the extraction is broken", len(qs))
			}
		})
	}
}
