package frontendtest

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
)

// httpClient announces with GET requests as BitTorrent clients do (BEP 3,
// compact peers per BEP 23 and BEP 7) and scrapes per BEP 48.
type httpClient struct {
	announceURL, scrapeURL string
	client                 *http.Client
	local                  netip.Addr
}

// HTTP returns a Client of the tracker whose announce URL is announceURL;
// its scrape URL is the announce URL with the last "announce" replaced by
// "scrape" (BEP 48). Requests come from a port of their own on the
// loopback address of the URL's family.
func HTTP(t testing.TB, announceURL string) Client {
	t.Helper()
	host := hostOf(announceURL)
	local := netip.MustParseAddr("127.0.0.1")
	if strings.HasPrefix(host, "[") {
		local = netip.IPv6Loopback()
	}
	return HTTPFrom(t, announceURL, local)
}

// HTTPFrom is HTTP from a given local address (127.0.1.5, say).
func HTTPFrom(t testing.TB, announceURL string, local netip.Addr) Client {
	t.Helper()
	// The tracker sees the source address with the announce's port.
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: local.AsSlice()}, Timeout: timeout}
	transport := &http.Transport{DialContext: dialer.DialContext}
	t.Cleanup(transport.CloseIdleConnections)
	c := &httpClient{
		announceURL: announceURL,
		client:      &http.Client{Transport: transport, Timeout: timeout},
		local:       local,
	}
	if i := strings.LastIndex(announceURL, "announce"); i >= 0 {
		c.scrapeURL = announceURL[:i] + "scrape" + announceURL[i+len("announce"):]
	}
	return c
}

func hostOf(rawURL string) string {
	s := rawURL[strings.Index(rawURL, "://")+3:]
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	return s
}

func (c *httpClient) Addr() netip.Addr { return c.local }

// Connect does nothing: HTTP needs no handshake.
func (c *httpClient) Connect() error { return nil }

func (c *httpClient) Announce(a Announce) (AnnounceReply, error) {
	q := "info_hash=" + EscapeBytes(a.InfoHash[:]) +
		"&peer_id=" + EscapeBytes(a.PeerID[:]) +
		"&port=" + strconv.Itoa(int(a.Port)) +
		"&uploaded=0&downloaded=0&left=" + strconv.FormatUint(a.Left, 10) +
		"&compact=1"
	if a.Event != bittorrent.None {
		q += "&event=" + a.Event.String()
	}
	if a.NumWant > 0 {
		q += "&numwant=" + strconv.Itoa(a.NumWant)
	}
	if a.Params != "" {
		q += "&" + a.Params
	}
	d, err := c.get(c.announceURL, q)
	if err != nil {
		return AnnounceReply{}, err
	}
	if f, ok := d["failure reason"]; ok {
		return AnnounceReply{Failure: fmt.Sprint(f)}, nil
	}
	var r AnnounceReply
	interval, err := intField(d, "interval")
	if err != nil {
		return r, err
	}
	r.Interval = time.Duration(interval) * time.Second
	complete, err := intField(d, "complete")
	if err != nil {
		return r, err
	}
	incomplete, err := intField(d, "incomplete")
	if err != nil {
		return r, err
	}
	r.Seeders, r.Leechers = uint32(complete), uint32(incomplete)
	key, size := "peers", 6
	if c.local.Is6() {
		key, size = "peers6", 18
	}
	peers, _ := d[key].(string)
	addrs, err := CompactPeers([]byte(peers), size)
	r.Peers = addrPeers(addrs)
	return r, err
}

func (c *httpClient) Scrape(infoHashes ...bittorrent.InfoHash) (ScrapeReply, error) {
	if c.scrapeURL == "" {
		return ScrapeReply{}, fmt.Errorf("frontendtest: no scrape URL for %s", c.announceURL)
	}
	var q []string
	for _, ih := range infoHashes {
		q = append(q, "info_hash="+EscapeBytes(ih[:]))
	}
	d, err := c.get(c.scrapeURL, strings.Join(q, "&"))
	if err != nil {
		return ScrapeReply{}, err
	}
	if f, ok := d["failure reason"]; ok {
		return ScrapeReply{Failure: fmt.Sprint(f)}, nil
	}
	files, ok := d["files"].(map[string]any)
	if !ok {
		return ScrapeReply{}, fmt.Errorf("scrape reply %v has no files dictionary", d)
	}
	var r ScrapeReply
	for _, ih := range infoHashes {
		var counts Counts
		if f, ok := files[string(ih[:])].(map[string]any); ok {
			for key, dst := range map[string]*uint32{"complete": &counts.Seeders, "incomplete": &counts.Leechers, "downloaded": &counts.Downloaded} {
				n, err := intField(f, key)
				if err != nil {
					return ScrapeReply{}, err
				}
				*dst = uint32(n)
			}
		}
		r.Files = append(r.Files, counts)
	}
	return r, nil
}

// get fetches base?query and decodes its bencoded dictionary.
func (c *httpClient) get(base, query string) (map[string]any, error) {
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+sep+query, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	v, err := DecodeBencode(body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %s, body %q: %w", req.URL.Path, resp.Status, body, err)
	}
	d, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("GET %s: body %q is not a dictionary", req.URL.Path, body)
	}
	return d, nil
}

func intField(d map[string]any, key string) (int64, error) {
	n, ok := d[key].(int64)
	if !ok {
		return 0, fmt.Errorf("reply %v has no integer %q", d, key)
	}
	return n, nil
}

// CompactPeers splits compact peers (BEP 23, BEP 7) of size bytes each (6
// for IPv4, 18 for IPv6) into addresses.
func CompactPeers(b []byte, size int) ([]netip.AddrPort, error) {
	if len(b)%size != 0 {
		return nil, fmt.Errorf("compact peers of %d bytes are not a multiple of %d", len(b), size)
	}
	var out []netip.AddrPort
	for ; len(b) > 0; b = b[size:] {
		a, _ := netip.AddrFromSlice(b[:size-2])
		out = append(out, netip.AddrPortFrom(a, binary.BigEndian.Uint16(b[size-2:size])))
	}
	return out, nil
}
