// Package daemontest runs the chihaya daemon for tests: it builds
// cmd/chihaya once per test binary, starts it from a configuration, learns
// the addresses its listeners bound (from its "listening" log lines, so
// configurations use port 0), sends it signals, reads its metrics, and,
// when a test fails, prints its log. Every test that runs the daemon uses
// it; tests that need Redis start it with storage/redis/redistest.
//
// A test package calls Main from TestMain, so that the binary is removed
// when its tests end:
//
//	func TestMain(m *testing.M) { daemontest.Main(m) }
//
//	func TestAnnounce(t *testing.T) {
//		d := daemontest.Start(t, `
//	chihaya:
//	  metrics_addr: "127.0.0.1:0"
//	  http:
//	    addr: "127.0.0.1:0"
//	  storage:
//	    name: memory
//	`)
//		resp, err := http.Get("http://" + d.Addr(t, "http") + "/announce?...")
//		...
//		if n := d.Metric(t, "chihaya_frontend_requests_total", map[string]string{"frontend": "http"}); n != 1 {
//			t.Errorf("%v requests counted, want 1", n)
//		}
//		d.Reload(t)
//		d.WaitLine(t, "configuration reloaded")
//	}
//
// With -short, Start skips the test: `go test -short ./...` runs the unit
// tests alone.
//
// When the test ends, a daemon still running is stopped the way an operator
// stops it (SIGTERM), and the test fails if it does not exit cleanly, if
// it exited on its own while the test ran, or if the race detector (the
// daemon is built with -race when the tests are) reported a data race.
package daemontest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Timeout bounds each wait for the daemon (a log line, its exit), so that
// a hung daemon fails the test instead of hanging it. It is not a
// performance assertion.
const Timeout = 60 * time.Second

var (
	mainCalled bool
	buildOnce  sync.Once
	binDir     string
	binPath    string
	buildErr   error
)

// Main runs the tests of a package and then removes the daemon binary
// built for them. Call it from TestMain.
func Main(m *testing.M) {
	mainCalled = true
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// Binary returns the path of cmd/chihaya built for this test binary,
// building it on first use (with -race when the tests are built with it).
func Binary(t testing.TB) string {
	t.Helper()
	if !mainCalled {
		t.Fatal("daemontest: call daemontest.Main(m) from the package's TestMain")
	}
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "chihaya-daemontest-")
		if buildErr != nil {
			return
		}
		path := filepath.Join(binDir, "chihaya")
		args := []string{"build", "-o", path}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "github.com/chihaya/chihaya/cmd/chihaya")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		// go test puts its own go first in PATH.
		out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
			return
		}
		binPath = path
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Option changes how Start runs the daemon.
type Option func(*options)

type options struct {
	args   []string
	env    []string
	noWait bool
}

// Args adds command-line arguments after --config and --json.
func Args(args ...string) Option { return func(o *options) { o.args = append(o.args, args...) } }

// Env adds environment variables ("KEY=value") to the daemon's.
func Env(kv ...string) Option { return func(o *options) { o.env = append(o.env, kv...) } }

// NoWait returns as soon as the process runs, without waiting for it to
// log "chihaya started": for tests of a start that fails.
func NoWait() Option { return func(o *options) { o.noWait = true } }

// Line is one line of the daemon's JSON log.
type Line map[string]any

