package eventstream

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/internal/configtest"
	"github.com/chihaya/chihaya/middleware"
	"github.com/chihaya/chihaya/pkg/query"
	"github.com/chihaya/chihaya/pkg/webhook"
	"github.com/chihaya/chihaya/storage/redis/redistest"
)

func TestBadOptions(t *testing.T) {
	configtest.BadHookOptions(t, Name, []configtest.Case{
		{File: "bad-no-sink.yaml", Want: `options.sink: must be set: redis or http`},
		{File: "bad-sink.yaml", Want: `options.sink: must be redis or http, got "kafka"`},
		{File: "bad-redis-url.yaml", Want: `options.redis_url: redis: invalid URL scheme: mysql`},
		{File: "bad-no-redis-url.yaml", Want: `options.redis_url: must be set with sink: redis`},
		{File: "bad-redis-url-port.yaml", Want: `options.redis_url: port 99999 is not 1 to 65535 in "redis://127.0.0.1:99999/0"`},
		{File: "bad-http-url-port.yaml", Want: `options.url: port 0 is not 1 to 65535 in "http://127.0.0.1:0/events"`},
		{File: "bad-http-url.yaml", Want: `options.url: must be an http or https URL, got "127.0.0.1:8080/events"`},
		{File: "bad-url-with-redis.yaml", Want: `options.url: is for sink: http; sink is redis`},
		{File: "bad-secret-file.yaml", Want: `options.secret_file: open /nonexistent/events.secret: no such file or directory`},
		{File: "bad-queue-size.yaml", Want: `options.queue_size: must be at least batch_size (500), got 100`},
		{File: "bad-unknown-key.yaml", Want: `line 3: unknown key "batchsize" in options (event stream)`},
		{File: "bad-route.yaml", Want: `options.routes[0]: a parameter needs a name, got "/:/announce"`},
	})
}

func newHook(t *testing.T, cfg Config) *Hook {
	t.Helper()
	h := configtest.Build(t, cfg, Config.WithDefaults, New)
	t.Cleanup(h.Stop)
	return h
}

// announce is the i-th announce of user passkey "user<i%3>", over HTTP (the
// router found the passkey) or UDP (it is in the BEP 41 path).
func announce(i int, udp bool) *bittorrent.AnnounceRequest {
	pk := "user" + strconv.Itoa(i%3)
	v := &query.Values{}
	if udp {
		_ = v.Parse("/"+pk+"/announce", "src=udp")
	} else {
		_ = v.Parse("/"+pk+"/announce", "src=http&token=hidden")
		v.SetRouteParam("passkey", pk)
	}
	return &bittorrent.AnnounceRequest{
		InfoHash:   bittorrent.InfoHash{byte(i)},
		Peer:       bittorrent.Peer{ID: bittorrent.PeerID{'-', 'q', 'B'}, AddrPort: netip.MustParseAddrPort("127.0.0.9:51413")},
		Event:      bittorrent.Started,
		Left:       1000,
		Uploaded:   uint64(10 * i),
		Downloaded: uint64(i),
		Params:     v,
	}
}

func post(h *Hook, req *bittorrent.AnnounceRequest) {
	_ = h.HandleAnnounce(context.Background(), req, &bittorrent.AnnounceResponse{})
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRedisStreamAndConsumerGroup(t *testing.T) {
	srv := redistest.Start(t, "redis-server")
	h := newHook(t, Config{Sink: "redis", RedisURL: "redis://" + srv.Addr + "/0", Stream: "announces",
		Routes: []string{"/:passkey/announce"}, Redact: []string{"token"}, Instance: "tracker-1",
		BatchSize: 16, FlushInterval: 50 * time.Millisecond})
	for i := 0; i < 100; i++ {
		post(h, announce(i, i%2 == 1))
	}
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	eventually(t, "100 stream entries", func() bool { n, _ := c.XLen(ctx, "announces").Result(); return n >= 100 })
	if n, _ := c.XLen(ctx, "announces").Result(); n != 100 {
		t.Fatalf("stream holds %d entries for 100 announces", n)
	}

	// A site reads them with a consumer group, at least once.
	if err := c.XGroupCreate(ctx, "announces", "site", "0").Err(); err != nil {
		t.Fatal(err)
	}
	var got []redis.XMessage
	for len(got) < 100 {
		res, err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "site", Consumer: "c1", Streams: []string{"announces", ">"}, Count: 40, Block: time.Second}).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range res {
			got = append(got, s.Messages...)
			for _, m := range s.Messages {
				c.XAck(ctx, "announces", "site", m.ID)
			}
		}
	}
	if len(got) != 100 {
		t.Fatalf("consumer group read %d entries, want 100", len(got))
	}
	byHash := map[string]map[string]any{}
	for _, m := range got {
		byHash[m.Values["info_hash"].(string)] = m.Values
	}
	for i := 0; i < 100; i++ {
		ih := bittorrent.InfoHash{byte(i)}.String()
		v := byHash[ih]
		if v == nil {
			t.Fatalf("no event for announce %d", i)
		}
		src := "http"
		if i%2 == 1 {
			src = "udp"
		}
		wantParams := `{"passkey":"user` + strconv.Itoa(i%3) + `","src":"` + src + `"}`
		if v["uploaded"] != strconv.Itoa(10*i) || v["downloaded"] != strconv.Itoa(i) || v["left"] != "1000" ||
			v["event"] != "started" || v["ip"] != "127.0.0.9" || v["port"] != "51413" || v["instance"] != "tracker-1" ||
			v["action"] != "announce" || v["params"] != wantParams {
			t.Errorf("announce %d: entry %v (want params %s)", i, v, wantParams)
		}
		if _, err := time.Parse(time.RFC3339Nano, v["time"].(string)); err != nil {
			t.Errorf("announce %d: time %v: %v", i, v["time"], err)
		}
	}
	pending, _ := c.XPending(ctx, "announces", "site").Result()
	if pending.Count != 0 {
		t.Errorf("%d entries still pending after the acks", pending.Count)
	}
}

