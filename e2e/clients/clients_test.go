package clients

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chihaya/chihaya/internal/prereq"
	"github.com/chihaya/chihaya/internal/proctest"
)

// clientTimeout bounds every client process that can bound itself; the
// test's context and cleanup kill the others.
const clientTimeout = 150 * time.Second

// client starts a BitTorrent client on swarm s, seeding the payload from a
// fresh directory or downloading it into one, and returns the process and
// that directory. DHT, PEX, local peer discovery, UPnP and NAT-PMP are off
// in every client: the tracker is the only way peers can meet.
type client func(t *testing.T, ctx context.Context, s *swarm, seed bool) (*proctest.Proc, string)

var clients = map[string]client{
	"libtorrent":   libtorrent,
	"aria2":        aria2,
	"transmission": transmission,
	"qbittorrent":  qbittorrent,
}

// installed checks, before a test starts anything, that a client can run;
// it skips the test, or fails it under CI=true.
var installed = map[string]func(t *testing.T){
	"libtorrent":   func(t *testing.T) { t.Helper(); prereq.LibtorrentPython(t) },
	"aria2":        func(t *testing.T) { t.Helper(); prereq.Program(t, "aria2c", "aria2") },
	"transmission": func(t *testing.T) { t.Helper(); prereq.Program(t, "transmission-cli", "transmission-cli") },
	"qbittorrent":  func(t *testing.T) { t.Helper(); prereq.Program(t, "qbittorrent-nox", "qbittorrent-nox") },
}

func role(seed bool) string {
	if seed {
		return "seed"
	}
	return "download"
}

// clientDir is the data directory of a client in its role.
func clientDir(t *testing.T, s *swarm, name string, seed bool) string {
	t.Helper()
	if seed {
		return s.seedDir(t, name)
	}
	return s.downloadDir(t, name)
}

// libtorrent runs testdata/ltclient.py.
func libtorrent(t *testing.T, ctx context.Context, s *swarm, seed bool) (*proctest.Proc, string) {
	t.Helper()
	dir := clientDir(t, s, "libtorrent", seed)
	cmd := prereq.LibtorrentScript(t, ctx, filepath.Join("testdata", "ltclient.py"),
		"--mode", role(seed), "--torrent", s.torrent, "--save", dir,
		"--listen", s.tr.host, "--timeout", strconv.Itoa(int(clientTimeout.Seconds())))
	return proctest.Start(t, "libtorrent-"+role(seed), s.logs, cmd), dir
}

// aria2 speaks UDP trackers only with its DHT on, so with DHT off it is an
// HTTP-only client.
func aria2(t *testing.T, ctx context.Context, s *swarm, seed bool) (*proctest.Proc, string) {
	t.Helper()
	bin := prereq.Program(t, "aria2c", "aria2")
	if s.transport != "http" {
		t.Fatalf("aria2 with DHT off announces over HTTP only, not %s", s.transport)
	}
	dir := clientDir(t, s, "aria2", seed)
	args := []string{
		"--no-conf",
		"--dir=" + dir,
		"--enable-dht=false", "--enable-dht6=false",
		"--enable-peer-exchange=false", "--bt-enable-lpd=false",
		"--interface=" + s.tr.host,
		"--listen-port=" + strconv.Itoa(freePort(t, s.tr.host)),
		"--disable-ipv6=" + strconv.FormatBool(!strings.Contains(s.tr.host, ":")),
		// Seed until killed, so that the swarm keeps the peer while the
		// test scrapes; --stop bounds the process should the test die.
		"--seed-ratio=0.0",
		"--stop=" + strconv.Itoa(int(clientTimeout.Seconds())),
		// A seeder checks its data instead of downloading it again.
		"--check-integrity=" + strconv.FormatBool(seed),
		"--file-allocation=none",
		"--bt-save-metadata=false",
		"--summary-interval=0",
		"--console-log-level=notice",
		"--enable-color=false",
		s.torrent,
	}
	return proctest.Start(t, "aria2-"+role(seed), s.logs, exec.CommandContext(ctx, bin, args...)), dir
}

// transmissionSettings turns off every peer source but the tracker, and
// the RPC server the CLI does not need.
const transmissionSettings = `{
  "dht-enabled": false,
  "pex-enabled": false,
  "lpd-enabled": false,
  "utp-enabled": false,
  "port-forwarding-enabled": false,
  "rpc-enabled": false,
  "blocklist-enabled": false,
  "bind-address-ipv4": "127.0.0.1",
  "bind-address-ipv6": "::1",
  "peer-port": %d,
  "peer-port-random-on-start": false,
  "download-dir": %q,
  "incomplete-dir-enabled": false,
  "watch-dir-enabled": false,
  "ratio-limit-enabled": false,
  "idle-seeding-limit-enabled": false,
  "speed-limit-up-enabled": false,
  "message-level": 2
}
`

