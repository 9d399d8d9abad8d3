package clients

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chihaya/chihaya/internal/jwttest"
	"github.com/chihaya/chihaya/internal/prereq"
	"github.com/chihaya/chihaya/internal/proctest"
)

// The token is kept small on purpose: libtorrent 2.0 sends at most 255
// bytes of BEP 41 URL data in a UDP announce and cuts the rest, so a UDP
// token (with its path and "?jwt=") must fit in about 250 bytes. Short issuer,
// audience and key ID, no optional claims, and EdDSA's short signature fit.
func newRegistry(t *testing.T) *jwttest.Issuer {
	t.Helper()
	return jwttest.New(t, jwttest.EdDSA, "r", "t", "k")
}

// token signs a token for ih that expires at expiry, for the registry reg.
func token(t *testing.T, reg *jwttest.Issuer, ih [20]byte, expiry time.Time) string {
	t.Helper()
	tok := reg.Token(t, ih, expiry)
	if n := len("/a?jwt=") + len(tok); n > 255 {
		t.Fatalf("the token makes %d bytes of URL data; libtorrent sends at most 255 over UDP", n)
	}
	return tok
}

// withAnnounceQuery remakes the swarm's torrent with query appended to its
// announce URL. The info dictionary, and so the info hash, stays the same.
func withAnnounceQuery(t *testing.T, s *swarm, query string) {
	t.Helper()
	if err := os.Remove(s.torrent); err != nil {
		t.Fatal(err)
	}
	url := s.tr.announceURL(s.transport) + "?" + query
	if s.transport == "udp" {
		// The path travels in the URL data too: keep it short (a UDP
		// tracker ignores it).
		url = "udp://" + s.tr.udpAddr + "/a?" + query
	}
	if s.makeTorrent(t, url) != s.infoHash {
		t.Fatal("remaking the torrent with a new announce URL changed its info hash")
	}
}

// wantRefused starts libtorrent on s and waits until it logs the tracker's
// refusal want, then checks that the refused client did not join the
// swarm, and stops it.
func wantRefused(t *testing.T, ctx context.Context, tr *tracker, transport string, s *swarm, want string) {
	t.Helper()
	refused, _ := clients["libtorrent"](t, ctx, s, true)
	waitFor(t, ctx, "the client logs the tracker's refusal", func() (bool, string) {
		reasons := failureReasons(refused)
		for _, r := range reasons {
			if r == want {
				return true, r
			}
		}
		// libtorrent 2.0.8 logs a UDP error packet as "tracker sent a
		// failure message" without handing its text to the alert; the
		// text itself is checked over UDP in e2e/hooks_test.go.
		if transport == "udp" && len(reasons) > 0 && strings.Contains(lastTrackerError(refused), "tracker sent a failure message") {
			return true, "UDP refusal"
		}
		return false, fmt.Sprintf("failure reasons in the client's log: %q; last line: %.300s", reasons, lastTrackerError(refused))
	}, refused)
	if c, err := tr.scrape(s.infoHash); err != nil || c.Complete != 0 || c.Incomplete != 0 {
		t.Fatalf("a refused client joined the swarm: %v %v", c, err)
	}
	refused.Kill()
}

// wantDownload has libtorrent seed s and another libtorrent download it
// through the tracker, and returns both once the download is intact.
func wantDownload(t *testing.T, ctx context.Context, tr *tracker, s *swarm) (seed, down *proctest.Proc) {
	t.Helper()
	seed, _ = clients["libtorrent"](t, ctx, s, true)
	waitFor(t, ctx, "the seeder joins the swarm", func() (bool, string) {
		c, err := tr.scrape(s.infoHash)
		if err != nil {
			return false, err.Error()
		}
		return c.Complete == 1, c.String()
	}, seed)
	down, dir := clients["libtorrent"](t, ctx, s, false)
	waitFor(t, ctx, "the download is intact", func() (bool, string) { return s.intact(dir) }, seed, down)
	return seed, down
}

// TestJWTApprovedDownload is the container-registry use case with a real
// client: the tracker admits only announces that carry a token signed by
// the registry for that torrent. A torrent with a valid token downloads
// (over HTTP, and over UDP where the token travels in BEP 41 URL data); the
// same torrent with an expired token is refused and the client logs the
// tracker's failure reason.
func TestJWTApprovedDownload(t *testing.T) {
	for _, transport := range []string{"http", "udp"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			prereq.Program(t, "mktorrent", "mktorrent")
			installed["libtorrent"](t)
			reg := newRegistry(t)
			tr := startChihayaWith(t, "127.0.0.1", fmt.Sprintf(`  prehooks:
    - name: jwt
      options:
        issuer: %q
        audience: %q
        jwk_set_url: %q
        jwk_set_update_interval: 1m
`, reg.Issuer, reg.Audience, reg.KeysURL))

			now := time.Now()

			// Refused: the token expired an hour ago.
			expired := newSwarm(t, tr, transport)
			withAnnounceQuery(t, expired, "jwt="+token(t, reg, expired.infoHash, now.Add(-time.Hour)))
			ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
			defer cancel()
			wantRefused(t, ctx, tr, transport, expired, "unapproved request: jwt expired")

			// Admitted: a token valid for the next hour.
			s := newSwarm(t, tr, transport)
			withAnnounceQuery(t, s, "jwt="+token(t, reg, s.infoHash, now.Add(time.Hour)))
			_, down := wantDownload(t, ctx, tr, s)
			if logContains(down, "unapproved request") {
				t.Fatal("the admitted downloader was refused at some point")
			}
		})
	}
}

// failureReasons returns the tracker failure reasons a libtorrent client
// has logged.
func failureReasons(p *proctest.Proc) []string {
	var out []string
	for _, line := range bytes.Split([]byte(p.Output()), []byte("\n")) {
		var e struct {
			Event  string `json:"event"`
			Reason string `json:"failure_reason"`
		}
		if json.Unmarshal(line, &e) == nil && e.Event == "tracker_error" {
			out = append(out, e.Reason)
		}
	}
	return out
}

// lastTrackerError returns the tail of the client's last tracker error.
func lastTrackerError(p *proctest.Proc) string {
	out := p.Output()
	i := strings.LastIndex(out, `"error":`)
	if i < 0 {
		return ""
	}
	return out[i:]
}
