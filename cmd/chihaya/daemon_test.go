package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// testTimeout bounds each wait in the daemon test, so that a hung daemon
// fails the test instead of hanging it; it is not a performance assertion.
const testTimeout = 60 * time.Second

// binDir holds the binary built for the tests; TestMain removes it.
var binDir string

// buildBinary builds the chihaya command once per test binary run.
var buildBinary = func() func(t *testing.T) string {
	var (
		once sync.Once
		path string
		err  error
		out  []byte
	)
	return func(t *testing.T) string {
		t.Helper()
		once.Do(func() {
			binDir, err = os.MkdirTemp("", "chihaya-bin")
			if err != nil {
				return
			}
			path = filepath.Join(binDir, "chihaya")
			goBin, lerr := exec.LookPath("go")
			if lerr != nil {
				err = lerr
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			out, err = exec.CommandContext(ctx, goBin, "build", "-o", path, ".").CombinedOutput()
		})
		if err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		return path
	}
}()

// daemon is a chihaya process started by a test, with its JSON log lines.
type daemon struct {
	t     *testing.T
	cmd   *exec.Cmd
	lines chan map[string]interface{}
	mu    sync.Mutex
	log   bytes.Buffer
	done  chan error
}

func startDaemon(t *testing.T, configPath string, flags ...string) *daemon {
	t.Helper()
	cmd := exec.Command(buildBinary(t), append([]string{"--config", configPath, "--json"}, flags...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, cmd: cmd, lines: make(chan map[string]interface{}, 1024), done: make(chan error, 1)}
	go d.read(stderr)
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.logText())
		}
	})
	return d
}

func (d *daemon) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		d.mu.Lock()
		d.log.Write(sc.Bytes())
		d.log.WriteByte('\n')
		d.mu.Unlock()
		var line map[string]interface{}
		if json.Unmarshal(sc.Bytes(), &line) == nil {
			d.lines <- line
		}
	}
	close(d.lines)
	d.done <- d.cmd.Wait()
}

func (d *daemon) logText() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

// waitLine returns the next log line for which match is true.
func (d *daemon) waitLine(what string, match func(map[string]interface{}) bool) map[string]interface{} {
	d.t.Helper()
	timer := time.NewTimer(testTimeout)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-d.lines:
			if !ok {
				d.t.Fatalf("daemon exited before logging %s", what)
			}
			if match(line) {
				return line
			}
		case <-timer.C:
			d.t.Fatalf("no log line %s", what)
		}
	}
}

func msgIs(msg string) func(map[string]interface{}) bool {
	return func(l map[string]interface{}) bool { return l["msg"] == msg }
}

// listeners waits for the "listening" lines of the named frontends and
// returns their bound addresses.
func (d *daemon) listeners(frontends ...string) map[string]string {
	d.t.Helper()
	addrs := map[string]string{}
	for len(addrs) < len(frontends) {
		l := d.waitLine("listening", msgIs("listening"))
		addrs[fmt.Sprint(l["frontend"])] = fmt.Sprint(l["addr"])
	}
	for _, f := range frontends {
		if _, ok := addrs[f]; !ok {
			d.t.Fatalf("no listening line for %s; got %v", f, addrs)
		}
	}
	return addrs
}

func (d *daemon) signal(sig os.Signal) {
	d.t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		d.t.Fatal(err)
	}
}

