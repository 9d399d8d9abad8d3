package http

import (
	"io"
	"net"
	"os"
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
