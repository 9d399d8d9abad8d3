package clientapproval

import (
	"context"
	"errors"
	"testing"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/internal/configtest"
	"github.com/chihaya/chihaya/middleware"
)

// TestLoadAccepts: options that load, and what they load to; the
// rejected ones are files in testdata (TestBadOptions).
func TestLoadAccepts(t *testing.T) {
	for _, tc := range []struct{ name, yaml string }{
		{name: "whitelist", yaml: "whitelist: [OP1011, TR3000, qB]\n"},
		{name: "blacklist", yaml: "blacklist: [UT]\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := plugin.Load([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

func peerID(s string) (id bittorrent.PeerID) {
	copy(id[:], s)
	return id
}

func TestClientID(t *testing.T) {
	for _, tc := range []struct{ peerID, want string }{
		{"-TR3000-0123456789ab", "TR3000"},
		{"-qB4520-0123456789ab", "qB4520"},
		{"OP1011abcdefghijklmn", "OP1011"},
		{"M4-4-0--0123456789ab", "M4-4-0"},
		{"-", "\x00\x00\x00\x00\x00\x00"},
	} {
		got := ClientID(peerID(tc.peerID))
		if string(got[:]) != tc.want {
			t.Errorf("ClientID(%q) = %q, want %q", tc.peerID, got[:], tc.want)
		}
	}
}

func TestHandleAnnounce(t *testing.T) {
	white := New(Config{Whitelist: []string{"TR3000", "OP1011", "qB"}})
	black := New(Config{Blacklist: []string{"UT", "TR2940"}})
	for _, tc := range []struct {
		name    string
		hook    *Hook
		peerID  string
		refused bool
	}{
		{"whitelisted Azureus-style", white, "-TR3000-0123456789ab", false},
		{"whitelisted by prefix", white, "-qB4520-0123456789ab", false},
		{"whitelisted Shad0w-style", white, "OP1011abcdefghijklmn", false},
		{"other version of a listed client", white, "-TR3001-0123456789ab", true},
		{"unlisted client", white, "-UT3550-0123456789ab", true},
		{"prefix is not a substring", white, "-XqB452-0123456789ab", true},
		{"blacklisted by prefix", black, "-UT3550-0123456789ab", true},
		{"blacklisted exactly", black, "-TR2940-0123456789ab", true},
		{"not blacklisted", black, "-TR3000-0123456789ab", false},
		{"prefix match is case sensitive", black, "-ut3550-0123456789ab", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := &bittorrent.AnnounceRequest{Peer: bittorrent.Peer{ID: peerID(tc.peerID)}, Params: bittorrent.ParamsNone}
			err := tc.hook.HandleAnnounce(context.Background(), req, &bittorrent.AnnounceResponse{})
			if !tc.refused {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var r middleware.Refusal
			if !errors.As(err, &r) || r.Reason != "unapproved_client" {
				t.Fatalf("error %#v, want an unapproved_client refusal", err)
			}
			var ce bittorrent.ClientError
			if !errors.As(err, &ce) || ce.Error() != "unapproved client: this tracker does not accept your BitTorrent client" {
				t.Fatalf("client sees %q", err)
			}
		})
	}
}

func TestScrapeAdmitted(t *testing.T) {
	h := New(Config{Whitelist: []string{"TR3000"}})
	if err := h.HandleScrape(context.Background(), &bittorrent.ScrapeRequest{}, &bittorrent.ScrapeResponse{}); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkHandleAnnounce(b *testing.B) {
	h := New(Config{Blacklist: []string{"UT", "TR2940", "BC0001", "lt"}})
	req := &bittorrent.AnnounceRequest{Peer: bittorrent.Peer{ID: peerID("-TR3000-0123456789ab")}, Params: bittorrent.ParamsNone}
	var resp bittorrent.AnnounceResponse
	b.ReportAllocs()
	for b.Loop() {
		if err := h.HandleAnnounce(context.Background(), req, &resp); err != nil {
			b.Fatal(err)
		}
	}
}

// TestBadOptions: every rejected options file in testdata, with the exact
// error the registry gives (the daemon puts the entry's key and the line in
// front: prehooks[0].options...).
func TestBadOptions(t *testing.T) {
	configtest.BadHookOptions(t, Name, []configtest.Case{
		{File: "bad-both-lists.yaml", Want: `options (client approval): whitelist and blacklist are both set; use one`},
		{File: "bad-no-list.yaml", Want: `options (client approval): one of whitelist or blacklist must be set`},
		{File: "bad-empty-lists.yaml", Want: `options (client approval): one of whitelist or blacklist must be set`},
		{File: "bad-entry-too-long.yaml", Want: `options.whitelist[1]: client ID "TR30000" must be 1 to 6 bytes, got 7`},
		{File: "bad-empty-entry.yaml", Want: `options.blacklist[0]: client ID "" must be 1 to 6 bytes, got 0`},
		{File: "bad-unknown-key.yaml", Want: `line 1: unknown key "whitelsit" in options (client approval)`},
		{File: "bad-not-a-list.yaml", Want: "line 1: options.whitelist: cannot unmarshal !!str `TR3000` into a list"},
	})
}