func (d *daemon) wait() error {
	d.t.Helper()
	// Drain lines so that the reader never blocks on a full channel.
	go func() {
		for range d.lines {
		}
	}()
	select {
	case err := <-d.done:
		return err
	case <-time.After(testTimeout):
		d.t.Fatal("daemon did not exit")
		return nil
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// udpConnect sends a BEP 15 connect request and checks the reply.
func udpConnect(t *testing.T, addr string) {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := make([]byte, 16)
	binary.BigEndian.PutUint64(req[0:], 0x41727101980)
	binary.BigEndian.PutUint32(req[8:], 0) // connect
	binary.BigEndian.PutUint32(req[12:], 0xc0ffee)
	resp := make([]byte, 64)
	// UDP may drop a datagram even on loopback; a few tries, each bounded.
	for try := 0; try < 5; try++ {
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := c.Read(resp)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if n != 16 || binary.BigEndian.Uint32(resp[0:]) != 0 || binary.BigEndian.Uint32(resp[4:]) != 0xc0ffee {
			t.Fatalf("UDP connect reply = %x", resp[:n])
		}
		return
	}
	t.Fatalf("no UDP connect reply from %s", addr)
}

const daemonConfig = `chihaya:
  metrics_addr: "127.0.0.1:0"
  shutdown_timeout: 10s
  http:
    addr: "127.0.0.1:0"
  udp:
    addr: "127.0.0.1:0"
    sockets: 1
  storage:
    name: memory
`

func TestDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	cfgPath := writeConfig(t, daemonConfig)
	d := startDaemon(t, cfgPath)
	addrs := d.listeners("metrics", "http", "udp")
	for f, a := range addrs {
		if strings.HasSuffix(a, ":0") {
			t.Errorf("%s listening line has the configured port, not the bound one: %s", f, a)
		}
	}
	d.waitLine("chihaya started", msgIs("chihaya started"))
	metricsURL := "http://" + addrs["metrics"]

	checkServing := func(t *testing.T) {
		t.Helper()
		for _, c := range []struct{ path, want string }{
			{"/healthz", "ok\n"},
			{"/readyz", "ok\n"},
		} {
			if status, body := httpGet(t, metricsURL+c.path); status != 200 || body != c.want {
				t.Errorf("GET %s = %d %q, want 200 %q", c.path, status, body, c.want)
			}
		}
		udpConnect(t, addrs["udp"])
		if status, body := httpGet(t, "http://"+addrs["http"]+"/announce"); status != 200 || !strings.Contains(body, "failure reason") {
			t.Errorf("GET /announce without parameters = %d %q, want a bencoded failure", status, body)
		}
	}

	t.Run("serving", func(t *testing.T) {
		checkServing(t)
		status, body := httpGet(t, metricsURL+"/metrics")
		for _, want := range []string{"go_goroutines", "process_start_time_seconds", `chihaya_frontend_requests_total{action="connect",address_family="IPv4",frontend="udp",result="ok"}`} {
			if status != 200 || !strings.Contains(body, want) {
				t.Errorf("/metrics = %d, lacks %q", status, want)
			}
		}
		if status, _ := httpGet(t, metricsURL+"/debug/pprof/"); status != 404 {
			t.Errorf("/debug/pprof/ = %d without enable_pprof, want 404", status)
		}
	})

	t.Run("reload with a bad file keeps serving", func(t *testing.T) {
		if err := os.WriteFile(cfgPath, []byte("chihaya:\n  udp:\n    adr: nope\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		d.signal(syscall.SIGUSR1)
		l := d.waitLine("reload failed", msgIs("reload failed; keeping the running configuration"))
		if e := fmt.Sprint(l["error"]); !strings.Contains(e, `line 3: unknown key "adr" in udp`) {
			t.Errorf("reload error = %q", e)
		}
		checkServing(t)
	})

	t.Run("reload with changed frontends needs restart", func(t *testing.T) {
		changed := strings.Replace(daemonConfig, "sockets: 1", "sockets: 2", 1)
		if err := os.WriteFile(cfgPath, []byte(changed), 0o600); err != nil {
			t.Fatal(err)
		}
		d.signal(syscall.SIGHUP)
		l := d.waitLine("needs restart", msgIs("configuration change needs restart; not applied"))
		if l["key"] != "udp" {
			t.Errorf("needs-restart key = %v, want udp", l["key"])
		}
		d.waitLine("configuration reloaded", msgIs("configuration reloaded"))
		checkServing(t)
	})

	t.Run("SIGTERM stops cleanly", func(t *testing.T) {
		d.signal(syscall.SIGTERM)
		d.waitLine("chihaya stopped", msgIs("chihaya stopped"))
		if err := d.wait(); err != nil {
			t.Errorf("exit: %v, want status 0", err)
		}
	})
}

func TestDaemonStartFailure(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	// A port already in use: the daemon must say so and exit 1, not run
	// without its listener.
	ln, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfgPath := writeConfig(t, fmt.Sprintf("chihaya:\n  udp:\n    addr: %q\n    sockets: 1\n", ln.LocalAddr()))
	d := startDaemon(t, cfgPath)
	l := d.waitLine("chihaya failed", msgIs("chihaya failed"))
	if e := fmt.Sprint(l["error"]); !strings.Contains(e, "address already in use") {
		t.Errorf("error = %q, want address already in use", e)
	}
	var ee *exec.ExitError
	if err := d.wait(); !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("exit: %v, want status 1", err)
	}
}

// TestCPUProfileFlag: upstream's --cpuprofile is accepted, and the run's
// profile is written when the daemon stops.
func TestCPUProfileFlag(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	prof := filepath.Join(t.TempDir(), "cpu.pprof")
	d := startDaemon(t, writeConfig(t, daemonConfig), "--cpuprofile", prof)
	d.waitLine("chihaya started", msgIs("chihaya started"))
	d.signal(syscall.SIGTERM)
	if err := d.wait(); err != nil {
		t.Fatalf("daemon exited with %v", err)
	}
	b, err := os.ReadFile(prof)
	if err != nil {
		t.Fatal(err)
	}
	// A pprof profile is a gzipped protocol buffer.
	if len(b) < 20 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("%s: %d bytes, not a gzipped profile", prof, len(b))
	}
}
