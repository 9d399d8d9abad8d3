// Package clientapproval implements the `client approval` hook: it admits
// or refuses announces by the client ID in the peer ID, from a whitelist or
// a blacklist.
package clientapproval

import (
	"context"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/middleware"
)

// Name is the name operators write in the `prehooks` list.
const Name = "client approval"

// ClientIDLen is the length of a client ID as upstream Chihaya defines it.
const ClientIDLen = 6

func init() {
	middleware.Register(plugin)
}

// plugin decodes the hook's options and builds it.
var plugin = middleware.Plugin[Config]{
	Name:     Name,
	Defaults: Config.WithDefaults,
	New:      func(c Config) (middleware.Hook, error) { return New(c), nil },
	Reasons:  []string{"unapproved_client"},
}

// ErrUnapprovedClient refuses an announce from a client the lists exclude.
// It is an interface value built once, so refusing does not allocate.
var ErrUnapprovedClient error = middleware.Refusal{
	Reason: "unapproved_client",
	Err:    bittorrent.ClientError("unapproved client: this tracker does not accept your BitTorrent client"),
}

// ClientID returns the client ID of a peer ID as upstream Chihaya reads it:
// the six bytes after the dash of an Azureus-style ID ("-TR3000-…" gives
// "TR3000"), otherwise the first six bytes (Shad0w-style "M4-4-0--…" gives
// "M4-4-0").
func ClientID(id bittorrent.PeerID) (cid [ClientIDLen]byte) {
	if id[0] == '-' {
		copy(cid[:], id[1:1+ClientIDLen])
	} else {
		copy(cid[:], id[:ClientIDLen])
	}
	return cid
}

// Hook admits or refuses announces by client ID. Entries are kept in one
// set per length, keyed by the entry zero-padded to six bytes, so that a
// lookup is at most six map probes whatever the list's size.
type Hook struct {
	whitelist bool
	byLen     [ClientIDLen + 1]map[[ClientIDLen]byte]struct{}
}

var _ middleware.Hook = (*Hook)(nil)

// New builds the hook from a validated config.
func New(cfg Config) *Hook {
	h := &Hook{whitelist: len(cfg.Whitelist) > 0}
	entries := cfg.Blacklist
	if h.whitelist {
		entries = cfg.Whitelist
	}
	for _, e := range entries {
		var key [ClientIDLen]byte
		copy(key[:], e)
		if h.byLen[len(e)] == nil {
			h.byLen[len(e)] = map[[ClientIDLen]byte]struct{}{}
		}
		h.byLen[len(e)][key] = struct{}{}
	}
	return h
}

func (h *Hook) listed(cid [ClientIDLen]byte) bool {
	for n := ClientIDLen; n >= 1; n-- {
		if set := h.byLen[n]; set != nil {
			if _, ok := set[cid]; ok {
				return true
			}
		}
		cid[n-1] = 0
	}
	return false
}

// HandleAnnounce refuses the announce when the client is not whitelisted or
// is blacklisted.
func (h *Hook) HandleAnnounce(_ context.Context, req *bittorrent.AnnounceRequest, _ *bittorrent.AnnounceResponse) error {
	if h.listed(ClientID(req.Peer.ID)) != h.whitelist {
		return ErrUnapprovedClient
	}
	return nil
}

// HandleScrape admits every scrape: a scrape carries no peer ID, as in
// upstream Chihaya.
func (h *Hook) HandleScrape(context.Context, *bittorrent.ScrapeRequest, *bittorrent.ScrapeResponse) error {
	return nil
}
