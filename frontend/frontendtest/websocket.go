package frontendtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	gws "github.com/gorilla/websocket"

	"github.com/chihaya/chihaya/bittorrent"
)

// wsClient is a WebTorrent client, or rather several: a browser holds one
// peer ID per swarm on its connection, so the client opens a connection
// per peer ID it announces as, and one more for scrapes. Every connection
// answers the offers relayed to it, as a browser does; an announce's
// peers are the peers whose answers come back, named by peer ID.
type wsClient struct {
	t     testing.TB
	url   string
	local netip.Addr

	mu     sync.Mutex
	conns  map[bittorrent.PeerID]*wsConn
	scrape *wsConn
	offers int // numbers the offer IDs
}

// wsConn is one WebSocket connection and what its reader received.
type wsConn struct {
	ws      *gws.Conn
	id      bittorrent.PeerID
	wmu     sync.Mutex
	replies chan map[string]any // announce and scrape replies, failures
	answers chan map[string]any // answers relayed to this connection
}

// WebSocket returns a Client of the WebTorrent tracker at url
// (ws://host:port/announce), from the loopback address of its family.
func WebSocket(t testing.TB, url string) Client {
	t.Helper()
	local := netip.MustParseAddr("127.0.0.1")
	if strings.HasPrefix(hostOf(url), "[") {
		local = netip.IPv6Loopback()
	}
	return &wsClient{t: t, url: url, local: local, conns: map[bittorrent.PeerID]*wsConn{}}
}

func (c *wsClient) Connect() error { return nil }

func (c *wsClient) Addr() netip.Addr { return c.local }

func (c *wsClient) conn(id bittorrent.PeerID, scrape bool) (*wsConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if scrape && c.scrape != nil {
		return c.scrape, nil
	}
	if !scrape && c.conns[id] != nil {
		return c.conns[id], nil
	}
	d := gws.Dialer{HandshakeTimeout: timeout}
	ws, _, err := d.Dial(c.url, nil)
	if err != nil {
		return nil, err
	}
	wc := &wsConn{ws: ws, id: id, replies: make(chan map[string]any, 16), answers: make(chan map[string]any, 64)}
	c.t.Cleanup(func() { ws.Close() })
	go wc.read()
	if scrape {
		c.scrape = wc
	} else {
		c.conns[id] = wc
	}
	return wc, nil
}

// read sorts what the tracker sends, answering offers.
func (wc *wsConn) read() {
	defer close(wc.replies)
	for {
		_, b, err := wc.ws.ReadMessage()
		if err != nil {
			return
		}
		var m map[string]any
		if json.Unmarshal(b, &m) != nil {
			continue
		}
		switch {
		case m["offer"] != nil:
			wc.send(map[string]any{
				"action": "announce", "info_hash": m["info_hash"], "peer_id": binaryString(wc.id[:]),
				"to_peer_id": m["peer_id"], "offer_id": m["offer_id"],
				"answer": map[string]any{"type": "answer", "sdp": "answer to " + fmt.Sprint(m["offer_id"])},
			})
		case m["answer"] != nil:
			select {
			case wc.answers <- m:
			default:
			}
		default:
			wc.replies <- m
		}
	}
}

func (wc *wsConn) send(v map[string]any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	wc.wmu.Lock()
	defer wc.wmu.Unlock()
	_ = wc.ws.SetWriteDeadline(time.Now().Add(timeout))
	return wc.ws.WriteMessage(gws.TextMessage, b)
}

// request sends msg and returns the reply, or the tracker's failure
// reason.
func (wc *wsConn) request(msg map[string]any) (map[string]any, string, error) {
	if err := wc.send(msg); err != nil {
		return nil, "", err
	}
	m, err := wc.reply()
	if err != nil {
		return nil, "", err
	}
	if f, ok := m["failure reason"].(string); ok {
		return nil, f, nil
	}
	return m, "", nil
}

