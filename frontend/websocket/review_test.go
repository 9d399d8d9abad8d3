package websocket

import (
	"bufio"
	"errors"
	"io"
	"net"
	nethttp "net/http"
	"os"
	"testing"
	"time"
)

// TestRefusedUpgradeDoesNotIdleForever: a request that is not an upgrade
// (or is refused) gets its HTTP answer, and then the connection must not
// stay open forever as an idle keep-alive: such connections are counted
// by no per-IP limit, so without a bound anyone could hold any number.
func TestRefusedUpgradeDoesNotIdleForever(t *testing.T) {
	tr := newTracker(t, Config{WriteTimeout: 200 * time.Millisecond})
	nc, err := net.Dial("tcp", tr.f.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := nethttp.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == nethttp.StatusSwitchingProtocols {
		t.Fatalf("a plain GET was upgraded")
	}
	_ = nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	var b [1]byte
	_, err = br.Read(b[:])
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("the idle HTTP connection was still open 3 s after the answer; write_timeout is 200ms")
	}
}

// TestUnsentBodyDoesNotHoldConnection: a request that announces a body and
// never sends it is answered, and then must not hold its connection (and a
// goroutine) forever while net/http waits for the body to discard it.
func TestUnsentBodyDoesNotHoldConnection(t *testing.T) {
	tr := newTracker(t, Config{WriteTimeout: 200 * time.Millisecond})
	nc, err := net.Dial("tcp", tr.f.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Write([]byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	// net/http waits for the body before it answers; either way, the
	// connection must end within the timeout.
	_ = nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = io.Copy(io.Discard, nc)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("the connection was still open after 3 s; write_timeout is 200ms")
	}
}
