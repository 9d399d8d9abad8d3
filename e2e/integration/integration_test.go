// Package integration holds the end-to-end tests of the integration hooks
// (`http approval`, `event stream`) in the running daemon: a real approval
// service (an HTTP server in the test), a real redis-server, and real HTTP
// and UDP announces.
package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/frontend/frontendtest"
	"github.com/chihaya/chihaya/internal/configtest"
	"github.com/chihaya/chihaya/internal/daemontest"
	"github.com/chihaya/chihaya/internal/eventually"
	"github.com/chihaya/chihaya/middleware/eventstream"
	"github.com/chihaya/chihaya/pkg/webhook"
	"github.com/chihaya/chihaya/storage/redis/redistest"
)

func TestMain(m *testing.M) { daemontest.Main(m) }

// site is the operator's approval service: passkeys starting with "good"
// are admitted with a 20-minute interval, "slow" ones are held until the
// test ends, others are refused. It counts the questions by passkey.
type site struct {
	*httptest.Server
	mu      sync.Mutex
	asked   map[string]int
	release chan struct{}
}

func newSite(t *testing.T) *site {
	s := &site{asked: map[string]int{}, release: make(chan struct{})}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var q struct {
			Params map[string]string `json:"params"`
		}
		_ = json.NewDecoder(r.Body).Decode(&q)
		pk := q.Params["passkey"]
		s.mu.Lock()
		s.asked[pk]++
		s.mu.Unlock()
		switch {
		case strings.HasPrefix(pk, "good"):
			io.WriteString(w, `{"allow": true, "interval": 1200}`)
		case strings.HasPrefix(pk, "slow"):
			select {
			case <-s.release:
			case <-r.Context().Done():
			}
		default:
			io.WriteString(w, `{"allow": false, "reason": "passkey unknown"}`)
		}
	}))
	t.Cleanup(func() { close(s.release); s.Close() })
	return s
}

func (s *site) questions(pk string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.asked[pk]
}

func (s *site) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, v := range s.asked {
		n += v
	}
	return n
}

// config is a daemon with passkey routes, the http approval hook asking
// url, and the given posthooks YAML (indented under `posthooks:`).
func config(url, onError, timeout, posthooks string) string {
	return fmt.Sprintf(`
chihaya:
  metrics_addr: "127.0.0.1:0"
  http:
    addr: "127.0.0.1:0"
    announce_routes: ["/:passkey/announce"]
    scrape_routes: ["/:passkey/scrape"]
  udp:
    addr: "127.0.0.1:0"
  storage:
    name: memory
  prehooks:
    - name: http approval
      options:
        url: %q
        routes: ["/:passkey/announce"]
        cache_key: [passkey]
        cache_ttl: 1h
        timeout: %s
        on_error: %s
%s`, url, timeout, onError, posthooks)
}

func httpClient(t *testing.T, d *daemontest.Daemon, passkey string) frontendtest.Client {
	return frontendtest.HTTP(t, "http://"+d.Addr(t, "http")+"/"+passkey+"/announce")
}