func (wc *wsConn) reply() (map[string]any, error) {
	select {
	case m, ok := <-wc.replies:
		if !ok {
			return nil, errors.New("frontendtest: the tracker closed the WebSocket")
		}
		return m, nil
	case <-time.After(timeout):
		return nil, errors.New("frontendtest: no reply from the WebSocket tracker")
	}
}

// wsOffers is how many offers an announce with NumWant 0 sends:
// WebTorrent's number.
const wsOffers = 5

func (c *wsClient) Announce(a Announce) (AnnounceReply, error) {
	wc, err := c.conn(a.PeerID, false)
	if err != nil {
		return AnnounceReply{}, err
	}
	n := a.NumWant
	if n <= 0 {
		n = wsOffers
	}
	if a.Event == bittorrent.Stopped {
		n = 0
	}
	msg := map[string]any{
		"action": "announce", "info_hash": binaryString(a.InfoHash[:]), "peer_id": binaryString(a.PeerID[:]),
		"uploaded": 0, "downloaded": 0, "left": a.Left, "numwant": n,
	}
	if a.Event != bittorrent.None {
		msg["event"] = a.Event.String()
	}
	offerIDs := map[string]bool{}
	var offers []any
	c.mu.Lock()
	for range n {
		c.offers++
		id := fmt.Sprintf("offer%015d", c.offers)
		offerIDs[id] = true
		offers = append(offers, map[string]any{"offer_id": id, "offer": map[string]any{"type": "offer", "sdp": "sdp " + id}})
	}
	c.mu.Unlock()
	if n > 0 {
		msg["offers"] = offers
	}
	m, failure, err := wc.request(msg)
	if err != nil || failure != "" {
		return AnnounceReply{Failure: failure}, err
	}
	r := AnnounceReply{
		Interval: time.Duration(number(m, "interval")) * time.Second,
		Seeders:  uint32(number(m, "complete")), Leechers: uint32(number(m, "incomplete")),
	}
	// The tracker relays one offer to each of min(n, the peers a seeder or
	// leecher is given) other peers, which the counts tell; each answers.
	avail := int(r.Leechers)
	if a.Left != 0 && a.Event != bittorrent.Completed {
		avail = int(r.Seeders) + int(r.Leechers) - 1
	}
	for want := min(n, max(avail, 0)); len(r.Peers) < want; {
		select {
		case ans := <-wc.answers:
			if !offerIDs[fmt.Sprint(ans["offer_id"])] {
				continue // an answer to an earlier announce
			}
			var p Peer
			s, _ := ans["peer_id"].(string)
			copy(p.ID[:], fromBinaryString(s))
			r.Peers = append(r.Peers, p)
		case <-time.After(timeout):
			return r, fmt.Errorf("frontendtest: %d of %d answers to the offers came back", len(r.Peers), want)
		}
	}
	return r, nil
}

func (c *wsClient) Scrape(ihs ...bittorrent.InfoHash) (ScrapeReply, error) {
	wc, err := c.conn(bittorrent.PeerID{}, true)
	if err != nil {
		return ScrapeReply{}, err
	}
	var list []any
	for _, ih := range ihs {
		list = append(list, binaryString(ih[:]))
	}
	m, failure, err := wc.request(map[string]any{"action": "scrape", "info_hash": list})
	if err != nil || failure != "" {
		return ScrapeReply{Failure: failure}, err
	}
	files, _ := m["files"].(map[string]any)
	var r ScrapeReply
	for _, ih := range ihs {
		f, _ := files[binaryString(ih[:])].(map[string]any)
		r.Files = append(r.Files, Counts{Seeders: uint32(number(f, "complete")), Leechers: uint32(number(f, "incomplete")), Downloaded: uint32(number(f, "downloaded"))})
	}
	return r, nil
}

// binaryString is b as a WebTorrent binary string: each byte the code
// point of its value (encoding/json writes it as UTF-8).
func binaryString(b []byte) string {
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

// fromBinaryString is the inverse of binaryString.
func fromBinaryString(s string) []byte {
	var b []byte
	for _, r := range s {
		b = append(b, byte(r))
	}
	return b
}

func number(m map[string]any, k string) int64 {
	f, _ := m[k].(float64)
	return int64(f)
}
