package http

import (
	"compress/gzip"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/frontend"
	"github.com/chihaya/chihaya/frontend/frontendtest"
)

// fullLogic is frontendtest.Logic that can also scrape n synthetic swarms, in
// batches of batch, the way middleware.Logic hands them out.
type fullLogic struct {
	*frontendtest.Logic
	n, batch int
	refuse   bool // the prehooks refuse every scrape
	// started and hold, when set, make FullScrape say it has begun and
	// wait for hold to close before it walks.
	started chan struct{}
	hold    chan struct{}
}

func (l *fullLogic) HandleScrape(ctx context.Context, req *bittorrent.ScrapeRequest, resp *bittorrent.ScrapeResponse) error {
	if l.refuse {
		return frontendtest.ErrRefused
	}
	return l.Logic.HandleScrape(ctx, req, resp)
}

func syntheticSwarm(i int) bittorrent.Scrape {
	var ih bittorrent.InfoHash
	// Ascending with i, as the logic hands them out; the rest as random
	// as real info hashes, which gzip cannot shrink.
	binary.BigEndian.PutUint32(ih[:4], uint32(i))
	x := uint64(i)*0x9e3779b97f4a7c15 + 1
	for j := 4; j < len(ih); j++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		ih[j] = byte(x)
	}
	return bittorrent.Scrape{InfoHash: ih, Complete: uint32(i % 7), Incomplete: uint32(i % 5), Downloaded: uint32(i)}
}