func announceOver(t *testing.T, c frontendtest.Client, n byte, path string) frontendtest.AnnounceReply {
	t.Helper()
	r, err := c.Announce(frontendtest.Announce{
		InfoHash: frontendtest.Hash(n), PeerID: frontendtest.ID("-qB4650-"), Port: 6881, Left: 10,
		Event: bittorrent.Started, Path: path,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func served(t *testing.T, r frontendtest.AnnounceReply, how string) {
	t.Helper()
	if r.Failure != "" {
		t.Fatalf("%s: refused: %q", how, r.Failure)
	}
	if r.Interval != 20*time.Minute {
		t.Errorf("%s: interval %s, want the service's 20m", how, r.Interval)
	}
}

func refused(t *testing.T, r frontendtest.AnnounceReply, want, how string) {
	t.Helper()
	if r.Failure != want {
		t.Fatalf("%s: failure %q, want %q", how, r.Failure, want)
	}
}

// TestPasskeysOverHTTPAndUDPIntoRedis is the private tracker: passkeys are
// admitted or refused by the site over HTTP and over UDP (BEP 41 carries
// the passkey in its path), and every served announce is one entry of the
// Redis Stream, read by a consumer group.
func TestPasskeysOverHTTPAndUDPIntoRedis(t *testing.T) {
	s := newSite(t)
	rs := redistest.Start(t, "redis-server")
	d := daemontest.Start(t, config(s.URL, "refuse", "500ms", fmt.Sprintf(`
  posthooks:
    - name: event stream
      options:
        sink: redis
        redis_url: "redis://%s/0"
        stream: announces
        instance: e2e
        routes: ["/:passkey/announce"]
        batch_size: 10
        flush_interval: 100ms
`, rs.Addr)))
	udp := frontendtest.UDP(t, d.Addr(t, "udp"))

	served(t, announceOver(t, httpClient(t, d, "good1"), 1, ""), "HTTP good1")
	refused(t, announceOver(t, httpClient(t, d, "bad1"), 1, ""), "passkey unknown", "HTTP bad1")
	served(t, announceOver(t, udp, 2, "/good2/announce"), "UDP good2")
	refused(t, announceOver(t, udp, 2, "/bad2/announce"), "passkey unknown", "UDP bad2")
	refused(t, announceOver(t, udp, 2, ""), "passkey unknown", "UDP without a passkey")

	c := redis.NewClient(&redis.Options{Addr: rs.Addr})
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	if err := c.XGroupCreateMkStream(ctx, "announces", "site", "0").Err(); err != nil {
		t.Fatal(err)
	}
	var got []redis.XMessage
	eventually.True(t, "two stream entries read by the group", func() bool {
		res, _ := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "site", Consumer: "c", Streams: []string{"announces", ">"}, Block: 100 * time.Millisecond}).Result()
		for _, st := range res {
			got = append(got, st.Messages...)
		}
		return len(got) >= 2
	})
	time.Sleep(300 * time.Millisecond) // more than a flush: nothing else comes
	if n, _ := c.XLen(ctx, "announces").Result(); n != 2 || len(got) != 2 {
		t.Fatalf("stream holds %d entries, group read %d; want one per served announce (2)", n, len(got))
	}
	pks := map[string]string{}
	for _, m := range got {
		var p map[string]string
		json.Unmarshal([]byte(m.Values["params"].(string)), &p)
		pks[p["passkey"]] = m.Values["info_hash"].(string)
		if m.Values["instance"] != "e2e" || m.Values["event"] != "started" || m.Values["left"] != "10" {
			t.Errorf("entry %v", m.Values)
		}
	}
	if pks["good1"] != frontendtest.Hash(1).String() || pks["good2"] != frontendtest.Hash(2).String() {
		t.Errorf("entries by passkey %v, want good1 and good2 with their torrents", pks)
	}
}

// TestCacheAsksOncePerKey: 1,000 announces of three passkeys, over both
// protocols, ask the site three times.
func TestCacheAsksOncePerKey(t *testing.T) {
	s := newSite(t)
	d := daemontest.Start(t, config(s.URL, "refuse", "500ms", ""))
	udp := frontendtest.UDP(t, d.Addr(t, "udp"))
	clients := map[string]frontendtest.Client{}
	for _, pk := range []string{"good1", "good2", "bad"} {
		clients[pk] = httpClient(t, d, pk)
	}
	pks := []string{"good1", "good2", "bad"}
	for i := 0; i < 1000; i++ {
		pk := pks[i%3]
		var r frontendtest.AnnounceReply
		if i%2 == 0 {
			r = announceOver(t, udp, byte(i), "/"+pk+"/announce")
		} else {
			r = announceOver(t, clients[pk], byte(i), "")
		}
		if (r.Failure == "") != strings.HasPrefix(pk, "good") {
			t.Fatalf("announce %d (%s): %+v", i, pk, r)
		}
	}
	for _, pk := range pks {
		if n := s.questions(pk); n != 1 {
			t.Errorf("site asked %d times about %s, want 1", n, pk)
		}
	}
	hits := d.Metric(t, "chihaya_middleware_http_approval_cache_lookups_total", map[string]string{"result": "hit"})
	if hits != 997 {
		t.Errorf("%v cache hits counted, want 997", hits)
	}
}

// TestDownService: with nothing listening at the url, on_error decides.
func TestDownService(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String() + "/approve"
	l.Close()
	for _, onError := range []string{"refuse", "admit"} {
		t.Run(onError, func(t *testing.T) {
			d := daemontest.Start(t, config(url, onError, "500ms", ""))
			rh := announceOver(t, httpClient(t, d, "good1"), 1, "")
			ru := announceOver(t, frontendtest.UDP(t, d.Addr(t, "udp")), 1, "/good1/announce")
			for how, r := range map[string]frontendtest.AnnounceReply{"HTTP": rh, "UDP": ru} {
				switch onError {
				case "refuse":
					refused(t, r, "tracker temporarily unavailable: try again later", how)
				case "admit":
					if r.Failure != "" {
						t.Errorf("%s: refused %q with on_error admit", how, r.Failure)
					}
				}
			}
			if n := d.Metric(t, "chihaya_middleware_http_approval_errors_total", map[string]string{"kind": "connection"}); n < 1 {
				t.Errorf("%v connection errors counted", n)
			}
		})
	}
}

// TestSlowServiceHoldsOnlyItsOwnRequests: while the site sits on eight
// questions, announces whose answers are cached are served; the eight are
// refused once timeout passes, although the site never answers them.
func TestSlowServiceHoldsOnlyItsOwnRequests(t *testing.T) {
	s := newSite(t)
	d := daemontest.Start(t, config(s.URL, "refuse", "1s", ""))
	udp := frontendtest.UDP(t, d.Addr(t, "udp"))
	good := httpClient(t, d, "good1")
	served(t, announceOver(t, good, 1, ""), "warming the cache")
	served(t, announceOver(t, udp, 1, "/good2/announce"), "warming the cache")

	var wg sync.WaitGroup
	slow := make([]frontendtest.AnnounceReply, 8)
	for i := range slow {
		c := httpClient(t, d, fmt.Sprintf("slow%d", i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			slow[i] = announceOver(t, c, byte(i), "")
		}()
	}
	eventually.True(t, "the site holding eight questions", func() bool { return s.total() >= 10 })
	for i := 0; i < 20; i++ {
		served(t, announceOver(t, good, byte(i), ""), "HTTP while the site is slow")
		served(t, announceOver(t, udp, byte(i), "/good2/announce"), "UDP while the site is slow")
	}
	wg.Wait()
	for i, r := range slow {
		refused(t, r, "tracker temporarily unavailable: try again later", fmt.Sprintf("slow%d", i))
	}
	if n := d.Metric(t, "chihaya_middleware_http_approval_errors_total", map[string]string{"kind": "timeout"}); n != 8 {
		t.Errorf("%v timeouts counted, want 8", n)
	}
}

// TestHTTPSinkGetsSignedNDJSON: every announce reaches the site's endpoint
// in signed NDJSON batches.
func TestHTTPSinkGetsSignedNDJSON(t *testing.T) {
	secret := configtest.File(t, "events.secret", "shared secret\n")
	var mu sync.Mutex
	var evs []eventstream.Event
	var problems []string
	batches := 0
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		batches++
		if err := webhook.Verify(r.Header, []byte("shared secret"), body, time.Now()); err != nil {
			problems = append(problems, err.Error())
		}
		batch, err := eventstream.ReadBatch(body)
		if err != nil {
			problems = append(problems, err.Error())
		}
		evs = append(evs, batch...)
	}))
	t.Cleanup(sink.Close)
	d := daemontest.Start(t, fmt.Sprintf(`
chihaya:
  udp:
    addr: "127.0.0.1:0"
  posthooks:
    - name: event stream
      options:
        sink: http
        url: %q
        secret_file: %q
        batch_size: 4
        flush_interval: 100ms
`, sink.URL, secret))
	udp := frontendtest.UDP(t, d.Addr(t, "udp"))
	for i := 0; i < 10; i++ {
		r := announceOver(t, udp, byte(i), "")
		if r.Failure != "" {
			t.Fatal(r.Failure)
		}
	}
	eventually.True(t, "ten events at the sink", func() bool { mu.Lock(); defer mu.Unlock(); return len(evs) >= 10 })
	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Fatalf("bad batches: %v", problems)
	}
	if len(evs) != 10 || batches < 3 {
		t.Fatalf("%d events in %d batches, want 10 in batches of at most 4", len(evs), batches)
	}
	seen := map[string]bool{}
	for _, e := range evs {
		seen[e.InfoHash] = true
	}
	for i := 0; i < 10; i++ {
		if !seen[frontendtest.Hash(byte(i)).String()] {
			t.Errorf("no event for torrent %d", i)
		}
	}
}
