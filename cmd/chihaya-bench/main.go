// Command chihaya-bench is a load generator for BitTorrent trackers. It
// drives any tracker (ours, opentracker, aquatic…) over UDP or HTTP with a
// reproducible workload: many torrents of skewed popularity, a pool of
// peers per torrent, mostly seeders, a realistic mix of events. It only
// ever sends to loopback addresses.
//
// Each run prints one human-readable line and one JSON line: responses per
// second, latency percentiles, errors by kind and the generator's own CPU
// use, so that a run whose generator was the bottleneck shows it.
package main

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// The modes, named as the subcommands.
const (
	modeUDPAnnounce  = "udp-announce"
	modeUDPScrape    = "udp-scrape"
	modeHTTPAnnounce = "http-announce"
	modeHTTPScrape   = "http-scrape"
	// modeHTTPIdle opens --conns keep-alive connections, announces once on
	// each, and holds them open until --duration ends: the tracker's
	// memory per idle connection is its RSS growth over the connections.
	modeHTTPIdle = "http-idle"
	modeFill     = "fill"
)

// maxWSConns bounds --conns of ws-announce: enough to measure a tracker's
// memory per idle connection.
const maxWSConns = 20000

// runConfig is everything one run needs, validated.
type runConfig struct {
	Mode   string
	Label  string
	Target netip.AddrPort
	// Target2, when valid, is a second tracker instance (WebSocket modes):
	// the odd-numbered connections go there.
	Target2  netip.AddrPort
	Workload WorkloadConfig

	Duration time.Duration
	// Count bounds the requests issued, across all sockets; 0 leaves only
	// Duration.
	Count   uint64
	Timeout time.Duration

	// Sockets is the number of UDP sockets, or of HTTP connections.
	Sockets int
	// Inflight is the number of UDP requests outstanding per socket.
	Inflight   int
	ConnIDLife time.Duration

	ScrapeHashes int

	NewConn      bool
	AnnouncePath string
	ScrapePath   string

	FillNumWant int
	// FillRoundRobin announces peer 0 of every torrent, then peer 1 of
	// every torrent, and so on, as a freshly started tracker sees its
	// clients come back; without it a fill goes torrent by torrent.
	FillRoundRobin bool

	// Offers is the number of offers in each WebSocket announce.
	Offers int
}

// budget is how many requests socket i of c.Sockets issues: its share of
// Count (the first Count%Sockets one more), or no bound without Count.
func (c *runConfig) budget(i int) uint64 {
	if c.Count == 0 {
		return ^uint64(0)
	}
	n := c.Count / uint64(c.Sockets)
	if uint64(i) < c.Count%uint64(c.Sockets) {
		n++
	}
	return n
}

// maxInflight keeps a slot index within the transaction ID's low 10 bits.
const maxInflight = 1024

func (c *runConfig) validate() error {
	switch {
	case c.Duration <= 0:
		return fmt.Errorf("--duration: must be > 0, got %s", c.Duration)
	case c.Timeout <= 0:
		return fmt.Errorf("--timeout: must be > 0, got %s", c.Timeout)
	case isWS(c.Mode) && (c.Sockets < 1 || c.Sockets > maxWSConns):
		return fmt.Errorf("--conns: must be in 1..%d, got %d", maxWSConns, c.Sockets)
	case isWS(c.Mode) && (c.Offers < 0 || c.Offers > 10):
		return fmt.Errorf("--offers: must be in 0..10, got %d", c.Offers)
	case c.Mode == modeHTTPIdle && (c.Sockets < 1 || c.Sockets > maxWSConns):
		return fmt.Errorf("--conns: must be in 1..%d, got %d", maxWSConns, c.Sockets)
	case !isWS(c.Mode) && c.Mode != modeHTTPIdle && (c.Sockets < 1 || c.Sockets > 1024):
		return fmt.Errorf("--sockets/--conns: must be in 1..1024, got %d", c.Sockets)
	case c.Inflight < 1 || c.Inflight > maxInflight:
		return fmt.Errorf("--inflight: must be in 1..%d, got %d", maxInflight, c.Inflight)
	case c.ConnIDLife <= 0:
		return fmt.Errorf("--conn-id-life: must be > 0, got %s", c.ConnIDLife)
	case c.ScrapeHashes < 1 || c.ScrapeHashes > maxScrapeHashes:
		return fmt.Errorf("--hashes: must be in 1..%d, got %d", maxScrapeHashes, c.ScrapeHashes)
	case !strings.HasPrefix(c.AnnouncePath, "/"):
		return fmt.Errorf("--announce-path: must start with /, got %q", c.AnnouncePath)
	case !strings.HasPrefix(c.ScrapePath, "/"):
		return fmt.Errorf("--scrape-path: must start with /, got %q", c.ScrapePath)
	case c.FillNumWant < -1:
		return fmt.Errorf("--fill-numwant: must be >= -1, got %d", c.FillNumWant)
	}
	return c.Workload.Validate()
}

