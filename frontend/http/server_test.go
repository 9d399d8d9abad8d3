package http

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/chihaya/chihaya/frontend/frontendtest"
)

// discardConn is a connection whose writes vanish (counted), so that a
// benchmark sees only the cost of the frontend.
type discardConn struct {
	net.Conn
	n int
}

func (c *discardConn) Write(p []byte) (int, error)      { c.n += len(p); return len(p), nil }
func (c *discardConn) SetWriteDeadline(time.Time) error { return nil }
func (c *discardConn) Close() error                     { return nil }

// testConn returns a server connection of f over nc.
func testConn(f *Frontend, nc net.Conn) *conn {
	if f.srv == nil {
		f.srv = newServer(f, Config{WriteTimeout: time.Second, ReadTimeout: time.Second, IdleTimeout: time.Second, MaxHeaderBytes: DefaultMaxHeaderBytes})
	}
	return &conn{s: f.srv, nc: nc, remote: netip.MustParseAddrPort("127.0.0.1:5555")}
}

func TestParseHead(t *testing.T) {
	tests := []struct {
		name, head string
		err        error
		check      func(r *request) bool
	}{
		{"plain", "GET /announce?a=b HTTP/1.1\r\nHost: x\r\n\r\n", nil, func(r *request) bool {
			return string(r.method) == "GET" && string(r.target) == "/announce?a=b" && !r.close && !r.http10
		}},
		{"bare LF", "GET /a HTTP/1.1\nHost: x\n\n", nil, func(r *request) bool { return string(r.target) == "/a" }},
		{"HTTP/1.0 closes", "GET /a HTTP/1.0\r\n\r\n", nil, func(r *request) bool { return r.http10 && r.close }},
		{"HTTP/1.0 keep-alive", "GET /a HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", nil, func(r *request) bool { return r.http10 && !r.close }},
		{"Connection: close", "GET /a HTTP/1.1\r\nHost: x\r\nconnection: foo, CLOSE\r\n\r\n", nil, func(r *request) bool { return r.close }},
		{"a body closes", "GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", nil, func(r *request) bool { return r.close && r.body }},
		{"Content-Length 0", "GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", nil, func(r *request) bool { return !r.close }},
		{"chunked body closes", "GET /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", nil, func(r *request) bool { return r.close && r.body }},
		{"100-continue", "GET /a HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\n\r\n", nil, nil},
		{"gzip accepted", "GET /a HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br\r\naccept-encoding: gzip\r\n\r\n", nil, func(r *request) bool { return r.gzip }},
		{"first gzip entry decides", "GET /a HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip;q=0\r\nAccept-Encoding: gzip\r\n\r\n", nil, func(r *request) bool { return !r.gzip }},
		{"value trimmed", "GET /a HTTP/1.1\r\nHost: x\r\nX-Real-IP: \t 192.0.2.1 \r\n\r\n", nil, func(r *request) bool { return string(r.realIP) == "192.0.2.1" }},
		{"last real IP line", "GET /a HTTP/1.1\r\nHost: x\r\nX-Real-IP: 192.0.2.1\r\nx-real-ip: 192.0.2.2\r\n\r\n", nil, func(r *request) bool { return string(r.realIP) == "192.0.2.2" }},
		{"missing Host", "GET /a HTTP/1.1\r\n\r\n", errNoHost, nil},
		{"HTTP/2", "GET /a HTTP/2.0\r\nHost: x\r\n\r\n", errBadVersion, nil},
		{"no version", "GET /a\r\nHost: x\r\n\r\n", errBadRequest, nil},
		{"empty method", " /a HTTP/1.1\r\nHost: x\r\n\r\n", errBadRequest, nil},
		{"control byte in target", "GET /a\x01 HTTP/1.1\r\nHost: x\r\n\r\n", errBadRequest, nil},
		{"header without colon", "GET /a HTTP/1.1\r\nHost: x\r\nnonsense\r\n\r\n", errBadHeaderLine, nil},
		{"space before colon", "GET /a HTTP/1.1\r\nHost : x\r\n\r\n", errBadHeaderLine, nil},
		{"folded line", "GET /a HTTP/1.1\r\nHost: x\r\n continued\r\n\r\n", errBadHeaderLine, nil},
		{"unknown expectation", "GET /a HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n", errBadExpect, nil},
		{"gzip transfer encoding", "GET /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", errBadTransfer, nil},
		{"bad Content-Length", "GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", errBadLength, nil},
		{"contradictory Content-Length", "GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", errBadLength, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			head := []byte(tt.head)
			if end := headEnd(head, 0); end != len(head) {
				t.Fatalf("headEnd = %d, want %d", end, len(head))
			}
			var r request
			err := parseHead(head, "x-real-ip", &r)
			if err != tt.err {
				t.Fatalf("parseHead error = %v, want %v", err, tt.err)
			}
			if tt.check != nil && !tt.check(&r) {
				t.Errorf("parseHead = %+v", r)
			}
		})
	}
}