// transmission runs transmission-cli. Transmission 3.00 does not connect
// to tracker-given peers in 127.0.0.0/8, so on loopback it can seed only.
//
// transmission-cli quits as soon as it sees its torrent stopped, and a new
// torrent passes through "stopped" on its way into verification: under
// load the CLI sometimes sees that moment and exits at once. Such a start
// is retried, with a fresh profile, before the test goes on.
func transmission(t *testing.T, ctx context.Context, s *swarm, seed bool) (*proctest.Proc, string) {
	t.Helper()
	bin := prereq.Program(t, "transmission-cli", "transmission-cli")
	if !seed {
		t.Fatal("transmission-cli cannot download from loopback peers; use it as the seeder")
	}
	dir := clientDir(t, s, "transmission", seed)
	const attempts = 3
	for i := 1; ; i++ {
		cfg := filepath.Join(s.dir, fmt.Sprintf("transmission-config-%d", i))
		if err := os.Mkdir(cfg, 0o755); err != nil {
			t.Fatal(err)
		}
		port := freePort(t, s.tr.host)
		if err := os.WriteFile(filepath.Join(cfg, "settings.json"), []byte(fmt.Sprintf(transmissionSettings, port, dir)), 0o644); err != nil {
			t.Fatal(err)
		}
		// No -v: Transmission verifies a new torrent's data anyway, and a
		// second verification doubles the chance of the early exit.
		cmd := exec.CommandContext(ctx, bin, "-g", cfg, "-w", dir, "-p", strconv.Itoa(port), "-M", s.torrent)
		p := proctest.Start(t, fmt.Sprintf("transmission-%s-%d", role(seed), i), s.logs, cmd)
		if i == attempts {
			return p, dir
		}
		// Its status line says "Seeding" once the data is verified.
		tick := time.NewTicker(100 * time.Millisecond)
		for !p.Exited() && !logContains(p, "Seeding,") && ctx.Err() == nil {
			<-tick.C
		}
		tick.Stop()
		if !p.Exited() {
			return p, dir
		}
		t.Logf("transmission-cli exited (%v) before seeding; starting it again", p.Err())
	}
}

// logContains reports whether the process has written text so far.
func logContains(p *proctest.Proc, text string) bool {
	return strings.Contains(p.Output(), text)
}

// qbittorrentConf is a qBittorrent 4.5 profile: the legal notice accepted
// (or it waits for a keypress), no peer-country lookups (a download from
// the internet), every peer source but the tracker off, TCP only, several
// peers per address allowed (they all live on loopback), and the WebUI on
// a loopback port.
const qbittorrentConf = `[LegalNotice]
Accepted=true

[BitTorrent]
Session\DHTEnabled=false
Session\PeXEnabled=false
Session\LSDEnabled=false
Session\BTProtocol=TCP
Session\MultiConnectionsPerIp=true
Session\SSRFMitigation=false
Session\Interface=lo
Session\InterfaceName=lo
Session\InterfaceAddress=%[1]s
Session\Port=%[2]d
Session\UseRandomPort=false
Session\DefaultSavePath=%[3]s
Session\QueueingSystemEnabled=false

[Network]
PortForwardingEnabled=false

[Preferences]
Connection\ResolvePeerCountries=false
Connection\UPnP=false
General\Locale=en
WebUI\Address=%[1]s
WebUI\Port=%[4]d
WebUI\LocalHostAuth=false
WebUI\UseUPnP=false
`

// qbittorrent runs qbittorrent-nox with its own profile and the torrent on
// its command line.
func qbittorrent(t *testing.T, ctx context.Context, s *swarm, seed bool) (*proctest.Proc, string) {
	t.Helper()
	bin := prereq.Program(t, "qbittorrent-nox", "qbittorrent-nox")
	dir := clientDir(t, s, "qbittorrent", seed)
	profile := filepath.Join(s.dir, "qbittorrent-profile-"+role(seed))
	confDir := filepath.Join(profile, "qBittorrent", "config")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(qbittorrentConf, s.tr.host, freePort(t, s.tr.host), dir, freePort(t, s.tr.host))
	if err := os.WriteFile(filepath.Join(confDir, "qBittorrent.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bin, "--profile="+profile, "--save-path="+dir, s.torrent)
	return proctest.Start(t, "qbittorrent-"+role(seed), s.logs, cmd), dir
}
