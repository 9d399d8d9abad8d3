package clients

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chihaya/chihaya/frontend/frontendtest"
	"github.com/chihaya/chihaya/internal/daemontest"
	"github.com/chihaya/chihaya/internal/prereq"
	"github.com/chihaya/chihaya/internal/proctest"
)

func TestMain(m *testing.M) { daemontest.Main(m) }

// tracker is a running tracker with an HTTP and a UDP listener on host.
type tracker struct {
	host     string // 127.0.0.1 or ::1
	httpAddr string // host:port as the tracker reports it
	udpAddr  string
	// allow admits an info hash where the tracker needs it (opentracker's
	// whitelist); nil when every torrent is welcome.
	allow func(t *testing.T, ih [20]byte)
}

// announceURL is the URL a torrent carries for transport "http" or "udp".
func (tr *tracker) announceURL(transport string) string {
	if transport == "udp" {
		return "udp://" + tr.udpAddr + "/announce"
	}
	return "http://" + tr.httpAddr + "/announce"
}

// startTracker starts the tracker under test listening on host.
func startTracker(t *testing.T, host string) *tracker {
	t.Helper()
	if testing.Short() {
		t.Skip("real BitTorrent clients: not in -short mode")
	}
	if strings.Contains(host, ":") {
		// Not a missing client but a machine without IPv6 (some
		// containers): skipped even in CI.
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			t.Skipf("no IPv6 loopback here: %v", err)
		}
		l.Close()
	}
	if os.Getenv("E2E_TRACKER") == "opentracker" {
		return startOpentracker(t, host)
	}
	return startChihaya(t, host)
}

// chihayaConfig is an upstream-shaped configuration with both frontends on
// free loopback ports. The announce interval is long so that no client
// re-announces during a test: every announce the tracker sees is one the
// test caused.
const chihayaConfig = `chihaya:
  announce_interval: 30m
  min_announce_interval: 15m
  http:
    addr: "%[1]s"
    read_timeout: 5s
    write_timeout: 5s
    enable_keepalive: false
    announce_routes: ["/announce"]
    scrape_routes: ["/scrape"]
    max_numwant: 50
    default_numwant: 50
    max_scrape_infohashes: 50
  udp:
    addr: "%[1]s"
    max_clock_skew: 10s
    max_numwant: 50
    default_numwant: 50
    max_scrape_infohashes: 50
  storage:
    name: memory
    config:
      gc_interval: 3m
      peer_lifetime: 31m
      shard_count: 16
      prometheus_reporting_interval: 1s
`

func startChihaya(t *testing.T, host string) *tracker {
	t.Helper()
	return startChihayaWith(t, host, "")
}

// startChihayaWith starts our daemon with extra YAML (indented under
// `chihaya:`, e.g. a prehooks list) appended to chihayaConfig. When the
// test ends it is stopped the way an operator would, and must exit
// cleanly without a data race (daemontest).
func startChihayaWith(t *testing.T, host, extra string) *tracker {
	t.Helper()
	d := daemontest.Start(t, fmt.Sprintf(chihayaConfig, net.JoinHostPort(host, "0"))+extra)
	return &tracker{host: host, httpAddr: d.Addr(t, "http"), udpAddr: d.Addr(t, "udp")}
}

