package main

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// testConfig is a small workload for runs against the fakes.
func testConfig(mode string, target netip.AddrPort) *runConfig {
	// A quarter second is thousands of requests on loopback, enough for
	// the checks; the full run gives each mode a second.
	d := time.Second
	if testing.Short() {
		d = time.Second / 4
	}
	return &runConfig{
		Mode:   mode,
		Target: target,
		Workload: WorkloadConfig{
			Seed: 7, Torrents: 100, Peers: 20, Zipf: 1, SeederShare: 0.7,
			Events: DefaultEventMix, NumWant: 50,
		},
		Duration: d, Timeout: time.Second,
		Sockets: 2, Inflight: 8, ConnIDLife: time.Minute,
		ScrapeHashes: 10, AnnouncePath: "/announce", ScrapePath: "/scrape",
	}
}

func TestModesAgainstFakes(t *testing.T) {
	udp := startFakeUDP(t, nil)
	web := startFakeHTTP(t, false)
	closing := startFakeHTTP(t, true)
	tests := []struct {
		name   string
		mode   string
		target netip.AddrPort
		tweak  func(*runConfig)
	}{
		{"udp announce, 8 in flight", modeUDPAnnounce, udp.addr(), nil},
		{"udp announce, 128 in flight", modeUDPAnnounce, udp.addr(), func(c *runConfig) { c.Inflight = 128 }},
		{"udp scrape of 10", modeUDPScrape, udp.addr(), nil},
		{"http announce, keep-alive", modeHTTPAnnounce, web.addr(), nil},
		{"http announce, new connection each", modeHTTPAnnounce, web.addr(), func(c *runConfig) { c.NewConn = true }},
		{"http announce, tracker closes each connection", modeHTTPAnnounce, closing.addr(), nil},
		{"http scrape of 10, chunked replies", modeHTTPScrape, web.addr(), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(tt.mode, tt.target)
			if !testing.Short() {
				// go test -race of every package at once can starve
				// the generator and the fake for a second (udp scrape
				// of 10 once had no response within its one second in
				// CI): more time to run, and to wait for a reply,
				// than a busy machine takes.
				cfg.Duration, cfg.Timeout = 2*time.Second, 5*time.Second
			}
			if tt.tweak != nil {
				tt.tweak(cfg)
			}
			r, err := run(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if r.Responses == 0 || r.ResponsesPS <= 0 {
				t.Errorf("got %d responses (%.0f/s), want some", r.Responses, r.ResponsesPS)
			}
			if r.ErrorsTotal != 0 {
				t.Errorf("got errors %v, want none", r.Errors)
			}
			if r.LatencyMicro.P50 <= 0 || r.LatencyMicro.P50 > r.LatencyMicro.P99 || r.LatencyMicro.P99 > r.LatencyMicro.Max {
				t.Errorf("latency percentiles out of order: %+v", r.LatencyMicro)
			}
			if r.CPUUser+r.CPUSys <= 0 {
				t.Errorf("generator CPU not measured: %+v", r)
			}
		})
	}
	if web.badQuery != 0 || closing.badQuery != 0 {
		t.Errorf("the HTTP fake could not read %d requests", web.badQuery+closing.badQuery)
	}
	if web.scrapes > 0 && web.hashes != 10*web.scrapes {
		t.Errorf("HTTP scrapes carried %d hashes in %d requests, want 10 each", web.hashes, web.scrapes)
	}
}

func TestCountBoundsTheRun(t *testing.T) {
	udp := startFakeUDP(t, nil)
	web := startFakeHTTP(t, false)
	tests := []struct {
		name   string
		mode   string
		target netip.AddrPort
	}{
		{"udp announce", modeUDPAnnounce, udp.addr()},
		{"udp scrape", modeUDPScrape, udp.addr()},
		{"http announce", modeHTTPAnnounce, web.addr()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(tt.mode, tt.target)
			cfg.Count, cfg.Duration = 101, time.Minute
			r, err := run(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if r.Responses != 101 {
				t.Errorf("got %d responses, want exactly --count 101", r.Responses)
			}
		})
	}
}

func TestUDPAnnouncesFollowTheWorkload(t *testing.T) {
	udp := startFakeUDP(t, nil)
	cfg := testConfig(modeUDPAnnounce, udp.addr())
	cfg.Count, cfg.Duration = 5000, time.Minute
	if _, err := run(cfg); err != nil {
		t.Fatal(err)
	}
	udp.mu.Lock()
	defer udp.mu.Unlock()
	share := func(n int) float64 { return float64(n) / float64(udp.announces) }
	if s := share(udp.events[uint32(EventStarted)]); s < 0.07 || s > 0.13 {
		t.Errorf("started share %.3f, want about 0.10", s)
	}
	if s := share(udp.events[uint32(EventStopped)]); s < 0.03 || s > 0.07 {
		t.Errorf("stopped share %.3f, want about 0.05", s)
	}
	// Completed announces report nothing left, so seeders are 70 % of
	// the rest plus the completed ones.
	if s := share(udp.seeders); s < 0.66 || s > 0.77 {
		t.Errorf("seeder share %.3f, want about 0.71", s)
	}
	if len(udp.peers) > cfg.Workload.Torrents*cfg.Workload.Peers {
		t.Errorf("%d distinct peers, more than the pools hold (%d)", len(udp.peers), cfg.Workload.Torrents*cfg.Workload.Peers)
	}
}

