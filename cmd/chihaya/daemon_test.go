package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chihaya/chihaya/internal/daemontest"
)

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
	d := daemontest.Start(t, daemonConfig)
	addrs := d.Addrs()
	for _, f := range []string{"metrics", "http", "udp"} {
		if a := addrs[f]; a == "" || strings.HasSuffix(a, ":0") {
			t.Errorf("%s listening line has no bound port: %q", f, a)
		}
	}
	metricsURL := "http://" + addrs["metrics"]

	checkServing := func(t *testing.T) {
		t.Helper()
		for _, c := range []struct{ path, want string }{
			{"/healthz", "ok\n"},
			{"/readyz", "ok\n"},
		} {
			if status, body := daemontest.Get(t, metricsURL+c.path); status != 200 || body != c.want {
				t.Errorf("GET %s = %d %q, want 200 %q", c.path, status, body, c.want)
			}
		}
		udpConnect(t, addrs["udp"])
		if status, body := daemontest.Get(t, "http://"+addrs["http"]+"/announce"); status != 200 || !strings.Contains(body, "failure reason") {
			t.Errorf("GET /announce without parameters = %d %q, want a bencoded failure", status, body)
		}
	}

	t.Run("serving", func(t *testing.T) {
		checkServing(t)
		status, body := daemontest.Get(t, metricsURL+"/metrics")
		for _, want := range []string{"go_goroutines", "process_start_time_seconds", `chihaya_frontend_requests_total{action="connect",address_family="IPv4",frontend="udp",result="ok"}`} {
			if status != 200 || !strings.Contains(body, want) {
				t.Errorf("/metrics = %d, lacks %q", status, want)
			}
		}
		if status, _ := daemontest.Get(t, metricsURL+"/debug/pprof/"); status != 404 {
			t.Errorf("/debug/pprof/ = %d without enable_pprof, want 404", status)
		}
	})

	t.Run("reload with a bad file keeps serving", func(t *testing.T) {
		d.WriteConfig(t, "chihaya:\n  udp:\n    adr: nope\n")
		d.Signal(t, syscall.SIGUSR1)
		l := d.WaitLine(t, "reload failed; keeping the running configuration")
		if e := l.Str("error"); !strings.Contains(e, `line 3: unknown key "adr" in udp`) {
			t.Errorf("reload error = %q", e)
		}
		checkServing(t)
	})

	t.Run("reload with changed frontends needs restart", func(t *testing.T) {
		d.WriteConfig(t, strings.Replace(daemonConfig, "sockets: 1", "sockets: 2", 1))
		d.Signal(t, syscall.SIGHUP)
		l := d.WaitLine(t, "configuration change needs restart; not applied")
		if l.Str("key") != "udp" {
			t.Errorf("needs-restart key = %v, want udp", l["key"])
		}
		d.WaitLine(t, "configuration reloaded")
		checkServing(t)
	})

	t.Run("SIGTERM stops cleanly", func(t *testing.T) {
		d.Signal(t, syscall.SIGTERM)
		d.WaitLine(t, "chihaya stopped")
		if err := d.Wait(t); err != nil {
			t.Errorf("exit: %v, want status 0", err)
		}
	})
}

func TestDaemonStartFailure(t *testing.T) {
	// A port already in use: the daemon must say so and exit 1, not run
	// without its listener.
	ln, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := daemontest.Start(t, fmt.Sprintf("chihaya:\n  udp:\n    addr: %q\n    sockets: 1\n", ln.LocalAddr()), daemontest.NoWait())
	l := d.WaitLine(t, "chihaya failed")
	if e := l.Str("error"); !strings.Contains(e, "address already in use") {
		t.Errorf("error = %q, want address already in use", e)
	}
	if code := d.ExitCode(t); code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
}

// TestCPUProfileFlag: upstream's --cpuprofile is accepted, and the run's
// profile is written when the daemon stops.
func TestCPUProfileFlag(t *testing.T) {
	prof := filepath.Join(t.TempDir(), "cpu.pprof")
	d := daemontest.Start(t, daemonConfig, daemontest.Args("--cpuprofile", prof))
	d.Stop(t)
	b, err := os.ReadFile(prof)
	if err != nil {
		t.Fatal(err)
	}
	// A pprof profile is a gzipped protocol buffer.
	if len(b) < 20 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("%s: %d bytes, not a gzipped profile", prof, len(b))
	}
}
