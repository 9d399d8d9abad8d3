package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chihaya/chihaya/frontend/frontendtest"
	"github.com/chihaya/chihaya/internal/configtest"
	"github.com/chihaya/chihaya/internal/daemontest"
	"github.com/chihaya/chihaya/internal/eventually"
)

// The operator API, the approval list it edits and the full scrape,
// against the running daemon, on both storage drivers.

const (
	e2eReadToken  = "e2e-read-token-0123456789"
	e2eAdminToken = "e2e-admin-token-0123456789"
)

// operatorConfig adds to cfg: the API with a tokens file, a whitelist
// file hook, and the full scrape. It returns the whitelist's path.
func operatorConfig(t *testing.T, cfg map[interface{}]interface{}) (list, tokens string) {
	t.Helper()
	tokens = configtest.File(t, "tokens", e2eReadToken+" read\n"+e2eAdminToken+" admin\n")
	list = configtest.File(t, "whitelist", "# approved builds\n")
	c := section(cfg, "chihaya")
	c["api"] = map[interface{}]interface{}{"tokens_file": tokens, "history_interval": "1s"}
	h := section(c, "http")
	h["allow_full_scrape"] = true
	h["full_scrape_interval"] = "2s"
	c["prehooks"] = []interface{}{map[interface{}]interface{}{
		"name":    "torrent approval",
		"options": map[interface{}]interface{}{"whitelist_file": list, "file_check_interval": "1h"},
	}}
	return list, tokens
}

// api sends a request to the daemon's operator API and decodes the JSON.
func api(t *testing.T, d *daemontest.Daemon, method, path, token string) (int, map[string]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+d.Addr(t, "metrics")+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("%s %s: not JSON: %v", method, path, err)
	}
	return resp.StatusCode, v
}

func TestOperatorMemory(t *testing.T) {
	cfg := loopbackConfig(t, "127.0.0.1")
	list, tokens := operatorConfig(t, cfg)
	testOperator(t, start(t, cfg), list, tokens)
}

func TestOperatorRedis(t *testing.T) {
	srv := startRedisServer(t, "redis-server")
	cfg := redisConfig(t, map[interface{}]interface{}{"redis_broker": "redis://" + srv.Addr + "/0"})
	list, tokens := operatorConfig(t, cfg)
	testOperator(t, start(t, cfg), list, tokens)
}

