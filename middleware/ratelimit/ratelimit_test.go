package ratelimit

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/internal/configtest"
	"github.com/chihaya/chihaya/middleware"
	"github.com/chihaya/chihaya/pkg/clock"
)

// TestLoadAccepts: options that load, and what they load to; the
// rejected ones are files in testdata (TestBadOptions).
func TestLoadAccepts(t *testing.T) {
	configtest.Accepts(t, plugin.Load, []configtest.Accept[Config]{
		{Name: "announces only, defaults", YAML: "announces_per_second: 0.5\n",
			Want: Config{AnnouncesPerSecond: 0.5, AnnounceBurst: 1, IPv4PrefixLength: 32, IPv6PrefixLength: 64, MaxTrackedAddresses: 1 << 18}},
		{Name: "everything", YAML: "announces_per_second: 2.5\nannounce_burst: 10\nscrapes_per_second: 1\nscrape_burst: 3\nipv4_prefix_length: 24\nipv6_prefix_length: 48\nmax_tracked_addresses: 4096\n",
			Want: Config{AnnouncesPerSecond: 2.5, AnnounceBurst: 10, ScrapesPerSecond: 1, ScrapeBurst: 3, IPv4PrefixLength: 24, IPv6PrefixLength: 48, MaxTrackedAddresses: 4096}},
		{Name: "default burst rounds the rate up", YAML: "scrapes_per_second: 2.5\n",
			Want: Config{ScrapesPerSecond: 2.5, ScrapeBurst: 3, IPv4PrefixLength: 32, IPv6PrefixLength: 64, MaxTrackedAddresses: 1 << 18}},
	})
}

// fakeClock is a clock tests step by hand.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() int64           { return c.ns.Load() }
func (c *fakeClock) step(d time.Duration) { c.ns.Add(int64(d)) }
func newHook(t testing.TB, cfg Config) (*Hook, *fakeClock) {
	t.Helper()
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	h := New(cfg)
	c := &fakeClock{}
	c.ns.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	h.now = c.now
	return h, c
}

func announce(h *Hook, addr string) error {
	req := &bittorrent.AnnounceRequest{RemoteAddr: netip.MustParseAddr(addr), Params: bittorrent.ParamsNone}
	return h.HandleAnnounce(context.Background(), req, &bittorrent.AnnounceResponse{})
}

func scrape(h *Hook, addr string) error {
	req := &bittorrent.ScrapeRequest{RemoteAddr: netip.MustParseAddr(addr), Params: bittorrent.ParamsNone}
	return h.HandleScrape(context.Background(), req, &bittorrent.ScrapeResponse{})
}

// result turns a hook's answer into what the client reads, checking that a
// refusal is counted as rate_limited.
func result(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return "ok"
	}
	var r middleware.Refusal
	if !errors.As(err, &r) || r.Reason != "rate_limited" {
		t.Fatalf("error %#v is not a rate_limited refusal", err)
	}
	var ce bittorrent.ClientError
	if !errors.As(err, &ce) {
		t.Fatalf("error %#v does not carry a client error", err)
	}
	return ce.Error()
}

type step struct {
	wait   time.Duration // clock step before the request
	scrape bool
	addr   string
	want   string
}

