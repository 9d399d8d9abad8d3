package redis

import (
	"bufio"
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

	"github.com/gomodule/redigo/redis"
)

// program returns the path of a Redis program, skipping the test when it
// is missing, or failing it under CI=true, where the test script installs
// it.
func program(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found (CI=true): %v", name, err)
		}
		t.Skipf("%s not found: %v", name, err)
	}
	return path
}

// server is a redis-server (or sentinel) started by a test.
type server struct {
	addr string
	cmd  *exec.Cmd
	dir  string

	mu     sync.Mutex
	log    strings.Builder
	exited chan struct{}
}

// freePort returns a port that was free a moment ago: Redis cannot be told
// to pick one itself (--port 0 disables TCP), so the caller retries when
// another process takes it first.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// startRedis runs redis-server on a free loopback port, without
// persistence, in its own temporary directory, and kills it when the test
// ends. extra is appended to the configuration file ("replicaof ...").
func startRedis(t testing.TB, extra ...string) *server {
	t.Helper()
	return startProgram(t, program(t, "redis-server"), nil, extra...)
}

// startSentinel runs redis-sentinel with the given configuration lines.
func startSentinel(t testing.TB, conf ...string) *server {
	t.Helper()
	return startProgram(t, program(t, "redis-sentinel"), nil, conf...)
}

func startProgram(t testing.TB, bin string, flags []string, extra ...string) *server {
	t.Helper()
	for attempt := 0; ; attempt++ {
		s, err := tryStart(t, bin, flags, freePort(t), extra)
		if err == nil {
			return s
		}
		if attempt == 4 {
			t.Fatalf("%s did not start: %v", bin, err)
		}
	}
}

func tryStart(t testing.TB, bin string, flags []string, port int, extra []string) (*server, error) {
	dir, err := os.MkdirTemp("", "chihaya-redis-")
	if err != nil {
		t.Fatal(err)
	}
	conf := []string{
		"port " + strconv.Itoa(port),
		"bind 127.0.0.1",
		`save ""`,
		"appendonly no",
		"dir " + dir,
		"daemonize no",
		"logfile \"\"",
	}
	conf = append(conf, extra...)
	path := filepath.Join(dir, "redis.conf")
	if err := os.WriteFile(path, []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &server{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: dir, exited: make(chan struct{})}
	s.cmd = exec.Command(bin, append([]string{path}, flags...)...)
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
	// Wait until it answers, or exits (the port was taken meanwhile).
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := redis.Dial("tcp", s.addr, redis.DialConnectTimeout(time.Second), redis.DialReadTimeout(time.Second))
		if err == nil {
			_, err = c.Do("PING")
			c.Close()
			if _, reply := err.(redis.Error); err == nil || reply {
				break // any reply, even NOAUTH, means it serves
			}
		}
		select {
		case <-s.exited:
			os.RemoveAll(dir)
			return nil, fmt.Errorf("exited: %s", s.logText())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.kill()
			os.RemoveAll(dir)
			return nil, fmt.Errorf("no answer within 10s: %s", s.logText())
		}
	}
	t.Cleanup(func() {
		s.kill()
		os.RemoveAll(dir)
	})
	return s, nil
}

func (s *server) logText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// kill stops the server by its PID and waits for it to exit.
func (s *server) kill() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
}

// conn opens a direct connection to the server for a test's own checks.
func (s *server) conn(t testing.TB) redis.Conn {
	t.Helper()
	c, err := redis.Dial("tcp", s.addr, redis.DialConnectTimeout(5*time.Second), redis.DialReadTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