func TestUDPConnectionIDsAreRenewed(t *testing.T) {
	udp := startFakeUDP(t, nil)
	cfg := testConfig(modeUDPAnnounce, udp.addr())
	cfg.Count, cfg.Duration, cfg.Sockets = 200, time.Minute, 1
	cfg.ConnIDLife = time.Nanosecond // every round asks for a new one
	r, err := run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if r.Connects < 2 {
		t.Errorf("got %d connects, want a renewal after --conn-id-life", r.Connects)
	}
	if r.Responses != 200 || r.ErrorsTotal != 0 {
		t.Errorf("got %d responses and errors %v while renewing, want 200 and none", r.Responses, r.Errors)
	}

	cfg.ConnIDLife = time.Minute
	udp2 := startFakeUDP(t, nil)
	cfg.Target = udp2.addr()
	if r, err = run(cfg); err != nil {
		t.Fatal(err)
	}
	if r.Connects != 1 {
		t.Errorf("got %d connects within a minute, want the first reused: 1", r.Connects)
	}
}

func TestFailuresAreCountedByKind(t *testing.T) {
	tests := []struct {
		name      string
		configure func(*fakeUDP)
		kind      string
	}{
		{"no reply is a timeout", func(f *fakeUDP) { f.silent = true }, "timeout"},
		{"error packet is a tracker error", func(f *fakeUDP) { f.refuse = true }, "tracker_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			udp := startFakeUDP(t, tt.configure)
			cfg := testConfig(modeUDPAnnounce, udp.addr())
			cfg.Count, cfg.Duration, cfg.Timeout, cfg.Sockets = 10, time.Minute, 20*time.Millisecond, 1
			r, err := run(cfg)
			if err == nil || !strings.Contains(err.Error(), "no successful response") {
				t.Errorf("got error %v, want no successful response", err)
			}
			if r.Errors[tt.kind] != 10 {
				t.Errorf("got errors %v, want %s=10", r.Errors, tt.kind)
			}
		})
	}
}

func TestFillAcknowledgesEveryPeer(t *testing.T) {
	tests := []struct {
		name      string
		dropEvery int
	}{
		{"reliable tracker", 0},
		{"tracker drops every 7th announce", 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			udp := startFakeUDP(t, func(f *fakeUDP) { f.dropEvery = tt.dropEvery })
			cfg := testConfig(modeFill, udp.addr())
			cfg.Workload.Torrents, cfg.Workload.Peers = 50, 30
			cfg.Duration, cfg.Timeout = time.Minute, 50*time.Millisecond
			r, err := run(cfg)
			if err != nil {
				t.Fatal(err)
			}
			want := 50 * 30
			if r.FillWanted != uint64(want) || r.FillAcked != uint64(want) {
				t.Errorf("filled %d of %d, want %d of %d", r.FillAcked, r.FillWanted, want, want)
			}
			if got := udp.distinctPeers(); got != want {
				t.Errorf("tracker saw %d distinct peers, want %d", got, want)
			}
			if tt.dropEvery > 0 && r.Errors["timeout"] == 0 {
				t.Errorf("dropped announces were not counted as timeouts: %v", r.Errors)
			}
		})
	}
}

func TestCLIOutputsHumanAndJSONLines(t *testing.T) {
	udp := startFakeUDP(t, nil)
	var out bytes.Buffer
	root := newRootCmd(&out)
	root.SetArgs([]string{"udp-scrape", "--target", udp.addr().String(), "--count", "50", "--torrents", "100", "--label", "fake"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want a human line and a JSON line:\n%s", len(lines), out.String())
	}
	if !strings.HasPrefix(lines[0], "udp-scrape "+udp.addr().String()+" [fake]: ") || !strings.Contains(lines[0], "resp/s") {
		t.Errorf("human line = %q", lines[0])
	}
	var r Result
	if err := json.Unmarshal([]byte(lines[1]), &r); err != nil {
		t.Fatalf("JSON line: %v", err)
	}
	if r.Mode != "udp-scrape" || r.Label != "fake" || r.Responses != 50 || r.Torrents != 100 {
		t.Errorf("JSON result = %+v", r)
	}
}

func TestFillReportsRefusedPeers(t *testing.T) {
	udp := startFakeUDP(t, func(f *fakeUDP) { f.refuse = true })
	cfg := testConfig(modeFill, udp.addr())
	cfg.Workload.Torrents, cfg.Workload.Peers = 10, 10
	cfg.Duration = time.Minute
	r, err := run(cfg)
	if err == nil || !strings.Contains(err.Error(), "fill: acknowledged 0 of 100 peers") {
		t.Errorf("got error %v, want the fill reported incomplete", err)
	}
	if r.Errors["tracker_error"] != 100 {
		t.Errorf("got errors %v, want tracker_error=100 (each refused peer once, not retried)", r.Errors)
	}
}