// startOpentracker starts Debian's opentracker, whose build only serves
// whitelisted torrents. It takes fixed ports only, so the test picks free
// ones.
func startOpentracker(t *testing.T, host string) *tracker {
	t.Helper()
	if strings.Contains(host, ":") {
		t.Skip("E2E_TRACKER=opentracker: Debian's opentracker is built for IPv4 only")
	}
	bin := prereq.Program(t, "opentracker", "opentracker")
	dir := t.TempDir()
	port := freePort(t, host)
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	whitelist := filepath.Join(dir, "whitelist")
	if err := os.WriteFile(whitelist, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// opentracker chroots to its rootdir when it can, so the whitelist is
	// named from there.
	conf := fmt.Sprintf("listen.tcp %[1]s\nlisten.udp %[1]s\naccess.whitelist /whitelist\ntracker.rootdir %[2]s\n", addr, dir)
	if err := os.WriteFile(filepath.Join(dir, "opentracker.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p := proctest.Start(t, "opentracker", dir, exec.Command(bin, "-f", filepath.Join(dir, "opentracker.conf")))
	tr := &tracker{host: host, httpAddr: addr, udpAddr: addr}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	waitFor(t, ctx, "opentracker listens", func() (bool, string) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false, err.Error()
		}
		c.Close()
		return true, ""
	}, p)
	tr.allow = func(t *testing.T, ih [20]byte) {
		t.Helper()
		if err := os.WriteFile(whitelist, []byte(hex.EncodeToString(ih[:])+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_ = p.Signal(syscall.SIGHUP)
		// Once a stopped announce is no longer refused, the reload is done.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		waitFor(t, ctx, "opentracker reloads its whitelist", func() (bool, string) {
			u := "http://" + addr + "/announce?info_hash=" + frontendtest.EscapeBytes(ih[:]) +
				"&peer_id=-E2E000-000000000000&port=1&left=0&event=stopped"
			b, err := httpGet(u)
			if err != nil {
				return false, err.Error()
			}
			return !bytes.Contains(b, []byte("failure reason")), string(b)
		}, p)
	}
	return tr
}

// counts are one torrent's numbers in a scrape.
type counts struct {
	Complete, Incomplete, Downloaded int64
}

func (c counts) String() string {
	return fmt.Sprintf("complete=%d incomplete=%d downloaded=%d", c.Complete, c.Incomplete, c.Downloaded)
}

// scrape asks the tracker's HTTP scrape for ih. A torrent the tracker does
// not list counts as zeros.
func (tr *tracker) scrape(ih [20]byte) (counts, error) {
	b, err := httpGet("http://" + tr.httpAddr + "/scrape?info_hash=" + frontendtest.EscapeBytes(ih[:]))
	if err != nil {
		return counts{}, err
	}
	v, err := frontendtest.DecodeBencode(b)
	if err != nil {
		return counts{}, fmt.Errorf("scrape reply %q: %w", b, err)
	}
	top, ok := v.(map[string]any)
	if !ok {
		return counts{}, fmt.Errorf("scrape reply %q: not a dictionary", b)
	}
	if reason, ok := top["failure reason"]; ok {
		return counts{}, fmt.Errorf("scrape failed: %s", reason)
	}
	files, ok := top["files"].(map[string]any)
	if !ok {
		return counts{}, fmt.Errorf("scrape reply %q: no files dictionary", b)
	}
	entry, ok := files[string(ih[:])].(map[string]any)
	if !ok {
		return counts{}, nil
	}
	var c counts
	for key, dst := range map[string]*int64{"complete": &c.Complete, "incomplete": &c.Incomplete, "downloaded": &c.Downloaded} {
		n, ok := entry[key].(int64)
		if !ok {
			return counts{}, fmt.Errorf("scrape reply %q: %s is not an integer", b, key)
		}
		*dst = n
	}
	return c, nil
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

func httpGet(url string) ([]byte, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return b, fmt.Errorf("GET %s: %s: %q", url, resp.Status, b)
	}
	return b, nil
}

// infoSpan returns the raw bytes of a torrent's info dictionary, whose
// SHA-1 is the torrent's v1 info hash.
func infoSpan(torrent []byte) ([]byte, error) {
	if len(torrent) == 0 || torrent[0] != 'd' {
		return nil, errors.New("torrent: not a dictionary")
	}
	for i := 1; i < len(torrent) && torrent[i] != 'e'; {
		k, n, err := frontendtest.DecodeBencodePrefix(torrent[i:])
		if err != nil {
			return nil, err
		}
		_, m, err := frontendtest.DecodeBencodePrefix(torrent[i+n:])
		if err != nil {
			return nil, err
		}
		if k == "info" {
			return torrent[i+n : i+n+m], nil
		}
		i += n + m
	}
	return nil, errors.New("torrent: no info dictionary")
}
