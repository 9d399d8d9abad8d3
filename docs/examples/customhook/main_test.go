package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/frontend/frontendtest"
)

// TestBuildsAndServes builds this program with `go build`, as its users
// would, runs it, and checks that its own hook refuses and admits
// announces over UDP beside the standard torrent approval hook.
func TestBuildsAndServes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a program; skipped with -short")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "customhook")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "chihaya.yaml")
	if err := os.WriteFile(cfg, []byte(`chihaya:
  udp:
    addr: "127.0.0.1:0"
  prehooks:
    - name: blocked ports
      options:
        ports: [6881]
    - name: torrent approval
      options:
        blacklist: ["`+frontendtest.Hash(9).String()+`"]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", cfg)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
		}
	})

	// The tracker logs the address it bound, then "chihaya started".
	listening := regexp.MustCompile(`addr="?([0-9.:]+)"? frontend=udp`)
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	var addr string
	deadline := time.After(60 * time.Second)
	for addr == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("the program exited before listening")
			}
			if m := listening.FindStringSubmatch(l); m != nil {
				addr = m[1]
			}
		case <-deadline:
			t.Fatal("no listening line")
		}
	}
	go func() {
		for range lines {
		}
	}()

	c := frontendtest.UDP(t, addr)
	announce := func(ih byte, port uint16) frontendtest.AnnounceReply {
		r, err := c.Announce(frontendtest.Announce{InfoHash: frontendtest.Hash(ih), PeerID: frontendtest.ID("-TR4050-"), Port: port, Left: 1, Event: bittorrent.Started})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := announce(1, 6881); r.Failure != "port blocked on this tracker: listen on another port" {
		t.Errorf("port 6881: %+v, want the hook's refusal", r)
	}
	if r := announce(1, 51413); r.Failure != "" || r.Interval == 0 {
		t.Errorf("port 51413: %+v, want served", r)
	}
	if r := announce(9, 51413); r.Failure == "" {
		t.Errorf("blacklisted torrent served: %+v", r)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("did not stop after SIGTERM")
	}
	exited <- nil // for the cleanup
}
