// Package locality proves locality-aware peer selection with real
// BitTorrent clients: a small deployment of libtorrent sessions on
// loopback addresses in three "racks" (127.0.1.0/24, 127.0.2.0/24,
// 127.0.3.0/24), one seeder in the first rack and six downloaders in each,
// run once with locality off and once with it on (memory driver, and Redis
// when redis-server is installed). Each downloader's libtorrent reports
// the payload bytes it received from each peer; with locality on, clearly
// more of them must come from inside the downloader's own rack.
//
// The clients are driven by testdata/swarm.py under Debian's
// /usr/bin/python3 (package python3-libtorrent). Without it the test
// skips, and with CI=true it fails.
package locality

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const python = "/usr/bin/python3"

// The deployment: numwant is well below the swarm (19 clients), and each
// rack is as large as numwant, so that the tracker's choice shows.
const (
	racks    = 3
	perRack  = 6
	numWant  = 6
	runLimit = 75 * time.Second // one run of swarm.py; a run takes ~20s
)

// unavailable skips, or fails under CI=true, where every program the test
// needs is installed on purpose.
func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true: "+format, args...)
	}
	t.Skipf(format, args...)
}

// result is one downloader's line of swarm.py's report.
type result struct {
	Rack     int              `json:"rack"`
	IP       string           `json:"ip"`
	Inside   int64            `json:"inside"`
	Outside  int64            `json:"outside"`
	Payload  int64            `json:"payload"`
	Finished bool             `json:"finished"`
	From     map[string]int64 `json:"from"`
}

// shares are the fractions of bytes received from inside the own rack,
// per rack (index rack-1) and overall.
type shares struct {
	rack       [racks]float64
	all        float64
	seederless float64 // racks 2 and up together
}

func (s shares) String() string {
	var b strings.Builder
	for i, v := range s.rack {
		fmt.Fprintf(&b, "rack %d %.0f%%, ", i+1, 100*v)
	}
	fmt.Fprintf(&b, "racks without the seeder %.0f%%, all %.0f%%", 100*s.seederless, 100*s.all)
	return b.String()
}

func TestLocalityWithRealClients(t *testing.T) {
	if testing.Short() {
		t.Skip("real BitTorrent clients: not in -short mode")
	}
	if out, err := exec.Command(python, "-c", "import libtorrent").CombinedOutput(); err != nil {
		unavailable(t, "%s cannot import libtorrent (apt-get install python3-libtorrent): %v: %s", python, err, out)
	}
	bin := buildDaemon(t)

	runs := []struct {
		name    string
		storage func(t *testing.T) string // the storage section
	}{
		{"off", func(*testing.T) string { return memoryStorage(false) }},
		{"on/memory", func(*testing.T) string { return memoryStorage(true) }},
		{"on/redis", redisStorage},
	}
	got := map[string]shares{}
	for _, run := range runs {
		t.Run(run.name, func(t *testing.T) {
			cfg := run.storage(t)
			res := runSwarm(t, bin, cfg)
			sh := check(t, res)
			t.Logf("bytes received from inside the own rack: %s", sh)
			got[run.name] = sh
		})
	}
	off, ok := got["off"]
	if !ok {
		t.Fatal("the run with locality off did not complete")
	}
	for name, on := range got {
		if name == "off" {
			continue
		}
		t.Run("compare/"+name, func(t *testing.T) {
			t.Logf("locality off: %s", off)
			t.Logf("locality %s: %s", name, on)
			// Off, a downloader's peers are a random third of the swarm
			// from its rack; on, all but the reserve are.
			if on.all < 0.55 || on.all < off.all+0.2 {
				t.Errorf("inside-rack share %.0f%% with locality %s, %.0f%% without: want at least 55%% and 20 points more", 100*on.all, name, 100*off.all)
			}
			// The racks without the seeder gain too: they are served
			// mostly by their own members, not by the outside.
			if on.seederless < off.seederless+0.1 {
				t.Errorf("racks without the seeder: inside share %.0f%% with locality %s, %.0f%% without: want 10 points more", 100*on.seederless, name, 100*off.seederless)
			}
		})
	}
}

