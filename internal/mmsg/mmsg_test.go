package mmsg

import (
	"fmt"
	"net"
	"sort"
	"testing"
	"time"
)

func bufs(n, size int) [][]byte {
	b := make([][]byte, n)
	for i := range b {
		b[i] = make([]byte, size)
	}
	return b
}

// pair returns a listening socket and a client socket connected to it,
// each with a Conn of batch size n.
func pair(t *testing.T, network, addr string, n int) (srvConn, cliConn *net.UDPConn, srv, cli *Conn) {
	t.Helper()
	srvConn, err := net.ListenUDP(network, &net.UDPAddr{IP: net.ParseIP(addr)})
	if err != nil {
		t.Skipf("no %s loopback: %v", network, err)
	}
	t.Cleanup(func() { srvConn.Close() })
	cliConn, err = net.DialUDP(network, nil, srvConn.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cliConn.Close() })
	if srv, err = New(srvConn, n); err != nil {
		t.Fatal(err)
	}
	if cli, err = New(cliConn, n); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	_ = srvConn.SetReadDeadline(deadline)
	_ = cliConn.SetReadDeadline(deadline)
	return srvConn, cliConn, srv, cli
}

// writeAll writes every buffer, resuming after partial writes.
func writeAll(t *testing.T, c *Conn, out [][]byte, to []int) {
	t.Helper()
	for sent := 0; sent < len(out); {
		var dst []int
		if to != nil {
			dst = to[sent:]
		}
		k, err := c.Write(out[sent:], dst)
		if err != nil {
			t.Fatalf("Write: %v", err)
		}
		sent += k
	}
}

// TestRoundTrip sends a batch from a connected client to a server, which
// answers every datagram of each batch it reads to its source, as the UDP
// frontend does; the client reads the answers as chihaya-bench does.
func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct{ network, addr string }{{"udp4", "127.0.0.1"}, {"udp6", "::1"}} {
		t.Run(tc.network, func(t *testing.T) {
			const n = 8
			_, cliConn, srv, cli := pair(t, tc.network, tc.addr, n)
			var out [][]byte
			for i := 0; i < n; i++ {
				out = append(out, []byte(fmt.Sprintf("request %d", i)))
			}
			writeAll(t, cli, out, nil)

			in := bufs(n, 64)
			cliAddr := cliConn.LocalAddr().(*net.UDPAddr).AddrPort()
			var got []string
			for len(got) < n {
				m, err := srv.Read(in)
				if err != nil {
					t.Fatalf("server Read after %d datagrams: %v", len(got), err)
				}
				var replies [][]byte
				var to []int
				for i := 0; i < m; i++ {
					if src := srv.Source(i); src.Addr().Unmap() != cliAddr.Addr() || src.Port() != cliAddr.Port() {
						t.Errorf("datagram %d came from %v, want %v", i, src, cliAddr)
					}
					p := string(in[i][:srv.Len(i)])
					got = append(got, p)
					replies = append(replies, []byte("answer to "+p))
					to = append(to, i)
				}
				writeAll(t, srv, replies, to)
			}
			for i, g := range got {
				if want := fmt.Sprintf("request %d", i); g != want {
					t.Errorf("server read %q as datagram %d, want %q", g, i, want)
				}
			}

			var answers []string
			for len(answers) < n {
				m, err := cli.Read(in)
				if err != nil {
					t.Fatalf("client Read after %d answers: %v", len(answers), err)
				}
				for i := 0; i < m; i++ {
					answers = append(answers, string(in[i][:cli.Len(i)]))
				}
			}
			sort.Strings(answers)
			for i, a := range answers {
				if want := fmt.Sprintf("answer to request %d", i); a != want {
					t.Errorf("client read %q, want %q", a, want)
				}
			}
		})
	}
}

// TestTruncated: a datagram longer than its buffer is reported, not
// handed over cut.
func TestTruncated(t *testing.T) {
	_, _, srv, cli := pair(t, "udp4", "127.0.0.1", 2)
	writeAll(t, cli, [][]byte{[]byte("0123456789"), []byte("short")}, nil)
	in := bufs(2, 8)
	var seen []string
	for len(seen) < 2 {
		m, err := srv.Read(in)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		for i := 0; i < m; i++ {
			if srv.Truncated(i) {
				seen = append(seen, "truncated")
			} else {
				seen = append(seen, string(in[i][:srv.Len(i)]))
			}
		}
	}
	if want := []string{"truncated", "short"}; fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("read %q, want %q", seen, want)
	}
}

// TestDeadline: Read returns when the socket's read deadline passes.
func TestDeadline(t *testing.T) {
	srvConn, _, srv, _ := pair(t, "udp4", "127.0.0.1", 2)
	_ = srvConn.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if n, err := srv.Read(bufs(2, 8)); err == nil {
		t.Errorf("Read with nothing sent = %d, nil; want a deadline error", n)
	}
}

// TestNoAllocs holds the Linux path to zero allocations per batch.
func TestNoAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation count only")
	}
	_, _, srv, cli := pair(t, "udp4", "127.0.0.1", 4)
	out := [][]byte{[]byte("a"), []byte("b")}
	in := bufs(4, 8)
	to := []int{0, 1}
	allocs := testing.AllocsPerRun(50, func() {
		writeAll(t, cli, out, nil)
		got := 0
		for got < 2 {
			m, err := srv.Read(in[got:])
			if err != nil {
				t.Fatal(err)
			}
			got += m
		}
		_ = srv.Source(0)
		if _, err := srv.Write(out[:1], to[:1]); err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Read(in); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 && isLinux {
		t.Errorf("%v allocations per round, want 0", allocs)
	}
}