func (l *fullLogic) FullScrape(ctx context.Context, fn func([]bittorrent.Scrape) error) error {
	if l.hold != nil {
		l.started <- struct{}{}
		<-l.hold
	}
	batch := make([]bittorrent.Scrape, 0, l.batch)
	for i := 0; i < l.n; i++ {
		batch = append(batch, syntheticSwarm(i))
		if len(batch) == l.batch || i == l.n-1 {
			if err := fn(batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	return ctx.Err()
}

func startFullScrape(t *testing.T, logic *fullLogic, mod func(*Config)) string {
	t.Helper()
	return baseURL(startFrontend(t, logic, "127.0.0.1:0", func(c *Config) {
		c.AllowFullScrape = true
		if mod != nil {
			mod(c)
		}
	}))
}

// fullScrape fetches /scrape without info_hash; with gzip it asks for a
// gzipped reply and checks that it got one.
func fullScrape(t *testing.T, url string, gz bool) reply {
	t.Helper()
	req, _ := nethttp.NewRequest("GET", url+"/scrape", nil)
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	// A Transport of its own, that neither asks for nor undoes gzip.
	tr := &nethttp.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if enc := resp.Header.Get("Content-Encoding"); gz && enc == "gzip" {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		resp.Body = io.NopCloser(strings.NewReader(string(body)))
	} else if enc != "" || gz {
		// gzip asked for and not given is only right for a failure.
		if enc != "" {
			t.Fatalf("Content-Encoding %q, asked gzip=%v", enc, gz)
		}
	}
	return readReply(t, resp)
}

func TestFullScrape(t *testing.T) {
	const n = 5000
	logic := &fullLogic{Logic: frontendtest.NewLogic(), n: n, batch: 777}
	for _, gz := range []bool{false, true} {
		name := "plain"
		if gz {
			name = "gzip"
		}
		t.Run(name, func(t *testing.T) {
			// An interval of a nanosecond: each subtest may scrape again.
			url := startFullScrape(t, logic, func(c *Config) { c.FullScrapeInterval = time.Nanosecond })
			r := fullScrape(t, url, gz)
			if gz && r.header.Get("Content-Encoding") != "gzip" {
				t.Fatalf("asked for gzip, got Content-Encoding %q", r.header.Get("Content-Encoding"))
			}
			// Plain or gzipped, the reply depends on Accept-Encoding, so a
			// cache in front must not hand one client's form to another.
			if v := r.header.Get("Vary"); v != "Accept-Encoding" {
				t.Fatalf("Vary %q, want Accept-Encoding", v)
			}
			files, ok := r.body["files"].(map[string]any)
			if !ok || len(r.body) != 1 {
				t.Fatalf("reply is not {files: ...}: %q", r.raw[:min(len(r.raw), 200)])
			}
			if len(files) != n {
				t.Fatalf("%d files, want %d", len(files), n)
			}
			for i := 0; i < n; i += 997 {
				s := syntheticSwarm(i)
				f, _ := files[string(s.InfoHash[:])].(map[string]any)
				want := map[string]any{"complete": int64(s.Complete), "downloaded": int64(s.Downloaded), "incomplete": int64(s.Incomplete)}
				if len(f) != 3 || f["complete"] != want["complete"] || f["downloaded"] != want["downloaded"] || f["incomplete"] != want["incomplete"] {
					t.Fatalf("swarm %d: %v, want %v", i, f, want)
				}
			}
		})
	}
}

func TestFullScrapeOnePerInterval(t *testing.T) {
	logic := &fullLogic{Logic: frontendtest.NewLogic(), n: 3, batch: 2}
	url := startFullScrape(t, logic, func(c *Config) { c.FullScrapeInterval = 90 * time.Second })
	if r := fullScrape(t, url, false); len(r.body["files"].(map[string]any)) != 3 {
		t.Fatalf("first full scrape: %q", r.raw)
	}
	before := frontendtest.ErrorsCounted("http", "full_scrape_too_soon")
	r := fullScrape(t, url, true)
	reason, _ := r.body["failure reason"].(string)
	if !strings.HasPrefix(reason, string(bittorrent.ErrFullScrapeTooSoon)+"; try again in ") || !strings.HasSuffix(reason, "s") {
		t.Fatalf("second full scrape within the interval: %q", r.raw)
	}
	if r.body["retry in"] != int64(2) {
		t.Errorf("retry in = %v, want 2 (minutes, rounded up from about 90 s)", r.body["retry in"])
	}
	if got := frontendtest.ErrorsCounted("http", "full_scrape_too_soon") - before; got != 1 {
		t.Errorf("full_scrape_too_soon counted %v times, want 1", got)
	}
	// A scrape with info hashes is not held to the interval.
	ih := syntheticSwarm(1).InfoHash
	if r := get(t, nethttp.DefaultClient, url+"/scrape?info_hash="+frontendtest.EscapeBytes(ih[:])); r.body["files"] == nil {
		t.Errorf("scrape with an info_hash after a full scrape: %q", r.raw)
	}
}

// fromAddr is a client whose connections come from the loopback address
// local.
func fromAddr(local string) *nethttp.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	return &nethttp.Client{Transport: &nethttp.Transport{DialContext: d.DialContext, DisableCompression: true}}
}

// While the most full scrapes at once are streamed, another address is
// refused for that reason, not as too soon after its own last one (it
// had none), and may come again at once afterwards.
func TestFullScrapeBusy(t *testing.T) {
	logic := &fullLogic{Logic: frontendtest.NewLogic(), n: 3, batch: 2, started: make(chan struct{}, maxFullScrapes), hold: make(chan struct{})}
	url := startFullScrape(t, logic, func(c *Config) { c.FullScrapeInterval = 90 * time.Second })
	done := make(chan reply, maxFullScrapes)
	for i := 0; i < maxFullScrapes; i++ {
		c := fromAddr(fmt.Sprintf("127.0.0.%d", 10+i))
		go func() {
			resp, err := c.Get(url + "/scrape")
			if err != nil {
				done <- reply{}
				return
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			done <- reply{raw: raw}
		}()
	}
	for i := 0; i < maxFullScrapes; i++ {
		<-logic.started
	}
	before := frontendtest.ErrorsCounted("http", "full_scrape_busy")
	other := fromAddr("127.0.0.20")
	r := get(t, other, url+"/scrape")
	reason, _ := r.body["failure reason"].(string)
	if !strings.HasPrefix(reason, string(bittorrent.ErrFullScrapeBusy)+"; try again in ") {
		t.Fatalf("a full scrape while %d are streamed: %q", maxFullScrapes, r.raw)
	}
	if got := frontendtest.ErrorsCounted("http", "full_scrape_busy") - before; got != 1 {
		t.Errorf("full_scrape_busy counted %v times, want 1", got)
	}
	close(logic.hold)
	for i := 0; i < maxFullScrapes; i++ {
		if r := <-done; !strings.HasPrefix(string(r.raw), "d5:filesd") {
			t.Fatalf("a held full scrape: %q", r.raw)
		}
	}
	if r := get(t, other, url+"/scrape"); len(r.body["files"].(map[string]any)) != 3 {
		t.Fatalf("the refused address once the others are done: %q", r.raw)
	}
}

func TestFullScrapeOffByDefault(t *testing.T) {
	logic := &fullLogic{Logic: frontendtest.NewLogic(), n: 3, batch: 2}
	url := startFullScrape(t, logic, func(c *Config) { c.AllowFullScrape = false })
	wantFailure(t, fullScrape(t, url, false), string(bittorrent.ErrFullScrapeDisabled))
}

func TestFullScrapeHooksRefuse(t *testing.T) {
	logic := &fullLogic{Logic: frontendtest.NewLogic(), n: 3, batch: 2, refuse: true}
	url := startFullScrape(t, logic, nil)
	wantFailure(t, fullScrape(t, url, false), string(frontendtest.ErrRefused))
}

func TestFullScrapeClientKey(t *testing.T) {
	fs := newFullScrapes(nil, Config{FullScrapeInterval: time.Minute})
	now := time.Now()
	a := netip.MustParseAddr("2001:db8::1")
	b := netip.MustParseAddr("2001:db8::2") // same /64
	c := netip.MustParseAddr("2001:db8:0:1::1")
	if _, ok := fs.admit(a, now); !ok {
		t.Fatal("first full scrape refused")
	}
	if wait, ok := fs.admit(b, now.Add(10*time.Second)); ok || wait != 50*time.Second {
		t.Fatalf("another address of the same /64: ok=%v wait=%v, want refused for 50s", ok, wait)
	}
	if _, ok := fs.admit(c, now); !ok {
		t.Fatal("another /64 refused")
	}
	if _, ok := fs.admit(a, now.Add(time.Minute)); !ok {
		t.Fatal("refused after the interval")
	}
}

func TestAcceptsGzip(t *testing.T) {
	for v, want := range map[string]bool{
		"": false, "gzip": true, "deflate, gzip;q=0.5": true, "GZIP": true, "gzip;q=0": false,
		"br": false, "*": true, "identity": false, "gzip; q=0.0": false,
	} {
		if got, _ := acceptsGzip([]byte(v)); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", v, got, want)
		}
	}
}

// BenchmarkFullScrapeWrite measures streaming a full scrape of a million
// swarms to a client, plain and gzipped (the walk of the store is
// middleware's BenchmarkFullScrape).
func BenchmarkFullScrapeWrite(b *testing.B) {
	for _, gz := range []bool{false, true} {
		name := "plain"
		if gz {
			name = "gzip"
		}
		b.Run(name, func(b *testing.B) {
			logic := &fullLogic{Logic: frontendtest.NewLogic(), n: 1_000_000, batch: 1 << 16}
			cfg := Config{Addr: "127.0.0.1:0", AllowFullScrape: true}.WithDefaults()
			f := &Frontend{logic: logic, metrics: frontend.NewMetrics("http", false, frontend.Announce, frontend.Scrape), full: newFullScrapes(logic, cfg)}
			f.scrapes.New = func() any { return new(scrapeState) }
			b.ReportAllocs()
			var n int
			for b.Loop() {
				f.full.last = map[netip.Addr]time.Time{}
				w := &discardConn{}
				c := testConn(f, w)
				r := &request{gzip: gz}
				st := f.scrapes.Get().(*scrapeState)
				f.serveFullScrape(c, r, st, netip.MustParseAddr("127.0.0.1"), bittorrent.IPv4, time.Time{})
				n = w.n
			}
			b.ReportMetric(float64(n), "bytes/reply")
		})
	}
}
