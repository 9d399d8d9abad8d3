package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/chihaya/chihaya/internal/daemontest"
)

// selector is one series selection of a query: a metric name and the
// label values it must have (equality matchers only; job and instance
// are the scraper's, not the tracker's).
type selector struct {
	name   string
	labels map[string]string
}

func (s selector) String() string {
	var b strings.Builder
	b.WriteString(s.name)
	if len(s.labels) > 0 {
		b.WriteString("{")
		first := true
		for k, v := range s.labels {
			if !first {
				b.WriteString(", ")
			}
			first = false
			b.WriteString(k + `="` + v + `"`)
		}
		b.WriteString("}")
	}
	return b.String()
}

var promqlEqual = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!=|!~|=)\s*"((?:[^"\\]|\\.)*)"`)

// selectors lists the selections of expr, one per metric name (and per
// written set of matchers).
func selectors(expr string) []selector {
	var sels []selector
	for _, name := range metricNames(expr) {
		re := regexp.MustCompile(`(?:^|[^A-Za-z0-9_:])` + regexp.QuoteMeta(name) + `\s*(\{[^}]*\})?`)
		for _, m := range re.FindAllStringSubmatch(expr, -1) {
			sel := selector{name: name, labels: map[string]string{}}
			for _, lm := range promqlEqual.FindAllStringSubmatch(m[1], -1) {
				if lm[2] == "=" && lm[1] != "job" && lm[1] != "instance" {
					sel.labels[lm[1]] = lm[3]
				}
			}
			sels = append(sels, sel)
		}
	}
	return sels
}

// hasSeries reports whether the exposition text has a series of sel.
func hasSeries(text string, sel selector) bool {
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, sel.name)
		if !ok || rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		all := true
		for k, v := range sel.labels {
			if !strings.Contains(rest, k+`="`+v+`"`) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

func TestSelectors(t *testing.T) {
	sels := selectors(`sum(rate(a_total{job=~"$job", result="error"}[5m])) / sum(rate(a_total[5m])) + b_bucket{le="1"}`)
	var got []string
	for _, s := range sels {
		got = append(got, s.String())
	}
	if want := `a_total{result="error"} a_total b_bucket{le="1"}`; strings.Join(got, " ") != want {
		t.Errorf("selectors = %q, want %q", got, want)
	}
	text := "# TYPE a_total counter\na_total{result=\"ok\"} 0\na_total{result=\"error\"} 0\n"
	for _, tc := range []struct {
		sel  selector
		want bool
	}{
		{selector{name: "a_total", labels: map[string]string{"result": "error"}}, true},
		{selector{name: "a_total", labels: map[string]string{"result": "internal"}}, false},
		{selector{name: "a", labels: map[string]string{}}, false},
	} {
		if got := hasSeries(text, tc.sel); got != tc.want {
			t.Errorf("hasSeries(%s) = %v, want %v", tc.sel, got, tc.want)
		}
	}
}

// TestFreshDaemonSeries scrapes a daemon that has served nothing yet:
// every series the Grafana dashboard and the alert rules select must be
// there already, at 0, or increase() misses its first event and a panel
// shows "no data" instead of 0.
func TestFreshDaemonSeries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	text := daemontest.Start(t, distConfig).Metrics(t)
	checked := 0
	for _, artefact := range []struct {
		name    string
		queries func(*testing.T) []query
	}{{"dashboard", dashboardQueries}, {"alert rules", ruleQueries}} {
		for _, q := range artefact.queries(t) {
			for _, sel := range selectors(q.expr) {
				if externalMetrics[sel.name] || !strings.HasPrefix(sel.name, "chihaya_") {
					continue
				}
				checked++
				if !hasSeries(text, sel) {
					t.Errorf("%s: %s selects %s, which a fresh daemon does not export: create its series at registration (WithLabelValues)", artefact.name, q.where, sel)
				}
			}
		}
	}
	if checked == 0 {
		t.Error("checked no selector; the extraction is broken")
	}
}