func TestLimits(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   Config
		steps []step
	}{
		{"burst then refusal then refill", Config{AnnouncesPerSecond: 1, AnnounceBurst: 2}, []step{
			{addr: "192.0.2.1", want: "ok"},
			{addr: "192.0.2.1", want: "ok"},
			{addr: "192.0.2.1", want: "rate limited: retry in 1s"},
			{wait: time.Second, addr: "192.0.2.1", want: "ok"},
			{addr: "192.0.2.1", want: "rate limited: retry in 1s"},
			{wait: time.Hour, addr: "192.0.2.1", want: "ok"}, // the bucket refills to the burst, no more
			{addr: "192.0.2.1", want: "ok"},
			{addr: "192.0.2.1", want: "rate limited: retry in 1s"},
		}},
		{"retry time counts down", Config{AnnouncesPerSecond: 0.2}, []step{
			{addr: "192.0.2.1", want: "ok"},
			{addr: "192.0.2.1", want: "rate limited: retry in 5s"},
			{wait: 2 * time.Second, addr: "192.0.2.1", want: "rate limited: retry in 3s"},
			{wait: 2500 * time.Millisecond, addr: "192.0.2.1", want: "rate limited: retry in 1s"},
			{wait: 500 * time.Millisecond, addr: "192.0.2.1", want: "ok"},
		}},
		{"slowest rate", Config{AnnouncesPerSecond: 0.001}, []step{
			{addr: "192.0.2.1", want: "ok"},
			{addr: "192.0.2.1", want: "rate limited: retry in 1000s"},
		}},
		{"clients apart", Config{AnnouncesPerSecond: 1}, []step{
			{addr: "192.0.2.1", want: "ok"},
			{addr: "192.0.2.1", want: "rate limited: retry in 1s"},
			{addr: "192.0.2.2", want: "ok"},
			{addr: "2001:db8::1", want: "ok"},
		}},
		{"announces and scrapes apart", Config{AnnouncesPerSecond: 1, ScrapesPerSecond: 0.5}, []step{
			{addr: "192.0.2.1", want: "ok"},
			{addr: "192.0.2.1", want: "rate limited: retry in 1s"},
			{scrape: true, addr: "192.0.2.1", want: "ok"},
			{scrape: true, addr: "192.0.2.1", want: "rate limited: retry in 2s"},
		}},
		{"scrapes unlimited", Config{AnnouncesPerSecond: 1}, []step{
			{scrape: true, addr: "192.0.2.1", want: "ok"},
			{scrape: true, addr: "192.0.2.1", want: "ok"},
			{scrape: true, addr: "192.0.2.1", want: "ok"},
		}},
		{"announces unlimited", Config{ScrapesPerSecond: 1}, []step{
			{addr: "192.0.2.1", want: "ok"},
			{addr: "192.0.2.1", want: "ok"},
			{scrape: true, addr: "192.0.2.1", want: "ok"},
			{scrape: true, addr: "192.0.2.1", want: "rate limited: retry in 1s"},
		}},
		{"one IPv6 /64 shares a budget", Config{AnnouncesPerSecond: 1}, []step{
			{addr: "2001:db8:1:2::1", want: "ok"},
			{addr: "2001:db8:1:2:ffff:ffff:ffff:ffff", want: "rate limited: retry in 1s"},
			{addr: "2001:db8:1:3::1", want: "ok"},
		}},
		{"IPv6 grouped by /128", Config{AnnouncesPerSecond: 1, IPv6PrefixLength: 128}, []step{
			{addr: "2001:db8::1", want: "ok"},
			{addr: "2001:db8::2", want: "ok"},
			{addr: "2001:db8::1", want: "rate limited: retry in 1s"},
		}},
		{"IPv4 grouped by /24", Config{AnnouncesPerSecond: 1, IPv4PrefixLength: 24}, []step{
			{addr: "198.51.100.1", want: "ok"},
			{addr: "198.51.100.254", want: "rate limited: retry in 1s"},
			{addr: "198.51.101.1", want: "ok"},
		}},
		{"IPv4-mapped is IPv4", Config{AnnouncesPerSecond: 1}, []step{
			{addr: "192.0.2.7", want: "ok"},
			{addr: "::ffff:192.0.2.7", want: "rate limited: retry in 1s"},
		}},
		{"IPv4 apart from the IPv6 with the same low bits", Config{AnnouncesPerSecond: 1, IPv6PrefixLength: 128}, []step{
			{addr: "192.0.2.7", want: "ok"},
			{addr: "::c000:207", want: "ok"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, c := newHook(t, tc.cfg)
			for i, s := range tc.steps {
				c.step(s.wait)
				var err error
				if s.scrape {
					err = scrape(h, s.addr)
				} else {
					err = announce(h, s.addr)
				}
				if got := result(t, err); got != s.want {
					t.Fatalf("step %d (%+v): %q, want %q", i, s, got, s.want)
				}
			}
		})
	}
}

// The limit keys on where the request came from, not on the address a
// client may claim for itself with allow_ip_spoofing.
func TestKeysOnRemoteAddr(t *testing.T) {
	h, _ := newHook(t, Config{AnnouncesPerSecond: 1})
	for i := range 3 {
		req := &bittorrent.AnnounceRequest{
			RemoteAddr: netip.MustParseAddr("192.0.2.1"),
			Peer:       bittorrent.Peer{AddrPort: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 6881)},
			Params:     bittorrent.ParamsNone,
		}
		err := h.HandleAnnounce(context.Background(), req, &bittorrent.AnnounceResponse{})
		if (err == nil) != (i == 0) {
			t.Fatalf("announce %d claiming a new address: %v", i, err)
		}
	}
}