func TestRedisBrieflyDownLosesNothing(t *testing.T) {
	port := redistest.FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	h := newHook(t, Config{Sink: "redis", RedisURL: "redis://" + addr + "/0", Stream: "s",
		BatchSize: 8, FlushInterval: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Timeout: 500 * time.Millisecond})
	errorsBefore := testutil.ToFloat64(batches.WithLabelValues("redis", "error"))
	for i := 0; i < 40; i++ {
		post(h, announce(i, false))
	}
	eventually(t, "a failed batch", func() bool { return testutil.ToFloat64(batches.WithLabelValues("redis", "error")) > errorsBefore })
	srv, err := redistest.StartOn(t, "redis-server", port)
	if err != nil {
		t.Skipf("port %d taken meanwhile: %v", port, err)
	}
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { c.Close() })
	eventually(t, "40 entries once Redis is up", func() bool { n, _ := c.XLen(context.Background(), "s").Result(); return n == 40 })
}

func TestFullQueueDropsAndCounts(t *testing.T) {
	// Nothing listens: every batch fails, and the queue fills up.
	port := redistest.FreePort(t)
	h := newHook(t, Config{Sink: "redis", RedisURL: "redis://127.0.0.1:" + strconv.Itoa(port) + "/0",
		BatchSize: 10, QueueSize: 10, FlushInterval: time.Hour, Timeout: 100 * time.Millisecond})
	before := testutil.ToFloat64(droppedFull)
	for i := 0; i < 100; i++ {
		post(h, announce(i, false))
	}
	// The worker holds one batch of 10 and the queue 10 more: at least 80
	// of the 100 are dropped, and the announce path never waited.
	if d := testutil.ToFloat64(droppedFull) - before; d < 80 {
		t.Fatalf("%v events counted as dropped, want >= 80", d)
	}
}

// sinkServer receives NDJSON batches, checks their signature, and keeps
// their events.
type sinkServer struct {
	*httptest.Server
	secret []byte
	mu     sync.Mutex
	events []Event
	sizes  []int
	bad    []string
	status int
}

func newSinkServer(t *testing.T, secret []byte) *sinkServer {
	s := &sinkServer{secret: secret, status: http.StatusNoContent}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		defer s.mu.Unlock()
		if err := webhook.Verify(r.Header, s.secret, body, time.Now()); err != nil {
			s.bad = append(s.bad, err.Error())
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/x-ndjson" {
			s.bad = append(s.bad, "content type "+ct)
		}
		evs, err := ReadBatch(body)
		if err != nil {
			s.bad = append(s.bad, err.Error())
		}
		s.events = append(s.events, evs...)
		s.sizes = append(s.sizes, len(evs))
		w.WriteHeader(s.status)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *sinkServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.events)
}

func TestHTTPSinkSignedNDJSONBatches(t *testing.T) {
	secretFile := configtest.File(t, "secret", "sink secret\n")
	s := newSinkServer(t, []byte("sink secret"))
	h := newHook(t, Config{Sink: "http", URL: s.URL, SecretFile: secretFile, Routes: []string{"/:passkey/announce"}, Redact: []string{"token"},
		BatchSize: 5, FlushInterval: time.Hour, Instance: "t1"})
	for i := 0; i < 20; i++ {
		post(h, announce(i, false))
	}
	eventually(t, "20 events", func() bool { return s.count() == 20 })
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.bad) > 0 {
		t.Fatalf("bad batches: %v", s.bad)
	}
	for _, n := range s.sizes {
		if n != 5 {
			t.Errorf("batch sizes %v, want batches of 5", s.sizes)
			break
		}
	}
	for i, e := range s.events {
		if e.Uploaded != uint64(10*i) || e.Instance != "t1" || e.Params["passkey"] != "user"+strconv.Itoa(i%3) || e.Time.IsZero() {
			t.Errorf("event %d: %+v", i, e)
		}
		if _, leaked := e.Params["token"]; leaked {
			t.Errorf("event %d: redacted token sent: %v", i, e.Params)
		}
	}
}

