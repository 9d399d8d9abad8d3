// Package redistest starts real Redis programs (redis-server,
// redis-sentinel) on free loopback ports for tests: the driver's own tests
// and the daemon's end-to-end tests share it.
package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Program returns the path of a Redis program. A missing one skips the
// test, or fails it under CI=true, where the test script installs it.
// Under -short, the unit tests alone (README), it skips the test: like a
// daemon, a client or a browser, a real Redis server is not a unit.
func Program(t testing.TB, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("runs %s: not with -short, which is for unit tests", name)
	}
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found (CI=true): %v", name, err)
		}
		t.Skipf("%s not found: %v", name, err)
	}
	return path
}

// Server is a redis-server or redis-sentinel started by a test.
type Server struct {
	// Addr is the server's loopback host:port.
	Addr string

	cmd    *exec.Cmd
	mu     sync.Mutex
	log    strings.Builder
	exited chan struct{}
}

// FreePort returns a port that was free a moment ago: Redis cannot be told
// to pick one itself (--port 0 disables TCP), so callers retry when another
// process takes it first.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// Start runs program ("redis-server", "redis-sentinel") on a free loopback
// port, without persistence, in its own temporary directory; conf lines
// are added to its configuration ("replicaof ..."). It is killed when the
// test ends.
func Start(t testing.TB, program string, conf ...string) *Server {
	t.Helper()
	for attempt := 0; ; attempt++ {
		s, err := StartOn(t, program, FreePort(t), conf...)
		if err == nil {
			return s
		}
		if attempt == 4 {
			t.Fatalf("%s did not start: %v", program, err)
		}
	}
}

// StartOn is Start on a given port; it fails when the program does not
// serve there (the port was taken, say).
func StartOn(t testing.TB, program string, port int, conf ...string) (*Server, error) {
	t.Helper()
	bin := Program(t, program)
	dir := t.TempDir()
	lines := append([]string{
		"port " + strconv.Itoa(port), "bind 127.0.0.1", `save ""`, "appendonly no",
		"dir " + dir, "daemonize no", `logfile ""`,
	}, conf...)
	path := filepath.Join(dir, "redis.conf")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), exited: make(chan struct{})}
	s.cmd = exec.Command(bin, path)
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stderr = s.cmd.Stdout
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.mu.Lock()
			s.log.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
		}
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(s.Kill)
	// Wait until it answers, or exits (the port was taken meanwhile).
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := redis.NewClient(&redis.Options{Addr: s.Addr, DialTimeout: time.Second, ReadTimeout: time.Second,
			MaxRetries: -1, Protocol: 2, DisableIdentity: true})
		err := c.Ping(context.Background()).Err()
		c.Close()
		var reply redis.Error
		if err == nil || errors.As(err, &reply) {
			return s, nil // any reply, even NOAUTH, means it serves
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("exited: %s", s.LogText())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Kill()
			return nil, fmt.Errorf("no answer within 10s: %s", s.LogText())
		}
	}
}

// LogText returns what the program has logged so far.
func (s *Server) LogText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// Kill stops the program by its PID and waits for it to exit. A paused
// program is resumed first, so that nothing is left stopped even if the
// kill were to fail.
func (s *Server) Kill() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT)
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
}

// Pause stops the program with SIGSTOP, by its PID: the kernel still
// accepts connections on its port, but nothing answers, as with a Redis
// that hangs (a long-running script, swapping, a stalled disk) or a
// network that drops packets. It is resumed when the test ends.
func (s *Server) Pause(t testing.TB) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP %s: %v", s.Addr, err)
	}
	t.Cleanup(s.Resume)
}

// Resume continues a paused program (SIGCONT, by its PID).
func (s *Server) Resume() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGCONT)
}

// Conn returns a client of the server alone for a test's own checks; it
// is closed when the test ends.
func (s *Server) Conn(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr, DialTimeout: 5 * time.Second, ReadTimeout: 15 * time.Second,
		MaxRetries: -1, Protocol: 2, DisableIdentity: true, PoolSize: 4})
	t.Cleanup(func() { c.Close() })
	return c
}

// PID returns the program's process ID.
func (s *Server) PID() int { return s.cmd.Process.Pid }
