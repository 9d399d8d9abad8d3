package websocket

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	nethttp "net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gws "github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/frontend/frontendtest"
	"github.com/chihaya/chihaya/middleware"
	"github.com/chihaya/chihaya/middleware/clientapproval"
	"github.com/chihaya/chihaya/middleware/ratelimit"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/memory"
)

// tracker is a real tracker: the memory store, the logic with the given
// prehooks, and the WebSocket frontend on a free loopback port.
type tracker struct {
	f     *Frontend
	store storage.PeerStore
	url   string
}

func newTracker(t testing.TB, cfg Config, hooks ...middleware.Hook) *tracker {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	store, err := memory.New(memory.Config{KeepPeerIDs: true}.WithDefaults()) // tests compare native peers whole
	if err != nil {
		t.Fatal(err)
	}
	logic := middleware.NewLogic(middleware.Config{}.WithDefaults(), store, hooks, nil)
	f, err := NewFrontend(logic, cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr := &tracker{f: f, store: store, url: "ws://" + f.Addr().String()}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := f.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
		_ = logic.Stop(ctx)
		_ = store.Stop(ctx)
	})
	return tr
}

// client is one browser's WebSocket.
type client struct {
	t  *testing.T
	ws *gws.Conn
}

func (tr *tracker) dial(t *testing.T, path string) *client {
	t.Helper()
	ws, resp, err := gws.DefaultDialer.Dial(tr.url+path, nil)
	if err != nil {
		t.Fatalf("dial %s: %v (%v)", path, err, resp)
	}
	t.Cleanup(func() { ws.Close() })
	return &client{t: t, ws: ws}
}

func (c *client) send(v map[string]any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.ws.WriteMessage(gws.TextMessage, b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) read() map[string]any {
	c.t.Helper()
	_ = c.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, b, err := c.ws.ReadMessage()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		c.t.Fatalf("reply %s: %v", b, err)
	}
	return m
}

// closeCode reads until the connection closes and returns the code.
func (c *client) closeCode() int {
	c.t.Helper()
	_ = c.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := c.ws.ReadMessage(); err != nil {
			var ce *gws.CloseError
			if errors.As(err, &ce) {
				return ce.Code
			}
			c.t.Fatalf("connection ended without a close frame: %v", err)
		}
	}
}

func bs(b []byte) string { return runesOf(b) }

func bsa(b [20]byte) string { return runesOf(b[:]) }

func id20(s string) [20]byte {
	var b [20]byte
	copy(b[:], s)
	return b
}

func announceMsg(ih, peer [20]byte, left int, offers ...[20]byte) map[string]any {
	m := map[string]any{"action": "announce", "info_hash": bs(ih[:]), "peer_id": bs(peer[:]),
		"uploaded": 0, "downloaded": 0, "left": left, "numwant": len(offers)}
	if len(offers) > 0 {
		var os []any
		for _, o := range offers {
			os = append(os, map[string]any{"offer_id": bs(o[:]), "offer": map[string]any{"type": "offer", "sdp": "sdp of " + bs(o[:])}})
		}
		m["offers"] = os
	}
	return m
}

func num(m map[string]any, k string) int {
	f, _ := m[k].(float64)
	return int(f)
}

// sync makes sure every message c sent has been handled: the tracker
// handles one connection's messages in order.
func (c *client) sync(ih [20]byte) map[string]any {
	c.t.Helper()
	c.send(map[string]any{"action": "scrape", "info_hash": bs(ih[:])})
	for {
		m := c.read()
		if m["action"] == "scrape" {
			return m
		}
	}
}

func scrapeCounts(m map[string]any, ih [20]byte) (complete, incomplete int) {
	files, _ := m["files"].(map[string]any)
	f, _ := files[bs(ih[:])].(map[string]any)
	return num(f, "complete"), num(f, "incomplete")
}

