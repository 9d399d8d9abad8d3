package clients

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/chihaya/chihaya/internal/proctest"
)

// waitFor polls cond until it holds, the process it depends on dies, or
// ctx ends; the last state cond described is in the failure message.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() (ok bool, state string), procs ...*proctest.Proc) {
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
			if p.Exited() {
				t.Fatalf("%s: %s exited (%v) first; last state: %s", what, p.Name, p.Err(), last)
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
