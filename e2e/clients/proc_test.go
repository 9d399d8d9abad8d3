package clients

import (
	"bytes"
	"context"
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

// proc is a program started by a test. It is killed, with its process
// group, when the test ends.
type proc struct {
	name string
	log  string // stdout and stderr
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited
	err  error         // Wait's result, valid after done
}

// start runs cmd with its output going to logDir/name.log. The process
// gets its own process group, so that cleanup reaches anything it forked,
// and dies with the test binary (Pdeathsig) should the test itself be
// killed before its cleanup runs.
func start(t *testing.T, name, logDir string, cmd *exec.Cmd) *proc {
	t.Helper()
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, log: filepath.Join(logDir, name+".log"), cmd: cmd, done: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			p.dump(t)
		}
	})
	return p
}

// kill ends the process group at once and waits for the process.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// dump logs the tail of the process' output, for the reader of a failure.
func (p *proc) dump(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(p.log)
	if err != nil {
		t.Logf("%s: no log: %v", p.name, err)
		return
	}
	// Transmission redraws its status line with carriage returns.
	b = bytes.ReplaceAll(b, []byte("\r"), []byte("\n"))
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		// Status lines redrawn in place repeat themselves.
		if l = strings.TrimSpace(l); l != "" && (len(lines) == 0 || lines[len(lines)-1] != l) {
			lines = append(lines, l)
		}
	}
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	state := "running"
	if p.exited() {
		state = fmt.Sprintf("exited: %v", p.err)
	}
	t.Logf("---- %s (%s), last %d lines of %s:\n%s", p.name, state, len(lines), p.log, strings.Join(lines, "\n"))
}

// waitFor polls cond until it holds, the process it depends on dies, or
// ctx ends; the last state cond described is in the failure message.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() (ok bool, state string), procs ...*proc) {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		for _, p := range procs {
			if p.exited() {
				t.Fatalf("%s: %s exited (%v) first; last state: %s", what, p.name, p.err, last)
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not reached before the test's deadline; last state: %s", what, last)
		case <-tick.C:
		}
	}
}

// freePort returns a port that is free for both TCP and UDP on host, for
// the clients that cannot be told to listen on port 0. Another process may
// take it before the client binds it; on loopback with the kernel's
// ephemeral range that is rare enough for a test.
func freePort(t *testing.T, host string) int {
	t.Helper()
	for i := 0; i < 20; i++ {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(port)))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatalf("no port free for both TCP and UDP on %s", host)
	return 0
}