func addr(i uint64, v6 bool) netip.Addr {
	if !v6 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(i)|0x0a000000)
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], 0x2001_0db8_0000_0000|i)
	return netip.AddrFrom16(b)
}

// A flood from many distinct addresses neither grows the table nor makes a
// client that is being limited lose its state while it keeps coming back.
func TestFloodIsBounded(t *testing.T) {
	h, c := newHook(t, Config{AnnouncesPerSecond: 0.01, MaxTrackedAddresses: 4096})
	capacity := h.Capacity()
	if capacity < 4096 || capacity > 2*4096 {
		t.Fatalf("capacity %d for max_tracked_addresses 4096", capacity)
	}
	victim := netip.MustParseAddr("192.0.2.1")
	req := &bittorrent.AnnounceRequest{RemoteAddr: victim, Params: bittorrent.ParamsNone}
	var resp bittorrent.AnnounceResponse
	if err := h.HandleAnnounce(context.Background(), req, &resp); err != nil {
		t.Fatal(err)
	}

	evicted := testutil.ToFloat64(evictions)
	next := uint64(0)
	allocs := testing.AllocsPerRun(10, func() {
		for range 10 * capacity {
			next++
			req.RemoteAddr = addr(next, next%2 == 0)
			_ = h.HandleAnnounce(context.Background(), req, &resp)
		}
		// The victim comes back often enough to stay among the recent.
		c.step(time.Millisecond)
		req.RemoteAddr = victim
		_ = h.HandleAnnounce(context.Background(), req, &resp)
	})
	if allocs != 0 {
		t.Fatalf("a flood of %d addresses allocated %.0f times", 10*capacity, allocs)
	}
	if got := testutil.ToFloat64(evictions) - evicted; got == 0 {
		t.Fatalf("the flood of addresses with spent budgets evicted none")
	}
	// The victim, heard from just now, is tracked in spite of the flood:
	// announcing again at once, it is refused.
	req.RemoteAddr = victim
	c.step(time.Millisecond)
	var r middleware.Refusal
	if err := h.HandleAnnounce(context.Background(), req, &resp); !errors.As(err, &r) || r.Reason != "rate_limited" {
		t.Fatalf("the victim announcing again at once during the flood: %v, want refused as rate limited", err)
	}
	// A flood without it sends enough fresh addresses through its set
	// that it is forgotten: the price of bounded memory is a fresh burst.
	evicted = testutil.ToFloat64(evictions)
	for range 10 * capacity {
		next++
		req.RemoteAddr = addr(next, next%2 == 0)
		_ = h.HandleAnnounce(context.Background(), req, &resp)
	}
	req.RemoteAddr = victim
	if err := h.HandleAnnounce(context.Background(), req, &resp); err != nil {
		t.Fatalf("the victim after a flood of %d other addresses: %v, want admitted with a fresh burst (forgotten)", 10*capacity, err)
	}
	if got := testutil.ToFloat64(evictions) - evicted; got == 0 {
		t.Fatalf("the second flood evicted nothing")
	}
}

func TestRegistered(t *testing.T) {
	h, err := middleware.NewHook(Name, []byte("announces_per_second: 1\nmax_tracked_addresses: 1024\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := h.(*Hook); !ok {
		t.Fatalf("registry built %T", h)
	}
}

func benchmark(b *testing.B, cfg Config, distinct bool) {
	h, _ := newHook(b, cfg)
	h.now = clock.Monotonic // as in the daemon
	var g atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		base := g.Add(1) << 40
		i := uint64(0)
		req := &bittorrent.AnnounceRequest{RemoteAddr: addr(base, false), Params: bittorrent.ParamsNone}
		var resp bittorrent.AnnounceResponse
		for pb.Next() {
			if distinct {
				i++
				req.RemoteAddr = addr(base+i, i%2 == 0)
			}
			_ = h.HandleAnnounce(context.Background(), req, &resp)
		}
	})
}