// run runs one mode and returns its result. An error means the run could
// not take place, or (fill) did not acknowledge every peer; the result is
// still filled in when the run took place.
func run(cfg *runConfig) (Result, error) {
	if err := cfg.validate(); err != nil {
		return Result{}, err
	}
	wl, err := NewWorkload(cfg.Workload)
	if err != nil {
		return Result{}, err
	}
	var r Result
	switch cfg.Mode {
	case modeUDPAnnounce, modeUDPScrape, modeFill:
		r, err = runUDP(cfg, wl)
	case modeHTTPAnnounce, modeHTTPScrape, modeHTTPIdle:
		r, err = runHTTP(cfg, wl)
	case modeWSAnnounce, modeWSIdle:
		r, err = runWebSocket(cfg, wl)
	default:
		return Result{}, fmt.Errorf("unknown mode %q", cfg.Mode)
	}
	if err != nil {
		return r, err
	}
	switch {
	case cfg.Mode == modeFill && r.FillAcked < r.FillWanted:
		return r, fmt.Errorf("fill: acknowledged %d of %d peers within --duration %s", r.FillAcked, r.FillWanted, cfg.Duration)
	case r.Responses == 0:
		return r, fmt.Errorf("%s: no successful response from %s", cfg.Mode, cfg.Target)
	}
	return r, nil
}

func main() {
	if err := newRootCmd(os.Stdout).Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "chihaya-bench:", err)
		os.Exit(1)
	}
}

// flags holds the raw flag values of a run command.
type flags struct {
	target  string
	target2 string
	events  string
	profile string
	cfg     runConfig
}

func newRootCmd(stdout io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "chihaya-bench",
		Short: "Load generator for BitTorrent trackers (loopback only)",
		Long: "chihaya-bench drives a BitTorrent tracker on this machine with a reproducible\n" +
			"workload and reports responses/s, latency percentiles, errors and its own CPU use.\n" +
			"It refuses any target outside 127.0.0.0/8 and ::1.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	modes := []struct {
		mode, short string
		duration    time.Duration
	}{
		{modeUDPAnnounce, "UDP announces (BEP 15), many in flight per socket", 10 * time.Second},
		{modeUDPScrape, "UDP scrapes of --hashes torrents each", 10 * time.Second},
		{modeHTTPAnnounce, "HTTP announces, keep-alive unless --new-conn", 10 * time.Second},
		{modeHTTPScrape, "HTTP scrapes of --hashes torrents each", 10 * time.Second},
		{modeHTTPIdle, "open --conns keep-alive HTTP connections, announce once on each, hold them until --duration ends (memory per idle connection)", 30 * time.Second},
		{modeWSAnnounce, "WebTorrent announces over WebSocket with --offers offers each, answering the offers relayed", 10 * time.Second},
		{modeWSIdle, "open --conns WebSocket connections, announce once on each, hold them until --duration ends (memory per idle connection)", 30 * time.Second},
		{modeFill, "announce exactly --torrents × --peers peers over UDP, retrying until each is acknowledged", 10 * time.Minute},
	}
	for _, m := range modes {
		root.AddCommand(newRunCmd(m.mode, m.short, m.duration))
	}
	root.AddCommand(newHashesCmd(), newFreePortCmd())
	return root
}