// High bytes in every ID, so that the binary string rule is exercised end
// to end.
var (
	ih1    = id20("\x01\xff\x80torrent-one\xc3\xa9\x00\x7f")
	ih2    = id20("\x02\xfe\x81torrent-two\xc3\xa9\x00\x7f")
	peerID = func(n byte) [20]byte { return id20("-WW0100-\xaa\xbb\xcc\xdd\xee\xff12345" + string(rune('a'+n))) }
	offerN = func(n byte) [20]byte {
		return id20("offer-\xf0\xe1\xd2\xc3\xb4\xa5\x96\x87\x78\x69\x5a\x4b\x3c" + string(rune('a'+n)))
	}
)

func TestAnnounceOfferAnswer(t *testing.T) {
	tr := newTracker(t, Config{})
	a, b := tr.dial(t, "/announce"), tr.dial(t, "/announce")

	a.send(announceMsg(ih1, peerID(1), 100))
	r := a.read()
	if r["action"] != "announce" || r["info_hash"] != bs(ih1[:]) || num(r, "complete") != 0 || num(r, "incomplete") != 1 || num(r, "interval") != 120 {
		t.Fatalf("leecher's reply: %v", r)
	}
	if _, ok := r["peers"]; ok {
		t.Errorf("a WebTorrent reply carries no peer list: %v", r)
	}

	// The seeder sends three offers; there is one other peer, so one is
	// relayed and the others are dropped.
	b.send(announceMsg(ih1, peerID(2), 0, offerN(1), offerN(2), offerN(3)))
	if r := b.read(); num(r, "complete") != 1 || num(r, "incomplete") != 1 {
		t.Fatalf("seeder's reply: %v", r)
	}
	b.sync(ih1)

	got := a.read()
	if got["action"] != "announce" || got["info_hash"] != bs(ih1[:]) || got["peer_id"] != bsa(peerID(2)) {
		t.Fatalf("relayed offer: %v", got)
	}
	oid := got["offer_id"].(string)
	o, _ := got["offer"].(map[string]any)
	if o["type"] != "offer" || o["sdp"] != "sdp of "+oid {
		t.Errorf("the offer object must be relayed as sent: %v", got)
	}
	if _, ok := got["answer"]; ok {
		t.Errorf("offer carries an answer: %v", got)
	}
	if sc := a.sync(ih1); true {
		if c, i := scrapeCounts(sc, ih1); c != 1 || i != 1 {
			t.Errorf("scrape: %d seeders %d leechers, want 1 and 1", c, i)
		}
	}

	answer := map[string]any{"action": "announce", "info_hash": bs(ih1[:]), "peer_id": bsa(peerID(1)),
		"to_peer_id": bsa(peerID(2)), "offer_id": oid, "answer": map[string]any{"type": "answer", "sdp": "answer sdp"}}
	a.send(answer)
	got = b.read()
	if got["peer_id"] != bsa(peerID(1)) || got["offer_id"] != oid || got["info_hash"] != bs(ih1[:]) {
		t.Fatalf("relayed answer: %v", got)
	}
	if ans, _ := got["answer"].(map[string]any); ans["sdp"] != "answer sdp" {
		t.Errorf("answer object: %v", got)
	}

	// The same answer again matches no offer any more.
	a.send(answer)
	if r := a.read(); r["failure reason"] != string(errUnknownOffer) || r["info_hash"] != bs(ih1[:]) || r["action"] != "announce" {
		t.Errorf("replayed answer: %v", r)
	}
	// An answer to a peer that is not in the swarm.
	answer["to_peer_id"] = bsa(peerID(9))
	a.send(answer)
	if r := a.read(); r["failure reason"] != string(errUnknownToPeerID) {
		t.Errorf("answer to a stranger: %v", r)
	}
	// An answer from a connection that never announced in the swarm.
	c := tr.dial(t, "/")
	answer["peer_id"] = bsa(peerID(3))
	c.send(answer)
	if r := c.read(); r["failure reason"] != string(errNotAnnounced) {
		t.Errorf("answer without announce: %v", r)
	}
}