// Str returns the field key of the line as a string ("" when absent).
func (l Line) Str(key string) string {
	v, ok := l[key]
	if !ok {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

// Daemon is a chihaya process started by a test.
type Daemon struct {
	// Dir is the daemon's temporary directory; its log is Dir/chihaya.log.
	Dir string
	// ConfigPath is the configuration file it was started with.
	ConfigPath string

	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited
	err  error         // Wait's result, valid after done

	mu       sync.Mutex
	log      bytes.Buffer
	lines    []Line
	changed  chan struct{} // closed and replaced on each new line
	cursor   int           // WaitLine resumes after this line
	addrs    map[string]string
	expected bool // the test waits for the exit
}

// Start writes config to Dir/chihaya.yaml, runs the daemon with it and
// waits until it has logged "chihaya started", when every listener is
// bound.
func Start(t testing.TB, config string, opts ...Option) *Daemon {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "chihaya.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return start(t, dir, path, opts)
}

// StartFile is Start with a configuration file the test wrote itself.
func StartFile(t testing.TB, path string, opts ...Option) *Daemon {
	t.Helper()
	return start(t, t.TempDir(), path, opts)
}

func start(t testing.TB, dir, path string, opts []Option) *Daemon {
	t.Helper()
	if testing.Short() {
		// `go test -short ./...` is the unit tests alone (README).
		t.Skip("runs the daemon; skipped with -short")
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	d := &Daemon{
		Dir: dir, ConfigPath: path,
		done: make(chan struct{}), changed: make(chan struct{}), addrs: map[string]string{},
	}
	logFile, err := os.Create(filepath.Join(dir, "chihaya.log"))
	if err != nil {
		t.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(Binary(t), append([]string{"--config", path, "--json"}, o.args...)...)
	d.cmd.Stdout, d.cmd.Stderr = pw, pw
	d.cmd.Env = append(os.Environ(), o.env...)
	if raceEnabled {
		// A race must fail the test even if the daemon then exits
		// cleanly: the report goes to the log, which cleanup reads.
		d.cmd.Env = append(d.cmd.Env, "GORACE=halt_on_error=0")
	}
	d.cmd.SysProcAttr = sysProcAttr()
	err = d.cmd.Start()
	pw.Close()
	if err != nil {
		pr.Close()
		logFile.Close()
		t.Fatalf("start chihaya: %v", err)
	}
	read := make(chan struct{})
	go func() {
		d.read(pr, logFile)
		close(read)
	}()
	go func() {
		err := d.cmd.Wait()
		<-read // the log is complete before done is closed
		d.mu.Lock()
		d.err = err
		d.mu.Unlock()
		close(d.done)
	}()
	t.Cleanup(func() { d.cleanup(t) })
	if !o.noWait {
		d.WaitLine(t, "chihaya started")
	}
	return d
}

// read keeps the log, parses its JSON lines and records the listeners.
func (d *Daemon) read(r io.ReadCloser, logFile *os.File) {
	defer r.Close()
	defer logFile.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		b := sc.Bytes()
		_, _ = logFile.Write(append(b, '\n'))
		var l Line
		parsed := json.Unmarshal(b, &l) == nil
		d.mu.Lock()
		d.log.Write(b)
		d.log.WriteByte('\n')
		if parsed {
			if l.Str("msg") == "listening" {
				d.addrs[l.Str("frontend")] = l.Str("addr")
			}
			d.lines = append(d.lines, l)
			close(d.changed)
			d.changed = make(chan struct{})
		}
		d.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, r)
}

// cleanup stops a daemon still running with SIGTERM and reports what went
// wrong; on failure it prints the log.
func (d *Daemon) cleanup(t testing.TB) {
	if d.exited() {
		if !d.expectedExit() {
			t.Errorf("chihaya exited during the test: %v", d.err)
		}
	} else {
		_ = d.cmd.Process.Signal(sigterm)
		select {
		case <-d.done:
			if d.err != nil {
				t.Errorf("chihaya: exit after SIGTERM: %v", d.err)
			}
		case <-time.After(Timeout / 2):
			t.Errorf("chihaya: still running %v after SIGTERM; killed", Timeout/2)
			_ = d.cmd.Process.Kill()
			<-d.done
		}
	}
	if strings.Contains(d.Log(), "WARNING: DATA RACE") {
		t.Errorf("chihaya: the race detector reported a data race")
	}
	if t.Failed() {
		t.Logf("chihaya log (%s):\n%s", filepath.Join(d.Dir, "chihaya.log"), tail(d.Log(), 300))
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) <= n {
		return s
	}
	return fmt.Sprintf("[%d lines before]\n%s", len(lines)-n, strings.Join(lines[len(lines)-n:], ""))
}

// Running reports whether the daemon process is still running.
func (d *Daemon) Running() bool { return !d.exited() }

func (d *Daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

func (d *Daemon) expectedExit() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.expected
}

// Log returns what the daemon has logged so far.
func (d *Daemon) Log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

// Addr returns the address the named listener ("http", "https", "udp",
// "metrics") bound, as the daemon logged it.
func (d *Daemon) Addr(t testing.TB, listener string) string {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	a, ok := d.addrs[listener]
	if !ok {
		t.Fatalf("chihaya logged no %s listener (have %v)", listener, d.addrs)
	}
	return a
}

// Addrs returns every listener's bound address, by listener.
func (d *Daemon) Addrs() map[string]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := make(map[string]string, len(d.addrs))
	for k, v := range d.addrs {
		m[k] = v
	}
	return m
}

// WaitLine waits for the next log line whose message is msg and returns
// it; later calls look only after it. The test fails if the daemon exits
// first or logs no such line within Timeout.
func (d *Daemon) WaitLine(t testing.TB, msg string) Line {
	t.Helper()
	deadline := time.NewTimer(Timeout)
	defer deadline.Stop()
	for {
		d.mu.Lock()
		for i := d.cursor; i < len(d.lines); i++ {
			if d.lines[i].Str("msg") == msg {
				d.cursor = i + 1
				l := d.lines[i]
				d.mu.Unlock()
				return l
			}
		}
		d.cursor = len(d.lines)
		changed := d.changed
		d.mu.Unlock()
		select {
		case <-changed:
		case <-d.done:
			// The log is complete: look once more, then give up.
			d.mu.Lock()
			found := false
			for i := d.cursor; i < len(d.lines) && !found; i++ {
				found = d.lines[i].Str("msg") == msg
			}
			d.mu.Unlock()
			if !found {
				t.Fatalf("chihaya exited (%v) before logging %q", d.err, msg)
			}
		case <-deadline.C:
			t.Fatalf("chihaya logged no %q within %v", msg, Timeout)
		}
	}
}

// WriteConfig replaces the daemon's configuration file, for a reload.
func (d *Daemon) WriteConfig(t testing.TB, config string) {
	t.Helper()
	if err := os.WriteFile(d.ConfigPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Signal sends sig to the daemon, by its PID.
func (d *Daemon) Signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal chihaya: %v", err)
	}
}

// Reload sends SIGHUP, as an operator does after editing the
// configuration or a file it names (a list, the API tokens); the caller
// waits for the log line it expects ("configuration reloaded", or the
// error that keeps the running state). SIGUSR1 does the same; that both
// reload is checked once, by cmd/chihaya's daemon test.
func (d *Daemon) Reload(t testing.TB) {
	t.Helper()
	d.Signal(t, sighup)
}

// Wait waits for the daemon to exit and returns how it did: nil for
// status 0, an *exec.ExitError otherwise. The test fails if it is still
// running after Timeout.
func (d *Daemon) Wait(t testing.TB) error {
	t.Helper()
	d.mu.Lock()
	d.expected = true
	d.mu.Unlock()
	select {
	case <-d.done:
		return d.err
	case <-time.After(Timeout):
		t.Fatalf("chihaya did not exit within %v", Timeout)
		return nil
	}
}

// ExitCode waits for the daemon to exit and returns its exit status.
func (d *Daemon) ExitCode(t testing.TB) int {
	t.Helper()
	err := d.Wait(t)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	t.Fatalf("chihaya: %v", err)
	return -1
}

// Stop stops the daemon with SIGTERM and fails the test unless it exits
// with status 0.
func (d *Daemon) Stop(t testing.TB) {
	t.Helper()
	d.Signal(t, sigterm)
	if err := d.Wait(t); err != nil {
		t.Fatalf("chihaya: exit after SIGTERM: %v", err)
	}
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// Get fetches url (one of the daemon's, say) and returns the status and
// body of the answer; a request that fails fails the test.
func Get(t testing.TB, url string) (status int, body string) {
	t.Helper()
	resp, err := httpClient.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// Metrics returns the text of the daemon's /metrics.
func (d *Daemon) Metrics(t testing.TB) string {
	t.Helper()
	status, body := Get(t, "http://"+d.Addr(t, "metrics")+"/metrics")
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: %d", status)
	}
	return body
}

// Metric returns the sum of the samples of the named metric whose labels
// include every one given, from the daemon's /metrics; 0 when none has.
func (d *Daemon) Metric(t testing.TB, name string, labels map[string]string) float64 {
	t.Helper()
	sum := 0.0
	for _, line := range strings.Split(d.Metrics(t), "\n") {
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
