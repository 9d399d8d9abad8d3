package http

import (
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chihaya/chihaya/frontend/frontendtest"
)

// TestReadTimeoutCountsFromTheFirstWait checks that http.read_timeout
// bounds the whole read of a new connection's first request, the wait for
// its first byte included: a client that sends nothing for a while (its
// connection parked in the idle poller) and then trickles its request is
// not given a second read_timeout from its first byte. The connection is
// handed to the server as the listener would (a fresh plain socket), over
// a socket pair, so that the kernel's deferred accept does not hold it
// back while it is silent.
func TestReadTimeoutCountsFromTheFirstWait(t *testing.T) {
	const readTimeout = 2 * time.Second
	f := startFrontend(t, frontendtest.NewLogic(), "127.0.0.1:0", func(c *Config) { c.ReadTimeout = readTimeout })
	if f.srv.idle == nil {
		t.Skip("no epoll: new connections are not parked")
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	cf := os.NewFile(uintptr(fds[1]), "client")
	client, err := net.FileConn(cf)
	cf.Close()
	if err != nil {
		syscall.Close(fds[0])
		t.Fatal(err)
	}
	defer client.Close()
	client.SetDeadline(time.Now().Add(30 * time.Second)) // safety net only
	c := &conn{s: f.srv, fd: fds[0], fresh: true}
	c.state.Store(stateActive)
	if !f.srv.track(c) {
		t.Fatal("server shutting down")
	}
	go c.serve()

	// Silent for 0.7 read_timeout: the connection waits in the poller.
	time.Sleep(readTimeout * 7 / 10)
	if _, err := io.WriteString(client, "GET "+announceURL("", "/announce", 1)); err != nil {
		t.Fatal(err)
	}
	// The rest comes 1.3 read_timeout after the connection was made:
	// too late, the server must have given up on it by then.
	time.Sleep(readTimeout * 6 / 10)
	io.WriteString(client, " HTTP/1.1\r\nHost: x\r\n\r\n") //nolint:errcheck // may find the connection closed
	got, _ := io.ReadAll(client)
	if len(got) != 0 {
		t.Errorf("a request completed 1.3 read_timeout after its connection was made was answered: %q", got)
	}
}

// TestOutOfDescriptorsIsCountedAndOutlived checks the accept path when the
// process runs out of file descriptors (EMFILE): the tracker counts it
// (errors_total{reason="accept_error"}), waits between tries rather than
// spin on a listener that stays readable, and serves the waiting client
// once descriptors are free again.
func TestOutOfDescriptorsIsCountedAndOutlived(t *testing.T) {
	f := startFrontend(t, frontendtest.NewLogic(), "127.0.0.1:0", nil)
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	before := frontendtest.ErrorsCounted("http", "accept_error")
	// A low limit, every descriptor under it taken but one: room for
	// the client's socket, none for the server's side of it.
	lim := syscall.Rlimit{Cur: uint64(len(fds) + 16), Max: old.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("setrlimit: %v", err)
	}
	var fillers []int
	restored := false
	restore := func() {
		if !restored {
			restored = true
			for _, fd := range fillers {
				syscall.Close(fd)
			}
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer restore()
	for {
		fd, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			break
		}
		fillers = append(fillers, fd)
	}
	if len(fillers) == 0 {
		restore()
		t.Fatal("no descriptor to free for the client")
	}
	syscall.Close(fillers[len(fillers)-1])
	fillers = fillers[:len(fillers)-1]
	client, err := net.Dial("tcp", f.Addr().String())
	if err != nil {
		restore()
		t.Fatalf("dial with the limit at %d: %v", lim.Cur, err)
	}
	defer client.Close()
	client.SetDeadline(time.Now().Add(30 * time.Second)) // safety net only
	if _, err := io.WriteString(client, "GET "+announceURL("", "/announce", 1)+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		restore()
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for frontendtest.ErrorsCounted("http", "accept_error") == before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // let a spinning acceptor show
	failed := frontendtest.ErrorsCounted("http", "accept_error") - before
	restore()
	if failed == 0 {
		t.Fatal("accept failing for want of descriptors was not counted")
	}
	// Backing off from 5 ms, an acceptor tries a few times in 0.3 s; one
	// that spins tries hundreds of thousands of times.
	if failed > 1000 {
		t.Errorf("%v failed accepts in about 0.3 s: the acceptor spins", failed)
	}
	got, _ := io.ReadAll(client)
	if !strings.Contains(string(got), "200 OK") {
		t.Errorf("the client waiting while descriptors ran out got %q, want an answer", got)
	}
}
