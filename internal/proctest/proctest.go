// Package proctest runs the programs that tests start beside the daemon
// (BitTorrent clients, opentracker, helper scripts): each gets its own
// process group, so that stopping it reaches anything it forked, and dies
// with the test binary (Pdeathsig) should the test itself be killed
// before its cleanup runs. Its output goes to a log file, whose tail is
// printed when the test fails. The daemon itself is internal/daemontest's,
// Redis storage/redis/redistest's.
package proctest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Proc is a program started by a test. It is killed, with its process
// group, when the test ends.
type Proc struct {
	// Name names the program in failure messages ("aria2-seed").
	Name string
	// Log is the file that its standard output and error go to, unless
	// the caller sent them elsewhere.
	Log  string
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited
	err  error         // Wait's result, valid after done
}

// Start runs cmd with its output going to logDir/name.log (an output the
// caller set stays where it goes).
func Start(t testing.TB, name, logDir string, cmd *exec.Cmd) *Proc {
	t.Helper()
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := &Proc{Name: name, Log: filepath.Join(logDir, name+".log"), cmd: cmd, done: make(chan struct{})}
	f, err := os.Create(p.Log)
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Stdout == nil {
		cmd.Stdout = f
	}
	if cmd.Stderr == nil {
		cmd.Stderr = f
	}
	cmd.SysProcAttr = procAttr()
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
		p.Kill()
		if t.Failed() {
			p.dump(t)
		}
	})
	return p
}

// Signal sends sig to the process (opentracker reloads its whitelist on
// SIGHUP).
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Kill ends the process group at once and waits for the process.
func (p *Proc) Kill() {
	if p.Exited() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Wait waits for the process to exit and returns how it did: nil for
// status 0.
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is how the process ended (nil for status 0), once Exited.
func (p *Proc) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// Output returns what the process has written to its log so far.
func (p *Proc) Output() string {
	b, _ := os.ReadFile(p.Log)
	return string(b)
}

// dump logs the tail of the process' output, for the reader of a failure.
func (p *Proc) dump(t testing.TB) {
	t.Helper()
	b, err := os.ReadFile(p.Log)
	if err != nil {
		t.Logf("%s: no log: %v", p.Name, err)
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
	if p.Exited() {
		state = fmt.Sprintf("exited: %v", p.err)
	}
	t.Logf("---- %s (%s), last %d lines of %s:\n%s", p.Name, state, len(lines), p.Log, strings.Join(lines, "\n"))
}
