package main

import (
	"bytes"
	"encoding/hex"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestLoopbackTarget(t *testing.T) {
	tests := []struct {
		name    string
		target  string
		want    string // the parsed target, or "" for a refusal
		wantErr string
	}{
		{"IPv4 loopback", "127.0.0.1:6969", "127.0.0.1:6969", ""},
		{"elsewhere in 127/8", "127.45.6.7:1", "127.45.6.7:1", ""},
		{"IPv6 loopback", "[::1]:6969", "[::1]:6969", ""},
		{"localhost", "localhost:80", "127.0.0.1:80", ""},
		{"IPv4-mapped loopback", "[::ffff:127.0.0.1]:80", "127.0.0.1:80", ""},
		{"private IPv4", "10.0.0.1:6969", "", "only loopback addresses"},
		{"public IPv4", "1.1.1.1:6969", "", "only loopback addresses"},
		{"IPv4-mapped private", "[::ffff:10.0.0.1]:6969", "", "only loopback addresses"},
		{"unspecified IPv4", "0.0.0.0:6969", "", "only loopback addresses"},
		{"unspecified IPv6", "[::]:6969", "", "only loopback addresses"},
		{"global IPv6", "[2001:db8::1]:6969", "", "only loopback addresses"},
		{"link-local with zone", "[fe80::1%lo]:6969", "", "without a zone"},
		{"loopback with zone", "[::1%lo]:6969", "", "without a zone"},
		{"host name", "tracker.example.org:6969", "", "not host names"},
		{"no port", "127.0.0.1", "", "must be host:port"},
		{"port zero", "127.0.0.1:0", "", "port must be in 1..65535"},
		{"port too large", "127.0.0.1:70000", "", "port must be in 1..65535"},
		{"empty", "", "", "must be host:port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := loopbackTarget(tt.target)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "--target: ") {
					t.Fatalf("loopbackTarget(%q) = %v, %v; want error containing %q", tt.target, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != netip.MustParseAddrPort(tt.want) {
				t.Fatalf("loopbackTarget(%q) = %v, %v; want %s", tt.target, got, err, tt.want)
			}
		})
	}
}

func TestCLIRefusesNonLoopbackTargets(t *testing.T) {
	for _, mode := range []string{modeUDPAnnounce, modeUDPScrape, modeHTTPAnnounce, modeHTTPScrape, modeFill} {
		t.Run(mode, func(t *testing.T) {
			var out bytes.Buffer
			root := newRootCmd(&out)
			root.SetArgs([]string{mode, "--target", "192.0.2.1:6969", "--duration", "1s"})
			err := root.Execute()
			if err == nil || !strings.Contains(err.Error(), `refusing "192.0.2.1:6969"`) {
				t.Fatalf("got %v, want a refusal", err)
			}
			if out.Len() != 0 {
				t.Errorf("printed %q, want nothing: no run may take place", out.String())
			}
		})
	}
}

func testWorkload(t testing.TB, cfg WorkloadConfig) *Workload {
	t.Helper()
	if cfg.Torrents == 0 {
		cfg.Torrents = 10000
	}
	if cfg.Peers == 0 {
		cfg.Peers = 200
	}
	if cfg.Events == (EventMix{}) {
		cfg.Events = DefaultEventMix
	}
	w, err := NewWorkload(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func draws(pk *Picker, n int) []Announce {
	out := make([]Announce, n)
	for i := range out {
		pk.Next(&out[i])
	}
	return out
}

func TestWorkloadIsDeterministic(t *testing.T) {
	base := WorkloadConfig{Seed: 42, Zipf: 1, SeederShare: 0.7, NumWant: 50}
	a, b := testWorkload(t, base), testWorkload(t, base)
	other := base
	other.Seed = 43
	c := testWorkload(t, other)

	if *a.InfoHash(17) != *b.InfoHash(17) {
		t.Error("same seed gave different info hashes")
	}
	if *a.InfoHash(17) == *c.InfoHash(17) {
		t.Error("different seeds gave the same info hash")
	}
	da, db := draws(a.NewPicker(3), 1000), draws(b.NewPicker(3), 1000)
	for i := range da {
		if da[i] != db[i] {
			t.Fatalf("draw %d differs with the same seed and worker: %+v vs %+v", i, da[i], db[i])
		}
	}
	same := 0
	for i, x := range draws(a.NewPicker(4), 1000) {
		if x == da[i] {
			same++
		}
	}
	if same > 100 {
		t.Errorf("workers 3 and 4 drew %d identical announces of 1000; they should differ", same)
	}
	var p1, p2 [20]byte
	a.PeerID(&p1, 5, 9)
	b.PeerID(&p2, 5, 9)
	if p1 != p2 || !bytes.HasPrefix(p1[:], []byte("-CB0001-")) {
		t.Errorf("peer IDs %q and %q, want equal and Azureus-style", p1, p2)
	}
}

func TestHashesCommandPrintsTheWorkloadsHashes(t *testing.T) {
	var out bytes.Buffer
	root := newRootCmd(&out)
	root.SetArgs([]string{"hashes", "--torrents", "25", "--seed", "9"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	w := testWorkload(t, WorkloadConfig{Seed: 9, Torrents: 25, Zipf: 1})
	if len(lines) != 25 {
		t.Fatalf("got %d lines, want 25", len(lines))
	}
	for i, l := range lines {
		if l != hex.EncodeToString(w.InfoHash(i)[:]) {
			t.Fatalf("line %d = %q, want torrent %d's hash", i, l, i)
		}
	}
}

func TestWorkloadPopularityIsSkewed(t *testing.T) {
	tests := []struct {
		name             string
		zipf             float64
		minTop, maxTop   float64 // share of draws landing on the top 1 % of torrents
		minTop1, maxTop1 float64 // share of the single most popular torrent
	}{
		// With s=1 over 10,000 torrents, the top 100 get H(100)/H(10000)
		// = 53 % and the first 1/H(10000) = 10 %.
		{"zipf 1", 1, 0.50, 0.56, 0.09, 0.115},
		{"uniform", 0, 0.005, 0.015, 0, 0.001},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pk := testWorkload(t, WorkloadConfig{Seed: 1, Zipf: tt.zipf}).NewPicker(0)
			const n = 200000
			top, first := 0, 0
			for range n {
				tor := pk.Torrent()
				if tor < 0 || tor >= 10000 {
					t.Fatalf("torrent %d out of range", tor)
				}
				if tor < 100 {
					top++
				}
				if tor == 0 {
					first++
				}
			}
			if s := float64(top) / n; s < tt.minTop || s > tt.maxTop {
				t.Errorf("top 1%% of torrents got %.3f of draws, want %.3f..%.3f", s, tt.minTop, tt.maxTop)
			}
			if s := float64(first) / n; s < tt.minTop1 || s > tt.maxTop1 {
				t.Errorf("most popular torrent got %.4f of draws, want %.4f..%.4f", s, tt.minTop1, tt.maxTop1)
			}
		})
	}
}

func TestWorkloadSeederShareAndPeers(t *testing.T) {
	for _, share := range []float64{0.7, 0, 1} {
		w := testWorkload(t, WorkloadConfig{Seed: 3, Torrents: 1000, Peers: 200, SeederShare: share})
		seeders := 0
		for tor := range 1000 {
			ids := map[[20]byte]bool{}
			for p := range 200 {
				if w.Seeder(tor, p) {
					seeders++
					if w.Left(tor, p) != 0 {
						t.Fatalf("seeder %d/%d has %d left", tor, p, w.Left(tor, p))
					}
				} else if w.Left(tor, p) == 0 {
					t.Fatalf("leecher %d/%d has nothing left", tor, p)
				}
				var id [20]byte
				w.PeerID(&id, tor, p)
				if ids[id] {
					t.Fatalf("torrent %d: peer ID of peer %d repeats", tor, p)
				}
				ids[id] = true
			}
		}
		if got := float64(seeders) / 200000; math.Abs(got-share) > 0.01 {
			t.Errorf("--seeders %v: got share %.4f", share, got)
		}
	}
	w := testWorkload(t, WorkloadConfig{Seed: 3})
	if w.Port(0) != 1024 || w.Port(199) != 1223 {
		t.Errorf("ports %d..%d, want 1024..1223", w.Port(0), w.Port(199))
	}
}

func TestWorkloadEventMix(t *testing.T) {
	tests := []struct {
		name string
		mix  EventMix
	}{
		{"default", DefaultEventMix},
		{"only regular", EventMix{Regular: 1}},
		{"even", EventMix{1, 1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pk := testWorkload(t, WorkloadConfig{Seed: 5, Events: tt.mix, SeederShare: 0.7}).NewPicker(1)
			const n = 100000
			var count [4]int
			for _, a := range draws(pk, n) {
				count[a.Event]++
				if a.Event == EventCompleted && a.Left != 0 {
					t.Fatalf("completed announce with %d left", a.Left)
				}
				if a.Peer < 0 || a.Peer >= 200 || a.NumWant != 0 {
					t.Fatalf("announce %+v out of the workload", a)
				}
			}
			total := float64(tt.mix.Started + tt.mix.Regular + tt.mix.Completed + tt.mix.Stopped)
			want := map[Event]uint32{EventStarted: tt.mix.Started, EventNone: tt.mix.Regular, EventCompleted: tt.mix.Completed, EventStopped: tt.mix.Stopped}
			for ev, w := range want {
				got := float64(count[ev]) / n
				if math.Abs(got-float64(w)/total) > 0.01 {
					t.Errorf("event %q: share %.3f, want %.3f", ev, got, float64(w)/total)
				}
			}
		})
	}
}

func TestWorkloadValidate(t *testing.T) {
	ok := WorkloadConfig{Torrents: 1, Peers: 1, Events: DefaultEventMix}
	tests := []struct {
		name    string
		change  func(*WorkloadConfig)
		wantErr string
	}{
		{"no torrents", func(c *WorkloadConfig) { c.Torrents = 0 }, "--torrents: must be > 0, got 0"},
		{"too many peers for the ports", func(c *WorkloadConfig) { c.Peers = 70000 }, "--peers: must be in 1..64512 (one port each), got 70000"},
		{"negative zipf", func(c *WorkloadConfig) { c.Zipf = -1 }, "--zipf: must be >= 0, got -1"},
		{"seeders over 1", func(c *WorkloadConfig) { c.SeederShare = 1.5 }, "--seeders: must be in 0..1, got 1.5"},
		{"no events", func(c *WorkloadConfig) { c.Events = EventMix{} }, "--events: at least one share must be > 0"},
		{"numwant", func(c *WorkloadConfig) { c.NumWant = -2 }, "--numwant: must be >= -1, got -2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.change(&c)
			if err := c.Validate(); err == nil || err.Error() != tt.wantErr {
				t.Errorf("got %v, want %q", err, tt.wantErr)
			}
		})
	}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
	if _, err := parseEventMix("1,2,3"); err == nil {
		t.Error("three shares accepted")
	}
}

func TestHistogramQuantiles(t *testing.T) {
	tests := []struct {
		name   string
		values []time.Duration
		q      float64
		want   time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"small values are exact", []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.5, 5},
		{"single value", []time.Duration{150 * time.Microsecond}, 0.99, 150 * time.Microsecond},
		{"p90 of 1..1000 µs", seq(1000, time.Microsecond), 0.9, 900 * time.Microsecond},
		{"p99 of 1..1000 µs", seq(1000, time.Microsecond), 0.99, 990 * time.Microsecond},
		{"p999 with an outlier", append(seq(999, time.Microsecond), time.Second), 0.999, 999 * time.Microsecond},
		{"max is p100", append(seq(999, time.Microsecond), time.Second), 1, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Histogram
			for _, v := range tt.values {
				h.Record(v)
			}
			got := h.Quantile(tt.q)
			if diff := math.Abs(float64(got-tt.want)) / math.Max(float64(tt.want), 1); diff > 1.0/histSub {
				t.Errorf("Quantile(%v) = %v, want %v within %.1f%%", tt.q, got, tt.want, 100.0/histSub)
			}
		})
	}
}

