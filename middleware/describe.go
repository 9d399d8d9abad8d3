package middleware

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/pkg/yamlconf"
)

// Describer turns requests into the JSON objects that hooks send to
// services outside the tracker (the `http approval` hook, the `event
// stream` hook): the announce's fields, and its parameters. Parameters
// are the route parameters (`passkey` of `/:passkey/announce`) and the
// query (HTTP) or BEP 41 URL data (UDP), less the names an operator
// redacts and the announce's own keys, which have fields of their own.
//
// A UDP request has no router: its BEP 41 path ("/KEY/announce" when the
// client was given udp://tracker:port/KEY/announce) is matched against the
// same routes, so that a route parameter reads the same over both
// protocols.
type Describer struct {
	routes [][]string // split on '/', first element empty
	names  []string   // the route parameters' names, in route order
	redact map[string]bool
}

// NewDescriber reads routes (httprouter syntax, as in the HTTP frontend's
// announce_routes) and the parameter names to leave out. Errors name the
// entry (routes[1]) as *yamlconf.Error.
func NewDescriber(routes, redact []string) (*Describer, error) {
	d := &Describer{redact: map[string]bool{}}
	seen := map[string]bool{}
	for i, r := range routes {
		if !strings.HasPrefix(r, "/") {
			return nil, yamlconf.Errorf(fmt.Sprintf("routes[%d]", i), "must start with '/', got %q", r)
		}
		segs := strings.Split(r, "/")
		for _, s := range segs[1:] {
			if len(s) > 0 && (s[0] == ':' || s[0] == '*') {
				if len(s) == 1 {
					return nil, yamlconf.Errorf(fmt.Sprintf("routes[%d]", i), "a parameter needs a name, got %q", r)
				}
				if !seen[s[1:]] {
					seen[s[1:]] = true
					d.names = append(d.names, s[1:])
				}
			}
		}
		d.routes = append(d.routes, segs)
	}
	for _, n := range redact {
		d.redact[n] = true
	}
	return d, nil
}

// HasRouteParam reports whether a route names the parameter.
func (d *Describer) HasRouteParam(name string) bool {
	for _, n := range d.names {
		if n == name {
			return true
		}
	}
	return false
}

// RouteParams lists the route parameters' names.
func (d *Describer) RouteParams() []string { return d.names }

// RouteParam returns the route parameter name of a request: the one the
// HTTP router found, or else the one the request's path (a UDP request's
// BEP 41 path) has at that place of a route. It does not allocate.
func (d *Describer) RouteParam(p bittorrent.Params, name string) (string, bool) {
	if v, ok := p.RouteParam(name); ok {
		return v, true
	}
	path := p.RawPath()
	if path == "" {
		return "", false
	}
	for _, segs := range d.routes {
		if v, ok := matchParam(segs, path, name); ok {
			return v, true
		}
	}
	return "", false
}

// matchParam matches path against a route's segments and returns the
// value of parameter name if the path matches and the route has it.
func matchParam(segs []string, path, name string) (string, bool) {
	if path == "" || path[0] != '/' {
		return "", false
	}
	rest := path[1:]
	var val string
	found := false
	for i, s := range segs[1:] {
		if len(s) > 0 && s[0] == '*' {
			// A catch-all takes the rest, with its slash, as httprouter
			// gives it; rest is a suffix of path, so this does not copy.
			if s[1:] == name {
				return path[len(path)-len(rest)-1:], true
			}
			return val, found
		}
		// Segments are short: a plain loop beats IndexByte's set-up.
		j := 0
		for j < len(rest) && rest[j] != '/' {
			j++
		}
		seg := rest[:j]
		if i == len(segs)-2 {
			if j < len(rest) {
				return "", false
			}
			rest = ""
		} else {
			if j == len(rest) {
				return "", false
			}
			rest = rest[j+1:]
		}
		switch {
		case len(s) > 0 && s[0] == ':':
			if seg == "" {
				return "", false
			}
			if s[1:] == name {
				val, found = seg, true
			}
		case s != seg:
			return "", false
		}
	}
	return val, found
}