func newRunCmd(mode, short string, duration time.Duration) *cobra.Command {
	f := &flags{}
	cmd := &cobra.Command{
		Use:   mode + " --target HOST:PORT",
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.runConfig(mode)
			if err != nil {
				return err
			}
			if f.profile != "" {
				pf, err := os.Create(f.profile)
				if err != nil {
					return err
				}
				defer pf.Close()
				if err := pprof.StartCPUProfile(pf); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			r, runErr := run(cfg)
			if r.Mode != "" {
				if err := r.Write(cmd.OutOrStdout()); err != nil {
					return err
				}
			}
			return runErr
		},
	}
	addWorkloadFlags(cmd, &f.cfg.Workload, &f.events)
	fs := cmd.Flags()
	fs.StringVar(&f.target, "target", "", "tracker address, host:port (loopback only)")
	fs.StringVar(&f.cfg.Label, "label", "", "name of the tracker, copied to the result")
	fs.DurationVar(&f.cfg.Duration, "duration", duration, "stop after this long")
	fs.Uint64Var(&f.cfg.Count, "count", 0, "stop after this many requests (0: only --duration bounds the run)")
	fs.DurationVar(&f.cfg.Timeout, "timeout", 2*time.Second, "a request without a reply after this long counts as a timeout")
	fs.IntVar(&f.cfg.ScrapeHashes, "hashes", 10, "info hashes per scrape")
	fs.StringVar(&f.profile, "cpuprofile", "", "write the generator's own CPU profile to this file")
	if isWS(mode) {
		fs.IntVar(&f.cfg.Sockets, "conns", 100, "WebSocket connections (browsers), each in one swarm: connection i in torrent i mod --torrents")
		if mode == modeWSAnnounce {
			fs.IntVar(&f.cfg.Offers, "offers", 5, "offers per announce (WebTorrent sends 5)")
		}
		fs.StringVar(&f.cfg.AnnouncePath, "path", "/announce", "URL path of the WebSocket")
		fs.StringVar(&f.target2, "target2", "", "a second instance of the tracker, sharing the first's store: odd-numbered connections go there, so that offers and answers cross instances (loopback only)")
		f.cfg.Inflight, f.cfg.ConnIDLife, f.cfg.ScrapePath = 1, time.Minute, "/scrape"
		// Swarms of 10 connections by default, so that offers find peers.
		t := fs.Lookup("torrents")
		_ = t.Value.Set("10")
		t.DefValue = "10"
	} else if strings.HasPrefix(mode, "http") {
		fs.IntVar(&f.cfg.Sockets, "conns", 16, "concurrent HTTP connections, one request in flight each")
		fs.BoolVar(&f.cfg.NewConn, "new-conn", false, "open a new connection for every request")
		fs.StringVar(&f.cfg.AnnouncePath, "announce-path", "/announce", "announce URL path")
		fs.StringVar(&f.cfg.ScrapePath, "scrape-path", "/scrape", "scrape URL path")
		f.cfg.Inflight, f.cfg.ConnIDLife = 1, time.Minute
	} else {
		fs.IntVar(&f.cfg.Sockets, "sockets", 4, "UDP sockets, each driven by its own goroutine")
		fs.IntVar(&f.cfg.Inflight, "inflight", 8, "UDP requests in flight per socket")
		fs.DurationVar(&f.cfg.ConnIDLife, "conn-id-life", time.Minute, "reuse a UDP connection ID this long, as clients do")
		f.cfg.AnnouncePath, f.cfg.ScrapePath = "/announce", "/scrape"
	}
	if mode == modeFill {
		fs.IntVar(&f.cfg.FillNumWant, "fill-numwant", 0, "numwant of fill announces (few peers back keeps the fill quick)")
		fs.BoolVar(&f.cfg.FillRoundRobin, "round-robin", false, "fill peer 0 of every torrent, then peer 1, …, as clients come back to a restarted tracker (default: torrent by torrent)")
	}
	_ = cmd.MarkFlagRequired("target")
	return cmd
}