// TestReloadRereadsSecret: a rotated secret_file takes effect on reload,
// the hook's entry being unchanged and the running hook kept.
func TestReloadRereadsSecret(t *testing.T) {
	secretFile := configtest.File(t, "secret", "old secret\n")
	s := newSinkServer(t, []byte("new secret"))
	h := newHook(t, Config{Sink: "http", URL: s.URL, SecretFile: secretFile, BatchSize: 1, FlushInterval: time.Hour})
	r, ok := any(h).(middleware.Reloader)
	if !ok {
		t.Fatal("the hook does not re-read its files on reload")
	}
	configtest.Rewrite(t, secretFile, "new secret\n")
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	post(h, announce(1, false))
	eventually(t, "1 event", func() bool { return s.count() == 1 })
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.bad) > 0 {
		t.Fatalf("after the reload: %v", s.bad)
	}
}

func TestHTTPSinkFlushInterval(t *testing.T) {
	s := newSinkServer(t, nil)
	h := newHook(t, Config{Sink: "http", URL: s.URL, BatchSize: 1000, FlushInterval: 100 * time.Millisecond})
	for i := 0; i < 3; i++ {
		post(h, announce(i, false))
	}
	eventually(t, "a partial batch after flush_interval", func() bool { return s.count() == 3 })
}

func TestHTTPSinkRejectionDropsTheBatch(t *testing.T) {
	s := newSinkServer(t, nil)
	s.status = http.StatusBadRequest
	h := newHook(t, Config{Sink: "http", URL: s.URL, BatchSize: 4, FlushInterval: time.Hour})
	before := testutil.ToFloat64(events.WithLabelValues(resultRejected))
	for i := 0; i < 4; i++ {
		post(h, announce(i, false))
	}
	eventually(t, "the rejected batch counted", func() bool {
		return testutil.ToFloat64(events.WithLabelValues(resultRejected))-before == 4
	})
}

func TestStopDeliversWhatIsQueued(t *testing.T) {
	s := newSinkServer(t, nil)
	h := newHook(t, Config{Sink: "http", URL: s.URL, BatchSize: 100, FlushInterval: time.Hour})
	for i := 0; i < 7; i++ {
		post(h, announce(i, false))
	}
	h.Stop()
	if n := s.count(); n != 7 {
		t.Fatalf("%d events delivered by Stop, want 7", n)
	}
}

// TestAnnounceAfterStopIsCounted: a reload stops the hook it replaces
// while requests that loaded the old chain may still hand it announces;
// those events cannot be delivered any more, and must be counted as
// dropped rather than left in a queue nobody reads.
func TestAnnounceAfterStopIsCounted(t *testing.T) {
	s := newSinkServer(t, nil)
	h := newHook(t, Config{Sink: "http", URL: s.URL, BatchSize: 100, FlushInterval: time.Hour})
	h.Stop()
	before := testutil.ToFloat64(events.WithLabelValues(resultShutdown))
	post(h, announce(1, false))
	if d := testutil.ToFloat64(events.WithLabelValues(resultShutdown)) - before; d != 1 {
		t.Fatalf("an announce after Stop counted %v times as dropped_shutdown, want 1", d)
	}
	if n := len(h.q); n != 0 {
		t.Fatalf("%d events left in the stopped hook's queue, want 0", n)
	}
}

// BenchmarkAnnounce is the reply path's cost: copying the announce (its
// passkey read from a BEP 41 path) into the queue. The sink holds the
// worker's first batch, so the worker does not run meanwhile; the
// benchmark empties the queue itself, off the clock, so that no event is
// dropped.
func BenchmarkAnnounce(b *testing.B) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	defer srv.Close()
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock()
	cfg := Config{Sink: "http", URL: srv.URL, Routes: []string{"/:passkey/announce"}, QueueSize: 1 << 16, BatchSize: 1, Timeout: time.Minute}.WithDefaults()
	h, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	req := announce(1, true)
	resp := &bittorrent.AnnounceResponse{}
	post(h, req) // the batch the sink holds
	for len(h.q) > 0 {
		time.Sleep(time.Millisecond)
	}
	before := testutil.ToFloat64(droppedFull)
	b.ReportAllocs()
	var cpu time.Duration // the process's CPU time on the clock
	b.ResetTimer()
	c0 := cpuTime()
	for i := 0; i < b.N; i++ {
		if len(h.q) == cap(h.q) {
			b.StopTimer()
			cpu += cpuTime() - c0
			for len(h.q) > 0 {
				<-h.q
			}
			c0 = cpuTime()
			b.StartTimer()
		}
		_ = h.HandleAnnounce(context.Background(), req, resp)
	}
	b.StopTimer()
	cpu += cpuTime() - c0
	// On a machine other processes load, ns/op counts the time spent
	// waiting for a core too; the CPU time per announce does not.
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
	if d := testutil.ToFloat64(droppedFull) - before; d != 0 {
		b.Fatalf("%v events dropped", d)
	}
	for len(h.q) > 0 {
		<-h.q
	}
	unblock()
	h.Stop()
}

