package varinterval

import (
	"context"
	"testing"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/internal/configtest"
	"github.com/chihaya/chihaya/middleware"
)

// TestLoadAccepts: options that load, and what they load to; the
// rejected ones are files in testdata (TestBadOptions).
func TestLoadAccepts(t *testing.T) {
	configtest.Accepts(t, plugin.Load, []configtest.Accept[Config]{
		{Name: "upstream example", YAML: "modify_response_probability: 0.2\nmax_increase_delta: 60\nmodify_min_interval: true\n",
			Want: Config{ModifyResponseProbability: 0.2, MaxIncreaseDelta: 60, ModifyMinInterval: true}},
	})
}

func TestRegistered(t *testing.T) {
	h, err := middleware.NewHook(Name, []byte("modify_response_probability: 1\nmax_increase_delta: 5\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := h.(*Hook); !ok {
		t.Fatalf("registry built %T", h)
	}
}

func announce(h *Hook) bittorrent.AnnounceResponse {
	resp := bittorrent.AnnounceResponse{Interval: 30 * time.Minute, MinInterval: 15 * time.Minute}
	if err := h.HandleAnnounce(context.Background(), &bittorrent.AnnounceRequest{Params: bittorrent.ParamsNone}, &resp); err != nil {
		panic(err)
	}
	return resp
}

func TestVariation(t *testing.T) {
	const n = 20000
	for _, tc := range []struct {
		name      string
		cfg       Config
		minShare  float64 // bounds on the share of lengthened replies; ±10σ
		maxShare  float64
		modifyMin bool
	}{
		{name: "always, min interval too", cfg: Config{ModifyResponseProbability: 1, MaxIncreaseDelta: 10, ModifyMinInterval: true}, minShare: 1, maxShare: 1},
		{name: "always, interval only", cfg: Config{ModifyResponseProbability: 1, MaxIncreaseDelta: 1}, minShare: 1, maxShare: 1},
		{name: "a quarter of replies", cfg: Config{ModifyResponseProbability: 0.25, MaxIncreaseDelta: 60}, minShare: 0.22, maxShare: 0.28},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := New(tc.cfg)
			changed := 0
			seen := map[time.Duration]bool{}
			for i := 0; i < n; i++ {
				r := announce(h)
				add := r.Interval - 30*time.Minute
				if add == 0 {
					if r.MinInterval != 15*time.Minute {
						t.Fatalf("min interval changed alone: %+v", r)
					}
					continue
				}
				changed++
				if add < time.Second || add > time.Duration(tc.cfg.MaxIncreaseDelta)*time.Second || add%time.Second != 0 {
					t.Fatalf("interval grew by %s, want whole seconds in [1s, %ds]", add, tc.cfg.MaxIncreaseDelta)
				}
				wantMin := 15 * time.Minute
				if tc.cfg.ModifyMinInterval {
					wantMin += add
				}
				if r.MinInterval != wantMin {
					t.Fatalf("min interval %s, want %s", r.MinInterval, wantMin)
				}
				seen[add] = true
			}
			share := float64(changed) / n
			if share < tc.minShare || share > tc.maxShare {
				t.Fatalf("%.3f of replies lengthened, want %.2f..%.2f", share, tc.minShare, tc.maxShare)
			}
			// Every delta in range turns up: the spread is what the hook is for.
			if len(seen) != tc.cfg.MaxIncreaseDelta {
				t.Fatalf("%d distinct deltas, want all %d", len(seen), tc.cfg.MaxIncreaseDelta)
			}
		})
	}
}

func TestScrapeUntouched(t *testing.T) {
	h := New(Config{ModifyResponseProbability: 1, MaxIncreaseDelta: 10})
	resp := bittorrent.ScrapeResponse{Files: []bittorrent.Scrape{{Complete: 3}}}
	if err := h.HandleScrape(context.Background(), &bittorrent.ScrapeRequest{}, &resp); err != nil || resp.Files[0].Complete != 3 {
		t.Fatalf("scrape: %v %+v", err, resp)
	}
}

func BenchmarkHandleAnnounce(b *testing.B) {
	h := New(Config{ModifyResponseProbability: 0.5, MaxIncreaseDelta: 300, ModifyMinInterval: true})
	req := &bittorrent.AnnounceRequest{Params: bittorrent.ParamsNone}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var resp bittorrent.AnnounceResponse
		for pb.Next() {
			resp.Interval, resp.MinInterval = 30*time.Minute, 15*time.Minute
			_ = h.HandleAnnounce(context.Background(), req, &resp)
		}
	})
}

// TestBadOptions: every rejected options file in testdata, with the exact
// error the registry gives (the daemon puts the entry's key and the line in
// front: prehooks[0].options...).
func TestBadOptions(t *testing.T) {
	configtest.BadHookOptions(t, Name, []configtest.Case{
		{File: "bad-no-options.yaml", Want: `options.modify_response_probability: must be > 0 and <= 1, got 0`},
		{File: "bad-probability-above-one.yaml", Want: `options.modify_response_probability: must be > 0 and <= 1, got 1.5`},
		{File: "bad-negative-probability.yaml", Want: `options.modify_response_probability: must be > 0 and <= 1, got -0.1`},
		{File: "bad-nan-probability.yaml", Want: `options.modify_response_probability: must be > 0 and <= 1, got NaN`},
		{File: "bad-zero-delta.yaml", Want: `options.max_increase_delta: must be > 0 (seconds), got 0`},
		{File: "bad-negative-delta.yaml", Want: `options.max_increase_delta: must be > 0 (seconds), got -3`},
		{File: "bad-unknown-key.yaml", Want: `line 3: unknown key "max_increase" in options (interval variation)`},
		{File: "bad-probability-type.yaml", Want: "line 1: options.modify_response_probability: cannot unmarshal !!str `often` into a number"},
		{File: "bad-delta-duration.yaml", Want: "line 3: options.max_increase_delta: cannot unmarshal !!str `1m` into an integer"},
	})
}