// check asserts that every download finished and that the per-peer
// accounting covers what each client received, and returns the shares.
func check(t *testing.T, res []result) shares {
	t.Helper()
	if len(res) != racks*perRack {
		t.Fatalf("swarm.py reported %d downloaders, want %d", len(res), racks*perRack)
	}
	var in, all [racks]int64
	for _, r := range res {
		if !r.Finished {
			t.Errorf("%s did not finish", r.IP)
		}
		// Bytes of a connection's last poll interval can be missed; more
		// than a little means the accounting is wrong.
		if got := r.Inside + r.Outside; float64(got) < 0.9*float64(r.Payload) {
			t.Errorf("%s: per-peer bytes add up to %d of %d received", r.IP, got, r.Payload)
		}
		in[r.Rack-1] += r.Inside
		all[r.Rack-1] += r.Inside + r.Outside
	}
	var s shares
	var sumIn, sumAll int64
	for i := range s.rack {
		if all[i] > 0 {
			s.rack[i] = float64(in[i]) / float64(all[i])
		}
		sumIn += in[i]
		sumAll += all[i]
	}
	if sumAll > 0 {
		s.all = float64(sumIn) / float64(sumAll)
	}
	if rest := sumAll - all[0]; rest > 0 {
		s.seederless = float64(sumIn-in[0]) / float64(rest)
	}
	return s
}

func memoryStorage(on bool) string {
	return fmt.Sprintf(`  storage:
    name: memory
    config:
      shard_count: 16
      locality:
        enabled: %v
        ipv4_prefix: 24
        min_outside_share: 0.1
`, on)
}

func redisStorage(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		unavailable(t, "redis-server not found (apt-get install redis-server)")
	}
	addr := startRedis(t, bin)
	return fmt.Sprintf(`  storage:
    name: redis
    config:
      redis_broker: "redis://%s/0"
      locality:
        enabled: true
        ipv4_prefix: 24
        min_outside_share: 0.1
`, addr)
}

// buildDaemon builds cmd/chihaya into the test's temporary directory.
func buildDaemon(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "chihaya")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/chihaya/chihaya/cmd/chihaya").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runSwarm starts the tracker with the storage section given and runs
// swarm.py against it.
func runSwarm(t *testing.T, bin, storage string) []result {
	t.Helper()
	dir := t.TempDir()
	cfg := `chihaya:
  announce_interval: 30m
  min_announce_interval: 15m
  http:
    addr: "127.0.0.1:0"
    announce_routes: ["/announce"]
    scrape_routes: ["/scrape"]
    max_numwant: ` + strconv.Itoa(numWant) + `
    default_numwant: ` + strconv.Itoa(numWant) + `
` + storage
	path := filepath.Join(dir, "chihaya.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	httpAddr := startDaemon(t, bin, path, filepath.Join(dir, "chihaya.log"))

	script, err := filepath.Abs(filepath.Join("testdata", "swarm.py"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), runLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, script,
		"--tracker", "http://"+httpAddr+"/announce", "--workdir", filepath.Join(dir, "swarm"),
		"--racks", strconv.Itoa(racks), "--per-rack", strconv.Itoa(perRack),
		"--timeout", strconv.Itoa(int(runLimit.Seconds())-10))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	begin := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("swarm.py: %v\nstderr:\n%s", err, stderr.String())
	}
	t.Logf("swarm.py took %.1fs:\n%s", time.Since(begin).Seconds(), strings.TrimSpace(stderr.String()))
	var report struct {
		Downloaders []result `json:"downloaders"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &report); err != nil {
		t.Fatalf("swarm.py report %q: %v", stdout.String(), err)
	}
	return report.Downloaders
}

// startDaemon runs the tracker, stopping it (SIGTERM, by its PID) when the
// test ends, and returns its HTTP address from its "listening" log line.
func startDaemon(t *testing.T, bin, cfg, logPath string) string {
	t.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", cfg, "--json")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); logFile.Close() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("chihaya log:\n%s", b)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if addr := listening(logPath, "http"); addr != "" {
			return addr
		}
		select {
		case err := <-done:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("chihaya exited: %v\n%s", err, b)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatal("chihaya did not log its HTTP listener within 20s")
	return ""
}

// listening returns the address the daemon's JSON log says frontend is
// listening on, or "".
func listening(logPath, frontend string) string {
	f, err := os.Open(logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line struct {
			Msg      string `json:"msg"`
			Frontend string `json:"frontend"`
			Addr     string `json:"addr"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" && line.Frontend == frontend {
			return line.Addr
		}
	}
	return ""
}

// startRedis runs redis-server without persistence on a free loopback
// port and returns its address; it is killed (by PID) when the test ends.
func startRedis(t *testing.T, bin string) string {
	t.Helper()
	for attempt := 0; attempt < 5; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
		l.Close()
		cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		addr := "127.0.0.1:" + port
		if err := waitForPort(addr, exited); err == nil {
			t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
			return addr
		}
		_ = cmd.Process.Kill()
		<-exited
	}
	t.Fatal("redis-server did not start")
	return ""
}

func waitForPort(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return errors.New("exited")
		case <-time.After(20 * time.Millisecond):
		}
	}
	return errors.New("no answer")
}