func TestOffersGoToDifferentPeers(t *testing.T) {
	tr := newTracker(t, Config{})
	var leechers []*client
	for i := range 4 {
		c := tr.dial(t, "/")
		c.send(announceMsg(ih1, peerID(byte(i)), 100))
		c.read()
		leechers = append(leechers, c)
	}
	seeder := tr.dial(t, "/")
	seeder.send(announceMsg(ih1, peerID(9), 0, offerN(1), offerN(2), offerN(3), offerN(4)))
	seeder.read()
	seeder.sync(ih1)
	seen := map[string]bool{}
	for i, c := range leechers {
		m := c.read()
		if m["peer_id"] != bsa(peerID(9)) {
			t.Fatalf("leecher %d got %v, want the seeder's offer", i, m)
		}
		seen[m["offer_id"].(string)] = true
		if sc := c.sync(ih1); sc["action"] != "scrape" {
			t.Fatalf("leecher %d got a second offer", i)
		}
	}
	if len(seen) != 4 {
		t.Errorf("4 offers went to %d distinct offer IDs, want each leecher one", len(seen))
	}
}

func TestWebSocketPeersApartFromNative(t *testing.T) {
	tr := newTracker(t, Config{})
	native := bittorrent.Peer{ID: peerID(7), AddrPort: netipMust("127.0.0.1:6881")}
	if err := tr.store.PutLeecher(ih1, native); err != nil {
		t.Fatal(err)
	}
	before := testutil.ToFloat64(relayed[relayOffer][relayNoPeer])
	b := tr.dial(t, "/")
	b.send(announceMsg(ih1, peerID(2), 0, offerN(1), offerN(2)))
	if r := b.read(); num(r, "complete") != 1 || num(r, "incomplete") != 1 {
		t.Errorf("counts must include the native leecher: %v", r)
	}
	b.sync(ih1)
	if d := testutil.ToFloat64(relayed[relayOffer][relayNoPeer]) - before; d != 2 {
		t.Errorf("%v offers dropped for want of a WebSocket peer, want 2 (the native peer is not one)", d)
	}
	peers, _, _, err := tr.store.AnnouncePeers(nil, ih1, false, 10, bittorrent.Peer{ID: peerID(8), AddrPort: netipMust("127.0.0.2:6881")})
	if err != nil || len(peers) != 1 || peers[0] != native {
		t.Errorf("a native announcer was given %v (%v), want only the native peer", peers, err)
	}
}

func TestPeerIDBelongsToFirstConnection(t *testing.T) {
	tr := newTracker(t, Config{})
	a, c := tr.dial(t, "/"), tr.dial(t, "/")
	a.send(announceMsg(ih1, peerID(1), 100))
	a.read()
	c.send(announceMsg(ih1, peerID(1), 0, offerN(1)))
	r := c.read()
	if r["failure reason"] != string(errPeerIDTaken) || r["info_hash"] != bs(ih1[:]) || r["action"] != "announce" {
		t.Fatalf("hijack attempt: %v", r)
	}
	if co, inc := scrapeCounts(c.sync(ih1), ih1); co != 0 || inc != 1 {
		t.Errorf("swarm changed by the refused announce: %d seeders, %d leechers", co, inc)
	}
	// In another swarm the ID is free.
	c.send(announceMsg(ih2, peerID(1), 0))
	if r := c.read(); r["failure reason"] != nil {
		t.Errorf("same ID in another swarm: %v", r)
	}
	// A connection keeps its ID within a swarm.
	c.send(announceMsg(ih2, peerID(5), 0))
	if r := c.read(); r["failure reason"] != string(errPeerIDChanged) {
		t.Errorf("changed ID: %v", r)
	}
	// Once the owner is gone, the ID is free.
	a.ws.Close()
	waitCounts(t, c, ih1, 0, 0)
	c.send(announceMsg(ih1, peerID(1), 0))
	if r := c.read(); r["failure reason"] != nil || num(r, "complete") != 1 {
		t.Errorf("after the owner left: %v", r)
	}
}

