package clients

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/chihaya/chihaya/internal/prereq"
	"github.com/chihaya/chihaya/middleware/eventstream"
)

// passkeySite is a private tracker's site for a real client: it admits the
// passkey "member" and refuses others (`http approval`), and receives the
// tracker's announce events (`event stream`, sink http).
type passkeySite struct {
	*httptest.Server
	mu     sync.Mutex
	events []eventstream.Event
}

func newPasskeySite(t *testing.T) *passkeySite {
	s := &passkeySite{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/approve":
			var q struct {
				Params map[string]string `json:"params"`
			}
			_ = json.Unmarshal(body, &q)
			if q.Params["passkey"] == "member" {
				io.WriteString(w, `{"allow": true}`)
				return
			}
			io.WriteString(w, `{"allow": false, "reason": "passkey unknown"}`)
		case "/events":
			evs, _ := eventstream.ReadBatch(body)
			s.mu.Lock()
			s.events = append(s.events, evs...)
			s.mu.Unlock()
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// completed returns the `completed` event of the passkey's peers for the
// torrent, if one came.
func (s *passkeySite) completed(passkey, infoHash string) (eventstream.Event, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.events {
		if e.Params["passkey"] == passkey && e.InfoHash == infoHash && e.Event == "completed" {
			return e, true
		}
	}
	return eventstream.Event{}, false
}

// TestPasskeyApprovedDownload is the private tracker with a real client:
// the site admits announces by passkey (carried in the announce URL's query,
// over UDP in BEP 41 URL data), a torrent announced with an unknown passkey
// is refused with the site's reason, a member's download completes, and the
// site receives the completion with the client's downloaded total.
func TestPasskeyApprovedDownload(t *testing.T) {
	for _, transport := range []string{"http", "udp"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			prereq.Program(t, "mktorrent", "mktorrent")
			installed["libtorrent"](t)
			site := newPasskeySite(t)
			tr := startChihayaWith(t, "127.0.0.1", fmt.Sprintf(`  prehooks:
    - name: http approval
      options:
        url: %q
        cache_key: ["query:passkey", info_hash]
        timeout: 1s
  posthooks:
    - name: event stream
      options:
        sink: http
        url: %q
        batch_size: 1
        flush_interval: 100ms
`, site.URL+"/approve", site.URL+"/events"))
			ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
			defer cancel()

			intruder := newSwarm(t, tr, transport)
			withAnnounceQuery(t, intruder, "passkey=intruder")
			wantRefused(t, ctx, tr, transport, intruder, "passkey unknown")

			s := newSwarm(t, tr, transport)
			withAnnounceQuery(t, s, "passkey=member")
			seed, down := wantDownload(t, ctx, tr, s)
			ih := fmt.Sprintf("%x", s.infoHash)
			waitFor(t, ctx, "the site receives the completion", func() (bool, string) {
				e, ok := site.completed("member", ih)
				if !ok {
					return false, "no completed event yet"
				}
				return e.Downloaded >= uint64(s.size) && e.Left == 0, fmt.Sprintf("completed event %+v", e)
			}, seed, down)
		})
	}
}