func addWorkloadFlags(cmd *cobra.Command, wc *WorkloadConfig, events *string) {
	fs := cmd.Flags()
	fs.Uint64Var(&wc.Seed, "seed", 1, "seed of the workload: the same seed gives the same hashes and requests")
	fs.IntVar(&wc.Torrents, "torrents", 10000, "number of torrents")
	fs.IntVar(&wc.Peers, "peers", 200, "peers in each torrent's pool (fill: peers announced per torrent)")
	fs.Float64Var(&wc.Zipf, "zipf", 1.0, "Zipf exponent of torrent popularity (0: uniform)")
	fs.Float64Var(&wc.SeederShare, "seeders", 0.7, "share of each pool's peers that are seeders")
	fs.StringVar(events, "events", "10,80,5,5", "shares of started,regular,completed,stopped announces")
	fs.IntVar(&wc.NumWant, "numwant", 50, "numwant of each announce (-1: the tracker's default)")
}

func (f *flags) runConfig(mode string) (*runConfig, error) {
	cfg := f.cfg
	cfg.Mode = mode
	target, err := loopbackTarget(f.target)
	if err != nil {
		return nil, err
	}
	cfg.Target = target
	if f.target2 != "" {
		if cfg.Target2, err = loopbackTarget(f.target2); err != nil {
			return nil, errors.New("--target2" + strings.TrimPrefix(err.Error(), "--target"))
		}
	}
	if cfg.Workload.Events, err = parseEventMix(f.events); err != nil {
		return nil, err
	}
	return &cfg, cfg.validate()
}

// parseEventMix reads "started,regular,completed,stopped" shares.
func parseEventMix(s string) (EventMix, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 4 {
		return EventMix{}, fmt.Errorf("--events: want 4 shares started,regular,completed,stopped, got %q", s)
	}
	var v [4]uint32
	for i, p := range parts {
		n, err := strconv.ParseUint(strings.TrimSpace(p), 10, 16)
		if err != nil {
			return EventMix{}, fmt.Errorf("--events: share %q: must be a whole number in 0..65535", p)
		}
		v[i] = uint32(n)
	}
	return EventMix{Started: v[0], Regular: v[1], Completed: v[2], Stopped: v[3]}, nil
}

func newHashesCmd() *cobra.Command {
	var wc WorkloadConfig
	cmd := &cobra.Command{
		Use:   "hashes",
		Short: "print the workload's info hashes, one hex hash a line (e.g. for opentracker's whitelist)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if wc.Torrents <= 0 {
				return fmt.Errorf("--torrents: must be > 0, got %d", wc.Torrents)
			}
			w := bufio.NewWriter(cmd.OutOrStdout())
			var line [41]byte
			line[40] = '\n'
			for _, h := range workloadHashes(wc.Seed, wc.Torrents) {
				hex.Encode(line[:40], h[:])
				if _, err := w.Write(line[:]); err != nil {
					return err
				}
			}
			return w.Flush()
		},
	}
	cmd.Flags().Uint64Var(&wc.Seed, "seed", 1, "seed of the workload")
	cmd.Flags().IntVar(&wc.Torrents, "torrents", 10000, "number of torrents")
	return cmd
}

func newFreePortCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "freeport",
		Short: "print a port of 127.0.0.1 that is free for both TCP and UDP (for trackers that cannot listen on port 0)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			port, err := freePort()
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), port)
			return err
		},
	}
}

// freePort asks the kernel for a free TCP port and checks that UDP has it
// free too.
func freePort() (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err == nil {
			u.Close()
			return port, nil
		}
	}
	return 0, errors.New("freeport: no port free for both TCP and UDP after 20 tries")
}

// isWS reports whether mode drives a WebSocket (WebTorrent) tracker.
func isWS(mode string) bool { return mode == modeWSAnnounce || mode == modeWSIdle }
