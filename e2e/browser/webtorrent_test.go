// Package browser holds the tests that drive real browsers: Debian's
// chromium, headless, through playwright-core (npm, installed by
// scripts/test.sh with npm ci --ignore-scripts into node_modules here).
package browser

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chihaya/chihaya/internal/daemontest"
	"github.com/chihaya/chihaya/internal/prereq"
	"github.com/chihaya/chihaya/storage/redis/redistest"
)

func TestMain(m *testing.M) { daemontest.Main(m) }

// need finds what a browser test needs, failing the test under CI=true
// (scripts/test.sh installs all of it) and skipping it elsewhere.
func need(t *testing.T, what, path string) {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		return
	}
	if _, err := exec.LookPath(path); err == nil {
		return
	}
	if prereq.InCI() {
		t.Fatalf("%s (%s) is missing; scripts/test.sh installs it", what, path)
	}
	t.Skipf("%s (%s) is missing; scripts/test.sh installs it", what, path)
}

// The namespace the browsers run in: Chromium gathers ICE candidates only
// on an interface with a default route, and the host has none to give
// (nor should browsers under test reach anything outside). A veth pair
// inside the namespace provides one; the peers find each other at
// 10.77.0.1, and the tracker through a unix socket (webtorrent.mjs).
const netnsSetup = `set -e
ip link set lo up
ip link add wt0 type veth peer name wt1
ip addr add 10.77.0.1/24 dev wt0
ip link set wt0 up
ip link set wt1 up
ip route add default via 10.77.0.2 dev wt0
exec node webtorrent.mjs`

// TestWebTorrentBrowsers has one headless Chromium seed a file with the
// webtorrent library and two others download it, finding each other only
// through the tracker's WebSocket frontend (offers and answers relayed),
// and compares what they got by SHA-256.
func TestWebTorrentBrowsers(t *testing.T) {
	needBrowsers(t)
	d := daemontest.Start(t, `
chihaya:
  metrics_addr: "127.0.0.1:0"
  websocket:
    addr: "127.0.0.1:0"
  storage:
    name: memory
`)
	runBrowsers(t, d.Addr(t, "ws"), d.Addr(t, "ws"))
	// The browsers met through the tracker: it relayed offers, and answers
	// back.
	for _, m := range []string{"offer", "answer"} {
		if n := d.Metric(t, "chihaya_websocket_relayed_total", map[string]string{"message": m, "result": "sent"}); n < 2 {
			t.Errorf("%v %ss relayed, want at least one per leecher", n, m)
		}
	}
	if n := d.Metric(t, "chihaya_frontend_requests_total", map[string]string{"frontend": "websocket", "action": "announce", "result": "ok"}); n < 3 {
		t.Errorf("%v WebSocket announces counted, want at least one per browser", n)
	}
}

// TestWebTorrentBrowsersAcrossInstances is TestWebTorrentBrowsers with
// two tracker instances on one Redis: the seeder announces to one, the
// leechers to the other, and they meet through the offers and answers
// the instances relay to each other through Redis.
func TestWebTorrentBrowsersAcrossInstances(t *testing.T) {
	needBrowsers(t)
	srv := redistest.Start(t, "redis-server")
	config := `
chihaya:
  metrics_addr: "127.0.0.1:0"
  websocket:
    addr: "127.0.0.1:0"
  storage:
    name: redis
    config:
      redis_broker: "redis://` + srv.Addr + `/0"
      key_prefix: "browsers:"
`
	seeders, leechers := daemontest.Start(t, config), daemontest.Start(t, config)
	runBrowsers(t, seeders.Addr(t, "ws"), leechers.Addr(t, "ws"))
	// Each leecher's offers reached the seeder through the other instance,
	// and its answers came back the same way (webtorrent also has the
	// seeder offer to the leechers: those cross the other way).
	for _, c := range []struct {
		d       *daemontest.Daemon
		message string
	}{{leechers, "offer"}, {seeders, "answer"}} {
		if n := c.d.Metric(t, "chihaya_websocket_relayed_total", map[string]string{"message": c.message, "result": "forwarded"}); n < 2 {
			t.Errorf("%v %ss forwarded to the other instance, want at least one per leecher", n, c.message)
		}
	}
	for _, d := range []*daemontest.Daemon{seeders, leechers} {
		if n := d.Metric(t, "chihaya_storage_redis_relay_received_total", nil); n < 2 {
			t.Errorf("an instance received %v messages from the other, want at least 2", n)
		}
		if n := d.Metric(t, "chihaya_storage_redis_relay_dropped_total", nil); n != 0 {
			t.Errorf("an instance dropped %v messages between instances, want none", n)
		}
	}
}

