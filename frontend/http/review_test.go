package http

import (
	"bufio"
	nethttp "net/http"
	"strings"
	"testing"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/frontend/frontendtest"
)

// TestAbsoluteFormTarget checks that an announce whose request-target is
// in absolute form (as a client configured with an HTTP proxy sends it)
// is read like its origin form: its query included, its scheme in any
// case (as net/http read it).
func TestAbsoluteFormTarget(t *testing.T) {
	f := startFrontend(t, frontendtest.NewLogic(), "127.0.0.1:0", nil)
	for _, scheme := range []string{"http://", "https://", "HTTP://", "Https://"} {
		t.Run(scheme, func(t *testing.T) {
			target := scheme + f.Addr().String() + announceURL("", "/announce", 1)
			got := rawExchange(t, f.Addr().String(), []byte("GET "+target+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
			resp, err := nethttp.ReadResponse(bufio.NewReader(strings.NewReader(string(got))), nil)
			if err != nil {
				t.Fatalf("reading the answer %q: %v", got, err)
			}
			if r := readReply(t, resp); r.body["failure reason"] != nil || r.body["interval"] == nil {
				t.Errorf("absolute-form announce answered %q, want an announce reply", r.raw)
			}
		})
	}
}

// TestControlBytesInHeaders checks that a header line holding a bare CR,
// a NUL or another control byte is refused as malformed and counted, as
// net/http did, rather than read as part of a value; so is a second Host.
func TestControlBytesInHeaders(t *testing.T) {
	f := startFrontend(t, frontendtest.NewLogic(), "127.0.0.1:0", nil)
	tests := []struct{ name, line string }{
		{"bare CR ending a line", "Host: x\rX-Other: y"},
		{"bare CR inside a value", "X-Test: a\rb"},
		{"NUL", "X-Test: a\x00b"},
		{"DEL", "X-Test: a\x7fb"},
		{"escape", "User-Agent: \x1b[31m"},
		{"a second Host", "host: y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := frontendtest.ErrorsCounted("http", "bad_request")
			send := "GET " + announceURL("", "/announce", 1) + " HTTP/1.1\r\nHost: x\r\n" + tt.line + "\r\n\r\n"
			got := rawExchange(t, f.Addr().String(), []byte(send))
			resp, err := nethttp.ReadResponse(bufio.NewReader(strings.NewReader(string(got))), nil)
			if err != nil {
				t.Fatalf("reading the answer %q: %v", got, err)
			}
			wantFailure(t, readReply(t, resp), string(bittorrent.ErrMalformedRequest))
			if after := frontendtest.ErrorsCounted("http", "bad_request"); after != before+1 {
				t.Errorf("errors_total{reason=bad_request} went from %v to %v, want one more", before, after)
			}
		})
	}
	// A tab inside a value is allowed.
	got := rawExchange(t, f.Addr().String(), []byte("GET "+announceURL("", "/announce", 1)+" HTTP/1.1\r\nHost: x\r\nUser-Agent: a\tb\r\nConnection: close\r\n\r\n"))
	if !strings.Contains(string(got), "8:interval") {
		t.Errorf("a tab in a header value: answered %q, want an announce reply", got)
	}
}

// TestBadTargetAnnouncesTheClose checks that a request whose target cannot
// be read is answered with "Connection: close" before the connection is
// closed, so that a keep-alive client does not send its next request on a
// connection the server is closing.
func TestBadTargetAnnouncesTheClose(t *testing.T) {
	f := startFrontend(t, frontendtest.NewLogic(), "127.0.0.1:0", func(c *Config) { c.EnableKeepAlive = true })
	for _, target := range []string{"announce", "ftp://x/announce", "/announce%zz"} {
		t.Run(target, func(t *testing.T) {
			got := rawExchange(t, f.Addr().String(), []byte("GET "+target+" HTTP/1.1\r\nHost: x\r\n\r\n"))
			resp, err := nethttp.ReadResponse(bufio.NewReader(strings.NewReader(string(got))), nil)
			if err != nil {
				t.Fatalf("reading the answer %q: %v", got, err)
			}
			wantFailure(t, readReply(t, resp), string(bittorrent.ErrMalformedRequest))
			if !resp.Close {
				t.Errorf("the answer %q does not say Connection: close, and the connection was closed", got)
			}
		})
	}
}