// waitCounts scrapes through c until ih has the given counts.
func waitCounts(t *testing.T, c *client, ih [20]byte, complete, incomplete int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		co, inc := scrapeCounts(c.sync(ih), ih)
		if co == complete && inc == incomplete {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("counts of %x stay %d/%d, want %d/%d", ih, co, inc, complete, incomplete)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCloseIsStoppedEverywhere(t *testing.T) {
	tr := newTracker(t, Config{})
	a, watcher := tr.dial(t, "/"), tr.dial(t, "/")
	for _, ih := range [][20]byte{ih1, ih2} {
		a.send(announceMsg(ih, peerID(1), 100))
		a.read()
	}
	a.send(announceMsg(ih1, peerID(1), 0)) // now a seeder of ih1
	a.read()
	waitCounts(t, watcher, ih1, 1, 0)
	waitCounts(t, watcher, ih2, 0, 1)
	a.ws.Close()
	waitCounts(t, watcher, ih1, 0, 0)
	waitCounts(t, watcher, ih2, 0, 0)

	// An explicit stopped leaves at once, and the connection stays usable.
	watcher.send(announceMsg(ih1, peerID(2), 100))
	watcher.read()
	stop := announceMsg(ih1, peerID(2), 100)
	stop["event"] = "stopped"
	watcher.send(stop)
	if r := watcher.read(); num(r, "incomplete") != 0 {
		t.Errorf("stopped reply: %v", r)
	}
	waitCounts(t, watcher, ih1, 0, 0)
}

func TestBadInput(t *testing.T) {
	tr := newTracker(t, Config{MaxMessageBytes: 4096, MaxOffers: 2})
	c := tr.dial(t, "/")
	for _, tc := range []struct {
		msg, want string
	}{
		{`not json`, string(errMalformed)},
		{`{"action":"announce","info_hash":"short","peer_id":"x"}`, string(errInvalidInfoHash)},
		{`{"action":"unknown"}`, string(errInvalidAction)},
		{`{"action":"announce","peer_id":"` + strings.Repeat("a", 20) + `"}`, string(bittorrent.ErrMissingInfoHash)},
		{`{"action":"scrape"}`, string(bittorrent.ErrFullScrapeDisabled)},
	} {
		if err := c.ws.WriteMessage(gws.TextMessage, []byte(tc.msg)); err != nil {
			t.Fatal(err)
		}
		if r := c.read(); r["failure reason"] != tc.want {
			t.Errorf("%s: got %v, want %q", tc.msg, r, tc.want)
		}
	}
	c.send(announceMsg(ih1, peerID(1), 10, offerN(1), offerN(2), offerN(3)))
	if r := c.read(); r["failure reason"] != string(errTooManyOffers) || r["info_hash"] != bs(ih1[:]) {
		t.Errorf("too many offers: %v", r)
	}
	if co, inc := scrapeCounts(c.sync(ih1), ih1); co+inc != 0 {
		t.Errorf("a refused announce changed the swarm: %d/%d", co, inc)
	}

	before := frontendtest.ErrorsCounted("websocket", "binary_frame")
	bin := tr.dial(t, "/")
	if err := bin.ws.WriteMessage(gws.BinaryMessage, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if code := bin.closeCode(); code != gws.CloseUnsupportedData {
		t.Errorf("binary frame: close code %d, want %d", code, gws.CloseUnsupportedData)
	}
	if d := frontendtest.ErrorsCounted("websocket", "binary_frame") - before; d != 1 {
		t.Errorf("binary frames counted %v, want 1", d)
	}

	big := tr.dial(t, "/")
	if err := big.ws.WriteMessage(gws.TextMessage, []byte(`{"action":"announce","x":"`+strings.Repeat("a", 5000)+`"}`)); err != nil {
		t.Fatal(err)
	}
	if code := big.closeCode(); code != gws.CloseMessageTooBig {
		t.Errorf("oversized message: close code %d, want %d", code, gws.CloseMessageTooBig)
	}
}

// rejectHook refuses announces unless the route's passkey and the query's
// jwt are the expected ones: the parameters of the upgrade request reach
// every announce on the connection.
type rejectHook struct{}

const errBadPasskey = bittorrent.ClientError("bad passkey")

func (rejectHook) HandleAnnounce(_ context.Context, req *bittorrent.AnnounceRequest, _ *bittorrent.AnnounceResponse) error {
	pk, _ := req.Params.RouteParam("passkey")
	jwt, _ := req.Params.String("jwt")
	if pk != "good" || jwt != "token" || !req.RemoteAddr.IsLoopback() {
		return errBadPasskey
	}
	return nil
}

func (rejectHook) HandleScrape(context.Context, *bittorrent.ScrapeRequest, *bittorrent.ScrapeResponse) error {
	return nil
}

func TestRoutesAndParams(t *testing.T) {
	tr := newTracker(t, Config{Routes: []string{"/:passkey/announce"}}, rejectHook{})
	ok := tr.dial(t, "/good/announce?jwt=token")
	ok.send(announceMsg(ih1, peerID(1), 10))
	if r := ok.read(); r["failure reason"] != nil {
		t.Errorf("good passkey: %v", r)
	}
	bad := tr.dial(t, "/bad/announce?jwt=token")
	bad.send(announceMsg(ih1, peerID(2), 10))
	if r := bad.read(); r["failure reason"] != string(errBadPasskey) || r["info_hash"] != bs(ih1[:]) {
		t.Errorf("bad passkey: %v", r)
	}
	// The good announce is stored once its reply is out; the bad one
	// never is.
	waitCounts(t, bad, ih1, 0, 1)
	_, resp, err := gws.DefaultDialer.Dial(tr.url+"/announce", nil)
	if err == nil || resp == nil || resp.StatusCode != nethttp.StatusNotFound {
		t.Errorf("upgrade on an unknown route: %v, %v; want 404", err, resp)
	}
}

func TestLimits(t *testing.T) {
	tr := newTracker(t, Config{MaxConnectionsPerIP: 2, MaxSwarmsPerConnection: 1, AllowedOrigins: []string{"https://good.example"}})
	h := nethttp.Header{"Origin": {"https://evil.example"}}
	_, resp, err := gws.DefaultDialer.Dial(tr.url+"/", h)
	if err == nil || resp == nil || resp.StatusCode != nethttp.StatusForbidden {
		t.Errorf("foreign origin: %v, %v; want 403", err, resp)
	}
	h.Set("Origin", "https://GOOD.example")
	ws, _, err := gws.DefaultDialer.Dial(tr.url+"/", h)
	if err != nil {
		t.Fatalf("allowed origin: %v", err)
	}
	ws.Close()
	waitOpen(t, tr, 0)

	c := tr.dial(t, "/") // no Origin: not a browser, allowed
	c.send(announceMsg(ih1, peerID(1), 10))
	c.read()
	c.send(announceMsg(ih2, peerID(1), 10))
	if r := c.read(); r["failure reason"] != string(errTooManySwarms) {
		t.Errorf("second swarm: %v", r)
	}
	tr.dial(t, "/")
	_, resp, err = gws.DefaultDialer.Dial(tr.url+"/", nil)
	if err == nil || resp == nil || resp.StatusCode != nethttp.StatusTooManyRequests {
		t.Errorf("third connection from one address: %v, %v; want 429", err, resp)
	}
}

// waitOpen waits until the tracker holds n connections.
func waitOpen(t *testing.T, tr *tracker, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		tr.f.mu.RLock()
		got := len(tr.f.conns)
		tr.f.mu.RUnlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open, want %d", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSendQueueBounded(t *testing.T) {
	f := &Frontend{cfg: Config{SendQueueMessages: 2}.WithDefaults()}
	f.bufs.New = func() any { b := make([]byte, 0, 16); return &b }
	f.metrics = newTestMetrics()
	// A connection whose writer is busy: nothing drains the queue.
	c := &conn{f: f, writing: true}
	for i, want := range []relayResult{relaySent, relaySent, relayQueueFull, relayQueueFull} {
		if got := c.send(f.getBuf()); got != want {
			t.Errorf("relayed message %d: %v, want %v", i, got, want)
		}
	}
	// The connection's own replies have as much room again.
	for i, want := range []relayResult{relaySent, relaySent, relayQueueFull} {
		if got := c.reply(f.getBuf()); got != want {
			t.Errorf("reply %d: %v, want %v", i, got, want)
		}
	}
	c.closed = true
	if got := c.send(f.getBuf()); got != relayPeerGone {
		t.Errorf("to a closed connection: %v, want peer gone", got)
	}
}

func TestShutdownSendsCloseFrame(t *testing.T) {
	tr := newTracker(t, Config{})
	c := tr.dial(t, "/")
	c.send(announceMsg(ih1, peerID(1), 10))
	c.read()
	done := make(chan int)
	go func() { done <- c.closeCode() }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tr.f.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if code := <-done; code != gws.CloseGoingAway {
		t.Errorf("close code %d, want %d (going away)", code, gws.CloseGoingAway)
	}
	if c, _ := tr.store.ScrapeSwarm(ih1, bittorrent.IPv4); c.Leechers != 0 {
		t.Errorf("after shutdown the swarm still has %d leechers", c.Leechers)
	}
}

func TestFamiliesApart(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback: ", err)
	}
	ln.Close()
	tr := newTracker(t, Config{Addr: "[::]:0"})
	port := tr.f.Addr().(*net.TCPAddr).Port
	dial := func(host string) *client {
		ws, _, err := gws.DefaultDialer.Dial("ws://"+net.JoinHostPort(host, itoa(port))+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ws.Close() })
		return &client{t: t, ws: ws}
	}
	v4, v6 := dial("127.0.0.1"), dial("::1")
	v4.send(announceMsg(ih1, peerID(1), 10))
	if r := v4.read(); num(r, "incomplete") != 1 {
		t.Errorf("IPv4: %v", r)
	}
	before := testutil.ToFloat64(relayed[relayOffer][relayNoPeer])
	v6.send(announceMsg(ih1, peerID(1), 0, offerN(1)))
	if r := v6.read(); num(r, "complete") != 1 || num(r, "incomplete") != 0 || r["failure reason"] != nil {
		t.Errorf("IPv6 (same peer ID, other family): %v", r)
	}
	v6.sync(ih1)
	if d := testutil.ToFloat64(relayed[relayOffer][relayNoPeer]) - before; d != 1 {
		t.Errorf("the IPv6 offer must find no IPv4 peer; dropped %v", d)
	}
}

// addrHook records the addresses of the announces it sees.
type addrHook struct {
	mu    sync.Mutex
	addrs []string
}

func (h *addrHook) HandleAnnounce(_ context.Context, req *bittorrent.AnnounceRequest, _ *bittorrent.AnnounceResponse) error {
	h.mu.Lock()
	h.addrs = append(h.addrs, req.RemoteAddr.String()+" "+req.Peer.AddressFamily().String())
	h.mu.Unlock()
	return nil
}

func (h *addrHook) HandleScrape(context.Context, *bittorrent.ScrapeRequest, *bittorrent.ScrapeResponse) error {
	return nil
}

func TestRealIPBehindProxy(t *testing.T) {
	hook := &addrHook{}
	tr := newTracker(t, Config{RealIPHeader: "X-Real-IP", TrustedProxies: []string{"127.0.0.0/8"}, MaxConnectionsPerIP: 1}, hook)
	dial := func(ip string) (*client, *nethttp.Response, error) {
		ws, resp, err := gws.DefaultDialer.Dial(tr.url+"/", nethttp.Header{"X-Real-Ip": {ip}})
		if err != nil {
			return nil, resp, err
		}
		t.Cleanup(func() { ws.Close() })
		return &client{t: t, ws: ws}, resp, nil
	}
	a, _, err := dial("203.0.113.7")
	if err != nil {
		t.Fatal(err)
	}
	a.send(announceMsg(ih1, peerID(1), 10))
	a.read()
	// The limit counts the browser, not the proxy: another browser behind
	// the same proxy gets in, the same one again does not.
	b, _, err := dial("2001:db8::1")
	if err != nil {
		t.Fatalf("a second browser behind the proxy: %v", err)
	}
	b.send(announceMsg(ih1, peerID(2), 10))
	if r := b.read(); num(r, "incomplete") != 1 {
		t.Errorf("the IPv6 browser counts the IPv4 one (families apart): %v", r)
	}
	if _, resp, err := dial("203.0.113.7"); err == nil || resp == nil || resp.StatusCode != nethttp.StatusTooManyRequests {
		t.Errorf("a second connection of 203.0.113.7: %v, %v; want 429", err, resp)
	}
	if _, resp, err := dial("not an address"); err == nil || resp == nil || resp.StatusCode != nethttp.StatusBadRequest {
		t.Errorf("an unusable header: %v, %v; want 400", err, resp)
	}
	hook.mu.Lock()
	defer hook.mu.Unlock()
	if want := []string{"203.0.113.7 IPv4", "2001:db8::1 IPv6"}; !slices.Equal(hook.addrs, want) {
		t.Errorf("the hooks saw %v, want %v", hook.addrs, want)
	}
}

func TestIdleConnectionClosed(t *testing.T) {
	tr := newTracker(t, Config{AnnounceInterval: 100 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})
	before := frontendtest.ErrorsCounted("websocket", "idle_timeout")
	c := tr.dial(t, "/")
	c.send(announceMsg(ih1, peerID(1), 10))
	c.read()
	if code := c.closeCode(); code != gws.CloseNormalClosure {
		t.Errorf("idle connection closed with %d, want %d", code, gws.CloseNormalClosure)
	}
	if d := frontendtest.ErrorsCounted("websocket", "idle_timeout") - before; d != 1 {
		t.Errorf("idle closes counted %v, want 1", d)
	}
	// And it left its swarm.
	w := tr.dial(t, "/")
	waitCounts(t, w, ih1, 0, 0)
}

// TestPrehooks runs the real client approval and rate limit hooks: the
// first refuses by peer_id prefix, the second counts the connection's
// address; a refused announce leaves the swarm as it was.
func TestPrehooks(t *testing.T) {
	rl := ratelimit.Config{AnnouncesPerSecond: 0.001, AnnounceBurst: 2}.WithDefaults()
	if err := rl.Validate(); err != nil {
		t.Fatal(err)
	}
	tr := newTracker(t, Config{}, clientapproval.New(clientapproval.Config{Blacklist: []string{"XX0001"}}), ratelimit.New(rl))
	c := tr.dial(t, "/")
	banned := id20("-XX0001-abcdefghijkl")
	c.send(announceMsg(ih1, banned, 10))
	r := c.read()
	if reason, _ := r["failure reason"].(string); !strings.HasPrefix(reason, "unapproved client") || r["info_hash"] != bs(ih1[:]) {
		t.Errorf("blacklisted client: %v", r)
	}
	// The client approval refusal took one of the two announces the rate
	// limit allows this address (it runs after), or none: either way the
	// third announce from the address is refused.
	var last map[string]any
	for range 3 {
		c.send(announceMsg(ih1, peerID(1), 10))
		last = c.read()
	}
	if reason, _ := last["failure reason"].(string); !strings.HasPrefix(reason, "rate limited") {
		t.Errorf("third announce from one address: %v, want rate limited", last)
	}
	if co, inc := scrapeCounts(c.sync(ih1), ih1); co != 0 || inc != 1 {
		t.Errorf("swarm %d/%d, want the one admitted peer", co, inc)
	}
}

// TestScenarios runs the scenarios every frontend passes, with a
// WebTorrent client that names the peers it meets by the peer IDs of
// their answers.
func TestScenarios(t *testing.T) {
	frontendtest.Run(t, func(t *testing.T, af bittorrent.AddressFamily) frontendtest.Dialer {
		tr := newTracker(t, Config{Addr: frontendtest.Loopback(af) + ":0"})
		return func(t *testing.T) frontendtest.Client {
			return frontendtest.WebSocket(t, tr.url+"/announce")
		}
	})
}