// needBrowsers skips (or, under CI, fails) a test without what running the
// browsers needs.
func needBrowsers(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts three browsers")
	}
	need(t, "chromium", "/usr/bin/chromium")
	need(t, "node", "node")
	need(t, "unshare (util-linux)", "unshare")
	need(t, "ip (iproute2)", "ip")
	need(t, "the npm packages (npm ci --ignore-scripts in e2e/browser)", "node_modules/playwright-core")
	need(t, "the npm packages (npm ci --ignore-scripts in e2e/browser)", "node_modules/webtorrent")
	if out, err := exec.Command("unshare", "--net", "true").CombinedOutput(); err != nil {
		if prereq.InCI() {
			t.Fatalf("cannot make a network namespace: %v %s", err, out)
		}
		t.Skipf("cannot make a network namespace: %v %s", err, out)
	}
}

// runBrowsers runs webtorrent.mjs in a network namespace of its own: a
// seeder announcing to the tracker at seederTracker and two leechers
// announcing to leecherTracker (host:port of WebSocket listeners on the
// host's loopback), and checks that both leechers got the file.
func runBrowsers(t *testing.T, seederTracker, leecherTracker string) {
	t.Helper()
	// A unix socket is the way out of the namespace: it lives in the file
	// system, which the namespace shares.
	dir, err := os.MkdirTemp("", "chihaya-wt-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sockets := map[string]string{}
	for name, tracker := range map[string]string{"seeder": seederTracker, "leecher": leecherTracker} {
		sock := filepath.Join(dir, name+".sock")
		ln, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go relay(ln, tracker)
		sockets[name] = sock
	}

	payload := make([]byte, 3<<20+12345) // several pieces, the last one short
	rand.Read(payload)
	sum := sha256.Sum256(payload)
	want := hex.EncodeToString(sum[:])
	file := filepath.Join(dir, "payload.bin")
	if err := os.WriteFile(file, payload, 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "--net", "sh", "-c", netnsSetup)
	cmd.Env = append(os.Environ(), "TRACKER_SOCKET="+sockets["seeder"], "TEST_FILE="+file, "LEECHERS=2", "TIMEOUT_MS=120000")
	if leecherTracker != seederTracker {
		cmd.Env = append(cmd.Env, "LEECHER_TRACKER_SOCKET="+sockets["leecher"])
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	t.Logf("browsers' stderr:\n%s", tail(stderr.String(), 40))

	var res struct {
		OK       bool   `json:"ok"`
		Error    string `json:"error"`
		InfoHash string `json:"infoHash"`
		Leechers []struct {
			InfoHash string `json:"infoHash"`
			Length   int    `json:"length"`
			SHA256   string `json:"sha256"`
		} `json:"leechers"`
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("browsers: %v; output %q: %v", runErr, stdout.String(), err)
	}
	if !res.OK {
		t.Fatalf("browsers failed: %s", res.Error)
	}
	if len(res.Leechers) != 2 {
		t.Fatalf("%d leechers reported, want 2", len(res.Leechers))
	}
	for i, l := range res.Leechers {
		if l.SHA256 != want || l.Length != len(payload) || l.InfoHash != res.InfoHash {
			t.Errorf("leecher %d downloaded %d bytes with SHA-256 %s (torrent %s), want %d bytes with %s (torrent %s)",
				i, l.Length, l.SHA256, l.InfoHash, len(payload), want, res.InfoHash)
		}
	}
}

// relay forwards each connection on ln to the tracker.
func relay(ln net.Listener, tracker string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			u, err := net.Dial("tcp", tracker)
			if err != nil {
				return
			}
			defer u.Close()
			go func() { io.Copy(u, c); u.(*net.TCPConn).CloseWrite() }()
			io.Copy(c, u)
		}()
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