func TestHeadEnd(t *testing.T) {
	head := "GET / HTTP/1.1\r\nHost: x\r\n\r\nNEXT"
	// Fed byte by byte, the end is found where it is, however the head
	// was cut.
	scanned := 0
	for n := 1; n <= len(head); n++ {
		end := headEnd([]byte(head[:n]), scanned)
		want := -1
		if n >= len(head)-4 {
			want = len(head) - 4
		}
		if end != want {
			t.Fatalf("headEnd of %d bytes = %d, want %d", n, end, want)
		}
		if end < 0 {
			scanned = n
		}
	}
}

// FuzzParseHead checks that the head parser never panics, and that what it
// accepts net/http's own reader accepts too, with the same method, target
// and keep-alive decision.
func FuzzParseHead(f *testing.F) {
	for _, s := range []string{
		"GET /announce?info_hash=%aa HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"GET /a HTTP/1.1\nHost: x\nX-Forwarded-For: 1.2.3.4, 5.6.7.8\n\n",
		"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		end := headEnd([]byte(s), 0)
		if end < 0 {
			return
		}
		var r request
		if err := parseHead([]byte(s[:end]), "x-forwarded-for", &r); err != nil {
			return
		}
		req, err := nethttp.ReadRequest(bufio.NewReader(strings.NewReader(s[:end])))
		if err != nil {
			// net/http is stricter on some points we do not need
			// (header names, URL syntax).
			return
		}
		if req.Method != string(r.method) || req.RequestURI != string(r.target) {
			t.Errorf("parsed %q %q, net/http %q %q", r.method, r.target, req.Method, req.RequestURI)
		}
		if req.Close != r.close && !r.body {
			t.Errorf("close = %v, net/http says %v", r.close, req.Close)
		}
	})
}

// TestServerTimeouts checks idle_timeout and read_timeout as a client sees
// them: a kept-alive connection is closed when idle too long, a request
// that is sent too slowly is dropped.
func TestServerTimeouts(t *testing.T) {
	f := startFrontend(t, frontendtest.NewLogic(), "127.0.0.1:0", func(c *Config) {
		c.EnableKeepAlive = true
		c.IdleTimeout = 200 * time.Millisecond
		c.ReadTimeout = 5 * time.Second
	})
	c, err := net.Dial("tcp", f.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second)) // safety net only
	br := bufio.NewReader(c)
	for i := 0; i < 2; i++ {
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", announceURL("", "/announce", 1))
		resp, err := nethttp.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if r := readReply(t, resp); r.body["failure reason"] != nil || resp.Close {
			t.Fatalf("request %d: %q, close %v", i, r.raw, resp.Close)
		}
	}
	start := time.Now()
	if n, err := br.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("idle connection read %d bytes, %v; want EOF", n, err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("idle connection closed after %v", d)
	}
}

// dialKeepAlive starts a frontend that keeps connections alive and opens
// one connection to it.
func dialKeepAlive(t *testing.T) net.Conn {
	t.Helper()
	f := startFrontend(t, frontendtest.NewLogic(), "127.0.0.1:0", func(c *Config) { c.EnableKeepAlive = true })
	c, err := net.Dial("tcp", f.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second)) // safety net only
	return c
}