// announceKeys are the query keys an announce is made of (BEP 3, 7, 23
// and common extensions). They have fields of their own, or are binary,
// or are none of a service's business (the client's key), so they are
// not repeated among the parameters.
var announceKeys = map[string]bool{
	"info_hash": true, "peer_id": true, "port": true, "uploaded": true,
	"downloaded": true, "left": true, "event": true, "compact": true,
	"no_peer_id": true, "numwant": true, "ip": true, "ipv4": true,
	"ipv6": true, "key": true, "trackerid": true, "corrupt": true,
	"supportcrypto": true, "requirecrypto": true, "cryptoport": true,
	"redundant": true,
}

// Params returns a request's parameters for a service: route parameters
// first, then the query's, the first value of each name, less redacted
// names and the announce's own keys. It allocates; call it off the hot
// path.
func (d *Describer) Params(p bittorrent.Params) map[string]string {
	out := map[string]string{}
	for _, n := range d.names {
		if d.redact[n] {
			continue
		}
		if v, ok := d.RouteParam(p, n); ok {
			out[n] = v
		}
	}
	// The query's pairs in order, the first value of each name; a pair
	// that does not unescape is left out. Only escaped text is copied.
	for q := p.RawQuery(); q != ""; {
		var pair string
		pair, q, _ = strings.Cut(q, "&")
		k, v, _ := strings.Cut(pair, "=")
		k, err := unescape(k)
		if err != nil || k == "" || d.redact[k] || announceKeys[k] {
			continue
		}
		if _, ok := out[k]; ok {
			continue
		}
		if v, err = unescape(v); err == nil {
			out[k] = v
		}
	}
	return out
}

// unescape decodes a query key or value ('+' is a space), copying only
// when there is something to decode.
func unescape(s string) (string, error) {
	if !strings.ContainsAny(s, "%+") {
		return s, nil
	}
	return url.QueryUnescape(s)
}

// AnnounceFields are an announce's fields as services are sent them:
// hashes and IDs in hex, the address as text.
type AnnounceFields struct {
	Action     string            `json:"action"`
	InfoHash   string            `json:"info_hash"`
	PeerID     string            `json:"peer_id"`
	IP         string            `json:"ip"`
	Port       uint16            `json:"port"`
	Event      string            `json:"event"`
	Left       uint64            `json:"left"`
	Uploaded   uint64            `json:"uploaded"`
	Downloaded uint64            `json:"downloaded"`
	Params     map[string]string `json:"params"`
}

// Announce describes an announce.
func (d *Describer) Announce(req *bittorrent.AnnounceRequest) AnnounceFields {
	return AnnounceFields{
		Action:     "announce",
		InfoHash:   req.InfoHash.String(),
		PeerID:     req.Peer.ID.String(),
		IP:         req.Peer.AddrPort.Addr().String(),
		Port:       req.Peer.AddrPort.Port(),
		Event:      req.Event.String(),
		Left:       req.Left,
		Uploaded:   req.Uploaded,
		Downloaded: req.Downloaded,
		Params:     d.Params(req.Params),
	}
}

// ScrapeFields are a scrape's fields as services are sent them.
type ScrapeFields struct {
	Action     string            `json:"action"`
	InfoHashes []string          `json:"info_hashes"`
	IP         string            `json:"ip"`
	Params     map[string]string `json:"params"`
}

// Scrape describes a scrape.
func (d *Describer) Scrape(req *bittorrent.ScrapeRequest) ScrapeFields {
	hs := make([]string, len(req.InfoHashes))
	for i, ih := range req.InfoHashes {
		hs[i] = ih.String()
	}
	return ScrapeFields{Action: "scrape", InfoHashes: hs, IP: req.RemoteAddr.String(), Params: d.Params(req.Params)}
}