// TestStopWithTheSinkDownIsBounded: a full queue and a sink that is down
// do not hold Stop (the daemon's shutdown, a reload that replaces the
// hook) for a retry of every batch; what is not delivered is counted.
func TestStopWithTheSinkDownIsBounded(t *testing.T) {
	port := redistest.FreePort(t)
	h, err := New(Config{Sink: "redis", RedisURL: "redis://127.0.0.1:" + strconv.Itoa(port) + "/0",
		BatchSize: 10, QueueSize: 1000, FlushInterval: time.Hour, Timeout: 300 * time.Millisecond}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	before := testutil.ToFloat64(events.WithLabelValues(resultShutdown))
	for i := 0; i < 1000; i++ {
		post(h, announce(i, false))
	}
	stopped := make(chan struct{})
	go func() { h.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop still waiting after 10 s with 100 batches queued and the sink down")
	}
	// Every event was either delivered (none: nothing listens) or counted.
	if d := testutil.ToFloat64(events.WithLabelValues(resultShutdown)) - before; d < 900 {
		t.Fatalf("%v events counted as dropped at shutdown, want the queue's (>= 900)", d)
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkEncode is the worker's cost per event before the sink: the
// event's fields and params, and the params' JSON (the Redis sink's
// `params` field).
func BenchmarkEncode(b *testing.B) {
	h, err := New(Config{Sink: "http", URL: "http://127.0.0.1:1/", Routes: []string{"/:passkey/announce"}}.WithDefaults())
	if err != nil {
		b.Fatal(err)
	}
	defer h.Stop()
	req := announce(1, true)
	p := pending{ih: req.InfoHash, peer: req.Peer, event: req.Event, left: req.Left,
		query: "src=udp&token=t%20x", route: [maxRoute]string{"user1"}, hasRoute: 1}
	b.ReportAllocs()
	c0 := cpuTime()
	for i := 0; i < b.N; i++ {
		e := h.event(&p)
		_ = appendParams(nil, e.Params)
	}
	b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
}

// FuzzAppendParams checks the Redis sink's params JSON on arbitrary
// strings: it is valid JSON and reads back as encoding/json's own
// encoding does (invalid UTF-8 becomes U+FFFD in both).
func FuzzAppendParams(f *testing.F) {
	f.Add("passkey", "abc")
	f.Add("k\"ey", "line\nbreak\x00\xff<&>\u2028")
	f.Fuzz(func(t *testing.T, k, v string) {
		m := map[string]string{k: v, "z": k}
		var got, want map[string]string
		if err := json.Unmarshal(appendParams(nil, m), &got); err != nil {
			t.Fatalf("%q: %v", appendParams(nil, m), err)
		}
		ref, _ := json.Marshal(m)
		if err := json.Unmarshal(ref, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
}

// TestRedisURLForms: the forms of redis_url go-redis reads are accepted,
// a unix socket's included.
func TestRedisURLForms(t *testing.T) {
	for _, u := range []string{"redis://127.0.0.1:6379/0", "rediss://user:pw@redis.example:6380/2", "redis://redis.example", "unix:///run/redis.sock?db=1"} {
		if err := (Config{Sink: "redis", RedisURL: u}).WithDefaults().Validate(); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}

// TestReadBatch: a receiver gets every event of a batch, and for a line
// that is not an event, the ones before it and an error naming the line.
func TestReadBatch(t *testing.T) {
	evs, err := ReadBatch([]byte(`{"instance":"a","uploaded":1}` + "\n" + `{"instance":"b"}` + "\n"))
	if err != nil || len(evs) != 2 || evs[0].Instance != "a" || evs[0].Uploaded != 1 || evs[1].Instance != "b" {
		t.Fatalf("ReadBatch = %+v, %v", evs, err)
	}
	evs, err = ReadBatch([]byte(`{"instance":"a"}` + "\n[1]\n"))
	const want = "event stream: batch line 2: json: cannot unmarshal array into Go value of type eventstream.Event"
	if len(evs) != 1 || err == nil || err.Error() != want {
		t.Fatalf("ReadBatch of a bad line = %+v, %v", evs, err)
	}
}