func testOperator(t *testing.T, d *daemontest.Daemon, list, tokens string) {
	base := "http://" + d.Addr(t, "http")
	u := udpTracker(t, d, "127.0.0.1:0")
	build := hash(0x47)
	buildHex := hex.EncodeToString(build[:])
	const refusal = "unapproved torrent: this tracker does not track this info hash"

	// Not approved yet: refused over HTTP and UDP.
	httpRefused(t, httpGet(t, httpAnnounce{infoHash: build, peerID: id("-TR3000-seed"), port: 7001, left: 0}.url(base)), refusal)
	udpRefused(t, u.announce(build, id("-qB4000-x"), 100, 2, 7002, 10, nil), refusal)

	// Approval needs an admin token.
	if code, _ := api(t, d, "PUT", "/api/v1/approval/torrents/"+buildHex, ""); code != 401 {
		t.Fatalf("PUT without a token: %d", code)
	}
	if code, _ := api(t, d, "PUT", "/api/v1/approval/torrents/"+buildHex, e2eReadToken); code != 403 {
		t.Fatalf("PUT with a read token: %d", code)
	}
	code, rep := api(t, d, "PUT", "/api/v1/approval/torrents/"+buildHex, e2eAdminToken)
	if code != 200 || rep["listed"] != true || rep["changed"] != true || rep["file"] != list {
		t.Fatalf("PUT: %d %v", code, rep)
	}
	if b, _ := os.ReadFile(list); string(b) != "# approved builds\n"+buildHex+"\n" {
		t.Fatalf("list file after the approval: %q", b)
	}

	// Now admitted over both: a seeder over HTTP, leechers over UDP and
	// HTTP, one of which completes.
	httpServed(t, httpGet(t, httpAnnounce{infoHash: build, peerID: id("-TR3000-seed"), port: 7001, left: 0, event: "started"}.url(base)))
	udpServed(t, u.announce(build, id("-qB4000-x"), 100, 2, 7002, 10, nil))
	httpServed(t, httpGet(t, httpAnnounce{infoHash: build, peerID: id("-TR3000-l1"), port: 7003, left: 100, event: "started"}.url(base)))
	httpServed(t, httpGet(t, httpAnnounce{infoHash: build, peerID: id("-TR3000-l2"), port: 7004, left: 100, event: "started"}.url(base)))
	// The swarm update runs after the reply (frontend/http's
	// TestReplyIsSentBeforeTheAfterStep), and each of these requests is a
	// new connection served by its own goroutine: a client's next announce
	// may overtake the update of the one before. A real client completes
	// long after it started; here it waits until its start is counted.
	eventually.Holds(t, func() string {
		_, v := api(t, d, "GET", "/api/v1/torrents/"+buildHex, e2eReadToken)
		if v["leechers"] != 3.0 {
			return fmt.Sprintf("detail %v before the completion, want 3 leechers", v)
		}
		return ""
	})
	httpServed(t, httpGet(t, httpAnnounce{infoHash: build, peerID: id("-TR3000-l2"), port: 7004, left: 0, event: "completed"}.url(base)))

	// The API's counts are the swarm's announces: 2 seeders, 2 leechers,
	// 1 snatch, all IPv4.
	want := fmt.Sprintf(`{"info_hash":%q,"ipv4":{"leechers":2,"seeders":2},"ipv6":{"leechers":0,"seeders":0},"leechers":2,"seeders":2,"snatches":1}`, buildHex)
	eventually.Holds(t, func() string {
		_, v := api(t, d, "GET", "/api/v1/torrents/"+buildHex, e2eReadToken)
		if got, _ := json.Marshal(v); string(got) != want {
			return "detail " + string(got) + ", want " + want
		}
		return ""
	})
	eventually.Holds(t, func() string {
		_, v := api(t, d, "GET", "/api/v1/stats", e2eReadToken)
		if v["swarms"] != 1.0 || v["seeders"] != 2.0 || v["leechers"] != 2.0 || v["snatches"] != 1.0 {
			return fmt.Sprintf("stats %v", v)
		}
		return ""
	})
	_, v := api(t, d, "GET", "/api/v1/torrents?sort=snatches&limit=10", e2eReadToken)
	if l, _ := v["torrents"].([]any); len(l) != 1 || l[0].(map[string]any)["info_hash"] != buildHex {
		t.Fatalf("torrents: %v", v)
	}

	// The full scrape, plain and gzipped, has the swarm; one per address
	// per full_scrape_interval (2s).
	checkFiles := func(files map[string]interface{}) {
		f, _ := files[string(build[:])].(map[string]interface{})
		if len(files) != 1 || f["complete"] != int64(2) || f["incomplete"] != int64(2) || f["downloaded"] != int64(1) {
			t.Fatalf("full scrape: %v", files)
		}
	}
	checkFiles(fullScrape(t, base, false))
	r := httpGet(t, base+"/scrape")
	if reason, _ := r["failure reason"].(string); !strings.HasPrefix(reason, "full scrape refused: too soon after the last one from this address; try again in ") {
		t.Fatalf("a second full scrape at once: %v", r)
	}
	time.Sleep(2 * time.Second)
	checkFiles(fullScrape(t, base, true))

	// Removing it refuses it again.
	if code, rep := api(t, d, "DELETE", "/api/v1/approval/torrents/"+buildHex, e2eAdminToken); code != 200 || rep["listed"] != false {
		t.Fatalf("DELETE: %d %v", code, rep)
	}
	udpRefused(t, u.announce(build, id("-qB4000-y"), 100, 2, 7005, 10, nil), refusal)

	// A new tokens file is read on reload; the old tokens go.
	configtest.Rewrite(t, tokens, "e2e-new-token-0123456789 read\n")
	d.Reload(t)
	eventually.Holds(t, func() string {
		if code, _ := api(t, d, "GET", "/api/v1/stats", "e2e-new-token-0123456789"); code != 200 {
			return fmt.Sprintf("new token after reload: %d", code)
		}
		return ""
	})
	if code, _ := api(t, d, "GET", "/api/v1/stats", e2eReadToken); code != 401 {
		t.Fatalf("a removed token after reload: %d", code)
	}
	// A bad file on reload keeps the tokens in use, and the log says why.
	configtest.Rewrite(t, tokens, "e2e-new-token-0123456789 reader\n")
	d.Reload(t)
	line := d.WaitLine(t, "api tokens not reloaded; keeping the tokens in use")
	if !strings.Contains(line.Str("error"), `line 1: role must be read or admin, got "reader"`) {
		t.Fatalf("log line %v", line)
	}
	time.Sleep(1100 * time.Millisecond) // the wrong token above slowed this address down
	if code, _ := api(t, d, "GET", "/api/v1/stats", "e2e-new-token-0123456789"); code != 200 {
		t.Fatalf("the token in use after a bad file: %d", code)
	}
	for _, token := range []string{e2eReadToken, e2eAdminToken, "e2e-new-token-0123456789"} {
		if strings.Contains(d.Log(), token) {
			t.Fatalf("the log shows a token")
		}
	}
}

