package http

import (
	"bufio"
	nethttp "net/http"
	"strings"
	"testing"

	"github.com/chihaya/chihaya/frontend/frontendtest"
)

// TestAbsoluteFormTarget checks that an announce whose request-target is
// in absolute form (as a client configured with an HTTP proxy sends it)
// is read like its origin form: its query included.
func TestAbsoluteFormTarget(t *testing.T) {
	f := startFrontend(t, frontendtest.NewLogic(), "127.0.0.1:0", nil)
	for _, scheme := range []string{"http://", "https://"} {
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
