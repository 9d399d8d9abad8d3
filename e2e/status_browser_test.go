package e2e

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chihaya/chihaya/internal/configtest"
	"github.com/chihaya/chihaya/internal/eventually"
	"github.com/chihaya/chihaya/internal/prereq"
)

// TestStatusPageInChromium signs in to the status page of a running
// daemon in headless Chromium (Debian's, driven by playwright-core), sees
// the totals and the top swarm, opens its page, and finds a chart with
// data points: a rollout, leechers completing one by one. With
// UPDATE_SCREENSHOT=1 it also rewrites docs/status-page.png.
func TestStatusPageInChromium(t *testing.T) {
	chromium := "/usr/bin/chromium"
	node, err := exec.LookPath("node")
	switch {
	case err != nil:
		prereq.Missing(t, "node is not installed (Debian package nodejs)")
	case !exists(chromium):
		prereq.Missing(t, "%s is not installed (Debian package chromium)", chromium)
	case !exists("browser/node_modules/playwright-core"):
		prereq.Missing(t, "e2e/browser/node_modules is missing: run npm ci --ignore-scripts in e2e/browser (scripts/test.sh does)")
	}

	cfg := loopbackConfig(t, "127.0.0.1")
	dir := t.TempDir()
	tokens := configtest.File(t, "tokens", e2eReadToken+" read\n")
	c := section(cfg, "chihaya")
	c["api"] = map[interface{}]interface{}{"tokens_file": tokens, "history_interval": "1s"}
	// Peers give their rack's address, as behind a NAT-free deployment
	// network; locality groups them by /24.
	section(c, "http")["allow_ip_spoofing"] = true
	c["storage"] = map[interface{}]interface{}{"name": "memory", "config": map[interface{}]interface{}{
		"locality": map[interface{}]interface{}{"enabled": true},
	}}
	d := start(t, cfg)
	base := "http://" + d.Addr(t, "http")

	build, other := hash(0x51), hash(0x52)
	announce := func(ih [20]byte, n int, left int, event, ip string) {
		t.Helper()
		httpServed(t, httpGet(t, httpAnnounce{infoHash: ih, peerID: id(fmt.Sprintf("-DP0001-%04d", n)), port: 7000 + n, left: left, event: event, extra: "ip=" + ip}.url(base)))
	}
	rack := func(n int) string { return fmt.Sprintf("10.1.%d.%d", 1+n%3, 10+n) }
	announce(build, 0, 0, "started", rack(0))
	for n := 1; n <= 8; n++ {
		announce(build, n, 1000, "started", rack(n))
	}
	announce(other, 100, 0, "started", "10.9.9.9")
	announce(other, 101, 1000, "started", "10.9.9.10")
	// The rollout: a leecher completes every history sample.
	for n := 1; n <= 5; n++ {
		time.Sleep(1100 * time.Millisecond)
		announce(build, n, 0, "completed", rack(n))
	}
	eventually.Holds(t, func() string {
		_, v := api(t, d, "GET", "/api/v1/stats", e2eReadToken)
		if v["swarms"] != 2.0 || v["seeders"] != 7.0 || v["leechers"] != 4.0 || v["snatches"] != 5.0 {
			return fmt.Sprintf("stats %v", v)
		}
		return ""
	})

	shot := filepath.Join(dir, "status-page.png")
	if os.Getenv("UPDATE_SCREENSHOT") == "1" {
		shot, _ = filepath.Abs("../docs/status-page.png")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "status.mjs")
	cmd.Dir = "browser"
	cmd.Env = append(os.Environ(),
		"STATUS_URL=http://"+d.Addr(t, "metrics")+"/status",
		"TOKEN="+e2eReadToken,
		"INFO_HASH="+hex.EncodeToString(build[:]),
		"WANT_SWARMS=2", "WANT_SEEDERS=7", "WANT_LEECHERS=4", "WANT_SNATCHES=5",
		"USER_DATA_DIR="+filepath.Join(dir, "chromium-profile"),
		"CHROMIUM="+chromium,
		"SCREENSHOT="+shot,
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("status page in Chromium: %v\n%s", err, out)
	}
	t.Logf("%s", strings.TrimSpace(string(out)))
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 10000 {
		t.Fatalf("no screenshot of the swarm's page: %v", err)
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