// fullScrape fetches /scrape without info_hash and returns its files.
func fullScrape(t *testing.T, base string, gz bool) map[string]interface{} {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/scrape", nil)
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r io.Reader = resp.Body
	if gz {
		if resp.Header.Get("Content-Encoding") != "gzip" {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("asked for gzip, got Content-Encoding %q: %q", resp.Header.Get("Content-Encoding"), b)
		}
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	}
	body, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	v, err := frontendtest.DecodeBencode(body)
	if err != nil || !bytes.HasPrefix(body, []byte("d5:filesd")) {
		t.Fatalf("full scrape is not a files dictionary: %v %q", err, body[:min(len(body), 100)])
	}
	files, _ := v.(map[string]interface{})["files"].(map[string]interface{})
	if files == nil && !strings.Contains(string(body), "files") {
		t.Fatalf("no files: %q", body)
	}
	return files
}

// An approval made through the API is written through to the list file:
// a reload (which re-reads the file) and a restart (which starts from
// it) both keep the torrent admitted, and the refusal of another stays.
func TestOperatorApprovalSurvivesReloadAndRestart(t *testing.T) {
	cfg := loopbackConfig(t, "127.0.0.1")
	list, _ := operatorConfig(t, cfg)
	build, other := hash(0x51), hash(0x52)
	buildHex := hex.EncodeToString(build[:])
	const refusal = "unapproved torrent: this tracker does not track this info hash"

	d := start(t, cfg)
	if code, rep := api(t, d, "PUT", "/api/v1/approval/torrents/"+buildHex, e2eAdminToken); code != 200 || rep["changed"] != true {
		t.Fatalf("PUT: %d %v", code, rep)
	}
	d.Reload(t)
	d.WaitLine(t, "torrent approval: list file reloaded")
	u := udpTracker(t, d, "127.0.0.1:0")
	udpServed(t, u.announce(build, id("-qB4000-r1"), 100, 2, 7101, 10, nil))
	udpRefused(t, u.announce(other, id("-qB4000-r1"), 100, 2, 7101, 10, nil), refusal)
	d.Stop(t)

	if b, _ := os.ReadFile(list); string(b) != "# approved builds\n"+buildHex+"\n" {
		t.Fatalf("list file after the approval: %q", b)
	}
	d = start(t, cfg)
	u = udpTracker(t, d, "127.0.0.1:0")
	udpServed(t, u.announce(build, id("-qB4000-r2"), 100, 2, 7102, 10, nil))
	httpServed(t, httpGet(t, httpAnnounce{infoHash: build, peerID: id("-TR3000-r2"), port: 7103, left: 100}.url("http://"+d.Addr(t, "http"))))
	udpRefused(t, u.announce(other, id("-qB4000-r2"), 100, 2, 7102, 10, nil), refusal)
}