func BenchmarkAllow(b *testing.B) {
	for _, bc := range []struct {
		name     string
		cfg      Config
		distinct bool
	}{
		{"one client served", Config{AnnouncesPerSecond: 1e6, AnnounceBurst: 1e6}, false},
		{"one client refused", Config{AnnouncesPerSecond: 0.001}, false},
		{"flood of distinct addresses", Config{AnnouncesPerSecond: 1}, true},
	} {
		b.Run(bc.name, func(b *testing.B) { benchmark(b, bc.cfg, bc.distinct) })
	}
}

func ExampleHook() {
	h := New(Config{AnnouncesPerSecond: 1, AnnounceBurst: 1}.WithDefaults())
	req := &bittorrent.AnnounceRequest{RemoteAddr: netip.MustParseAddr("192.0.2.1"), Params: bittorrent.ParamsNone}
	var resp bittorrent.AnnounceResponse
	fmt.Println(h.HandleAnnounce(context.Background(), req, &resp))
	fmt.Println(h.HandleAnnounce(context.Background(), req, &resp))
	// Output:
	// <nil>
	// rate limited: retry in 1s
}

func TestWithoutRemoteAddr(t *testing.T) {
	h, _ := newHook(t, Config{AnnouncesPerSecond: 1, ScrapesPerSecond: 1})
	peer := func(last byte) *bittorrent.AnnounceRequest {
		return &bittorrent.AnnounceRequest{
			Peer:   bittorrent.Peer{AddrPort: netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, last}), 6881)},
			Params: bittorrent.ParamsNone,
		}
	}
	var resp bittorrent.AnnounceResponse
	for i, tc := range []struct {
		req  *bittorrent.AnnounceRequest
		want string
	}{
		{peer(1), "ok"},
		{peer(1), "rate limited: retry in 1s"}, // limited by its peer address
		{peer(2), "ok"},
	} {
		if got := result(t, h.HandleAnnounce(context.Background(), tc.req, &resp)); got != tc.want {
			t.Fatalf("announce %d: %q, want %q", i, got, tc.want)
		}
	}
	for i := range 3 {
		err := h.HandleScrape(context.Background(), &bittorrent.ScrapeRequest{Params: bittorrent.ParamsNone}, &bittorrent.ScrapeResponse{})
		if err != nil {
			t.Fatalf("scrape %d without an address: %v", i, err)
		}
	}
}

// TestBadOptions: every rejected options file in testdata, with the exact
// error the registry gives (the daemon puts the entry's key and the line in
// front: prehooks[0].options...).
func TestBadOptions(t *testing.T) {
	configtest.BadHookOptions(t, Name, []configtest.Case{
		{File: "bad-nothing-limited.yaml", Want: `options (rate limit): announces_per_second or scrapes_per_second must be set`},
		{File: "bad-negative-rate.yaml", Want: `options.announces_per_second: must be 0 (no limit) or 0.001 to 1e+06, got -1`},
		{File: "bad-rate-too-small.yaml", Want: `options.scrapes_per_second: must be 0 (no limit) or 0.001 to 1e+06, got 0.0001`},
		{File: "bad-infinite-rate.yaml", Want: `options.announces_per_second: must be 0 (no limit) or 0.001 to 1e+06, got +Inf`},
		{File: "bad-burst-without-rate.yaml", Want: `options.scrape_burst: set without scrapes_per_second`},
		{File: "bad-negative-burst.yaml", Want: `options.announce_burst: must be 1 to 1000000, got -2`},
		{File: "bad-huge-burst.yaml", Want: `options.announce_burst: must be 1 to 1000000, got 2000000`},
		{File: "bad-ipv4-prefix.yaml", Want: `options.ipv4_prefix_length: must be 1 to 32, got 33`},
		{File: "bad-ipv6-prefix.yaml", Want: `options.ipv6_prefix_length: must be 1 to 128, got -64`},
		{File: "bad-tiny-table.yaml", Want: `options.max_tracked_addresses: must be 1024 to 1073741824, got 10`},
		{File: "bad-unknown-key.yaml", Want: `line 2: unknown key "burst" in options (rate limit)`},
		{File: "bad-rate-type.yaml", Want: "line 1: options.announces_per_second: cannot unmarshal !!str `fast` into a number"},
	})
}