func seq(n int, unit time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(i+1) * unit
	}
	return out
}

func TestHistogramBucketsCoverEveryValue(t *testing.T) {
	for _, v := range []uint64{0, 1, 63, 64, 65, 127, 128, 1000, 1 << 20, 123456789, 1<<63 - 1, math.MaxUint64} {
		i := histIndex(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d, out of 0..%d", v, i, histBuckets)
		}
		lo, hi := histBounds(i)
		if v < lo || v > hi {
			t.Errorf("value %d in bucket %d with bounds %d..%d", v, i, lo, hi)
		}
		if hi-lo > hi/histSub+1 {
			t.Errorf("bucket %d (%d..%d) wider than 1/%d", i, lo, hi, histSub)
		}
	}
}

func TestHistogramMerge(t *testing.T) {
	var a, b Histogram
	for _, v := range seq(500, time.Microsecond) {
		a.Record(v)
	}
	for _, v := range seq(500, time.Microsecond) {
		b.Record(v + 500*time.Microsecond)
	}
	b.Record(-time.Second) // counts as zero
	a.Merge(&b)
	if a.Count() != 1001 || a.Max() != time.Millisecond {
		t.Errorf("merged count %d max %v, want 1001 and 1ms", a.Count(), a.Max())
	}
	if got := a.Quantile(0.5); math.Abs(float64(got-500*time.Microsecond)) > float64(500*time.Microsecond)/histSub {
		t.Errorf("merged p50 = %v, want about 500µs", got)
	}
}