// TestPipelined checks that requests sent back to back on one connection
// are answered in order.
func TestPipelined(t *testing.T) {
	c := dialKeepAlive(t)
	var reqs strings.Builder
	for _, p := range []string{"/announce", "/nowhere", "/announce"} {
		fmt.Fprintf(&reqs, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", announceURL("", p, 1))
	}
	if _, err := io.WriteString(c, reqs.String()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for i, unknown := range []bool{false, true, false} {
		resp, err := nethttp.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		r := readReply(t, resp)
		if got := r.body["failure reason"] == string(errUnknownPath); got != unknown {
			t.Errorf("reply %d = %q", i, r.raw)
		}
	}
}

// TestHeadRequest checks that a HEAD request is refused without a body,
// so that the next request on the connection is read right.
func TestHeadRequest(t *testing.T) {
	c := dialKeepAlive(t)
	target := announceURL("", "/announce", 1)
	fmt.Fprintf(c, "HEAD %s HTTP/1.1\r\nHost: x\r\n\r\nGET %s HTTP/1.1\r\nHost: x\r\n\r\n", target, target)
	br := bufio.NewReader(c)
	head, err := nethttp.ReadResponse(br, &nethttp.Request{Method: "HEAD"})
	if err != nil {
		t.Fatal(err)
	}
	head.Body.Close()
	if head.StatusCode != 200 || head.ContentLength <= 0 {
		t.Errorf("HEAD answered %d with Content-Length %d", head.StatusCode, head.ContentLength)
	}
	resp, err := nethttp.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("the GET after a HEAD: %v", err)
	}
	if r := readReply(t, resp); r.body["failure reason"] != nil {
		t.Errorf("the GET after a HEAD: %q", r.raw)
	}
}

// TestStopClosesIdleConnections checks that Stop does not wait for kept-
// alive connections that have no request in flight.
func TestStopClosesIdleConnections(t *testing.T) {
	cfg := Config{Addr: "127.0.0.1:0", EnableKeepAlive: true}.WithDefaults()
	f, err := NewFrontend(frontendtest.NewLogic(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	client := &nethttp.Client{Transport: &nethttp.Transport{}}
	defer client.CloseIdleConnections()
	get(t, client, announceURL(baseURL(f), "/announce", 1))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.Stop(ctx); err != nil {
		t.Fatalf("Stop with an idle kept-alive connection: %v", err)
	}
}

// BenchmarkServeAnnounce measures an announce from the parsed request
// head to the reply handed to the connection: routing, the query, the
// logic (frontendtest's), and the reply.
func BenchmarkServeAnnounce(b *testing.B) {
	logic := frontendtest.NewLogic()
	f, err := NewFrontend(logic, Config{Addr: "127.0.0.1:0"}.WithDefaults())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Stop(context.Background()) })
	c := testConn(f, &discardConn{})
	for i := 0; i < 60; i++ {
		c.remote = netip.MustParseAddrPort(fmt.Sprintf("127.0.0.%d:%d", i+2, 1000+i))
		serveHead(b, f, c, "GET "+announceURL("", "/announce", 2000+i, "peer_id", fmt.Sprintf("-XX0000-%012d", i))+" HTTP/1.1\r\nHost: x\r\n\r\n")
	}
	c.remote = netip.MustParseAddrPort("127.0.0.1:5555")
	head := []byte("GET " + announceURL("", "/announce", 1) + " HTTP/1.1\r\nHost: x\r\nUser-Agent: bench\r\nAccept-Encoding: gzip\r\n\r\n")
	b.ReportAllocs()
	for b.Loop() {
		var r request
		if err := parseHead(head, "", &r); err != nil {
			b.Fatal(err)
		}
		f.dispatch(c, &r)
	}
}

func serveHead(tb testing.TB, f *Frontend, c *conn, head string) {
	var r request
	if err := parseHead([]byte(head), "", &r); err != nil {
		tb.Fatal(err)
	}
	f.dispatch(c, &r)
}

// BenchmarkParseHead measures reading a typical client's request head.
func BenchmarkParseHead(b *testing.B) {
	head := []byte("GET " + announceURL("", "/announce", 6881) + " HTTP/1.1\r\nHost: tracker.example.org:6969\r\nUser-Agent: qBittorrent/4.6.2\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n")
	b.ReportAllocs()
	b.SetBytes(int64(len(head)))
	for b.Loop() {
		var r request
		if headEnd(head, 0) != len(head) {
			b.Fatal("no end of head")
		}
		if err := parseHead(head, "x-forwarded-for", &r); err != nil {
			b.Fatal(err)
		}
	}
}
