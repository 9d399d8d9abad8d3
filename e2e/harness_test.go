package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v2"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds the daemon once per test run.
func daemonBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "chihaya-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "chihaya")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/chihaya").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// daemon is a running tracker started by a test.
type daemon struct {
	cmd     *exec.Cmd
	addrs   map[string]string // frontend → bound address
	cfgPath string

	mu  sync.Mutex
	log strings.Builder
}

// exampleConfig reads example_config.yaml as a generic tree, so that a test
// runs the operator's file with only its addresses changed.
func exampleConfig(t *testing.T) map[interface{}]interface{} {
	t.Helper()
	raw, err := os.ReadFile("../example_config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[interface{}]interface{}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// section returns the mapping under key, creating it.
func section(m map[interface{}]interface{}, key string) map[interface{}]interface{} {
	if s, ok := m[key].(map[interface{}]interface{}); ok {
		return s
	}
	s := map[interface{}]interface{}{}
	m[key] = s
	return s
}

// loopbackConfig is example_config.yaml bound to free ports on one loopback
// address (host is "127.0.0.1" or "[::1]").
func loopbackConfig(t *testing.T, host string) map[interface{}]interface{} {
	t.Helper()
	cfg := exampleConfig(t)
	c := section(cfg, "chihaya")
	c["metrics_addr"] = host + ":0"
	section(c, "http")["addr"] = host + ":0"
	section(c, "udp")["addr"] = host + ":0"
	return cfg
}

// start runs the daemon with cfg and waits until every listener is bound.
func start(t *testing.T, cfg map[interface{}]interface{}) *daemon {
	t.Helper()
	raw, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	d := &daemon{addrs: map[string]string{}, cfgPath: path}
	d.cmd = exec.Command(daemonBinary(t), "--config", path, "--json")
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Kill()
			_ = d.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.logText())
		}
	})

	want := 0
	c := cfg["chihaya"].(map[interface{}]interface{})
	for _, k := range []string{"metrics_addr"} {
		if s, _ := c[k].(string); s != "" {
			want++
		}
	}
	for _, k := range []string{"http", "udp"} {
		if s, _ := section(c, k)["addr"].(string); s != "" {
			want++
		}
	}
	if s, _ := section(c, "http")["https_addr"].(string); s != "" {
		want++
	}

	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		n := 0
		for sc.Scan() {
			line := sc.Text()
			d.mu.Lock()
			d.log.WriteString(line + "\n")
			var entry struct {
				Msg      string `json:"msg"`
				Frontend string `json:"frontend"`
				Addr     string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "listening" {
				d.addrs[entry.Frontend] = entry.Addr
				n++
				if n == want {
					close(ready)
				}
			}
			d.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatalf("daemon did not report %d listeners within 20s; log:\n%s", want, d.logText())
	}
	return d
}

func (d *daemon) logText() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

func (d *daemon) addr(t *testing.T, frontend string) string {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	a, ok := d.addrs[frontend]
	if !ok {
		t.Fatalf("daemon reported no %s listener (have %v)", frontend, d.addrs)
	}
	return a
}

// signal sends sig to the daemon.
func (d *daemon) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// wait waits for the daemon to exit and returns its exit code.
func (d *daemon) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case <-done:
		return d.cmd.ProcessState.ExitCode()
	case <-time.After(within):
		t.Fatalf("daemon did not exit within %s", within)
		return -1
	}
}

// metric returns the sum of the samples of a metric whose labels include
// every given label, from the daemon's /metrics.
func (d *daemon) metric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.addr(t, "metrics")+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for k, v := range labels {
			if !strings.Contains(line, k+`="`+v+`"`) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		var v float64
		if _, err := fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &v); err == nil {
			sum += v
		}
	}
	return sum
}
