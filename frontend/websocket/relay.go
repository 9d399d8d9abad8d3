package websocket

import (
	"context"
	"net/netip"
	"runtime/debug"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/frontend"
	"github.com/chihaya/chihaya/pkg/clock"
)

// maxPendingPerConn bounds the offers relayed to one connection that it
// has not answered yet, so that a flood of offers cannot grow the table
// of offers awaiting an answer without bound.
const maxPendingPerConn = 256

// bindKey is a peer ID in a swarm of one address family.
type bindKey struct {
	ih bittorrent.InfoHash
	id bittorrent.PeerID
	af bittorrent.AddressFamily
}

// pendingOffer is an offer relayed to a connection, awaiting its answer:
// from the connection from on this instance, or (from nil) from the peer
// at fromAddr on instance fromInstance.
type pendingOffer struct {
	from         *conn
	fromInstance uint16
	fromAddr     netip.AddrPort
	fromID       bittorrent.PeerID
	ih           bittorrent.InfoHash
	expires      int64 // Unix seconds
}

// relayOffers sends each offer of m to one of peers, the WebSocket peers
// the store chose, in order: on this instance to the peer's connection,
// otherwise to the instance that holds it.
func (f *Frontend) relayOffers(c *conn, m *message, peers []bittorrent.Peer) {
	now := clock.Unix()
	for i := range m.offers {
		if i >= len(peers) {
			observeRelay(relayOffer, relayNoPeer)
			continue
		}
		o := &m.offers[i]
		p := &peers[i]
		if f.remote(p.Instance) {
			buf := f.getBuf()
			*buf = appendRemote((*buf)[:0], remoteOffer, f.relay.Instance(), c.key, p.AddrPort, &m.infoHash, &m.peerID, &p.ID, &o.id, o.sdp)
			f.relay.Publish(p.Instance, *buf)
			f.putBuf(buf)
			observeRelay(relayOffer, relayForwarded)
			continue
		}
		t := f.lookup(p.AddrPort)
		if t == nil || t == c {
			observeRelay(relayOffer, relayPeerGone)
			continue
		}
		f.offerTo(t, p.ID, pendingOffer{from: c, fromID: m.peerID, ih: m.infoHash, expires: now + int64(f.cfg.OfferTimeout/time.Second)}, &o.id, o.sdp)
	}
}

// offerTo relays an offer to t, the connection of the peer with ID id in
// the offer's swarm, and records it as awaiting t's answer.
func (f *Frontend) offerTo(t *conn, id bittorrent.PeerID, p pendingOffer, offerID *[20]byte, sdp []byte) {
	if got, ok := t.swarm(p.ih); !ok || got != id {
		observeRelay(relayOffer, relayPeerGone)
		return
	}
	if !f.expectAnswer(t, *offerID, p) {
		observeRelay(relayOffer, relayQueueFull)
		return
	}
	buf := f.getBuf()
	*buf = appendRelay((*buf)[:0], &p.ih, &p.fromID, offerID, "offer", sdp)
	r := t.send(buf)
	if r != relaySent {
		f.takeAnswer(t, *offerID)
	}
	observeRelay(relayOffer, r)
}

// remote reports whether a peer of instance n has its socket on another
// instance.
func (f *Frontend) remote(n uint16) bool {
	return n != 0 && f.relay != nil && n != f.relay.Instance()
}

// answer relays an answer to the offer it answers.
func (f *Frontend) answer(c *conn, m *message) {
	if err := m.missing(true); err != nil {
		f.refuse(c, m, err)
		return
	}
	if id, ok := c.swarm(m.infoHash); !ok || id != m.peerID {
		f.refuse(c, m, errNotAnnounced)
		return
	}
	p, ok := f.takeAnswer(c, m.offerID)
	if !ok || p.ih != m.infoHash || p.fromID != m.toPeerID || p.expires < clock.Unix() {
		observeRelay(relayAnswer, relayUnmatched)
		k := bindKey{m.infoHash, m.toPeerID, c.af}
		if ok && p.ih == m.infoHash && p.fromID == m.toPeerID || f.boundTo(k) != nil || f.offeredLately(k) {
			f.refuse(c, m, errUnknownOffer)
		} else {
			f.refuse(c, m, errUnknownToPeerID)
		}
		return
	}
	buf := f.getBuf()
	if p.from == nil {
		*buf = appendRemote((*buf)[:0], remoteAnswer, f.relay.Instance(), c.key, p.fromAddr, &m.infoHash, &m.peerID, &p.fromID, &m.offerID, m.answer)
		f.relay.Publish(p.fromInstance, *buf)
		f.putBuf(buf)
		observeRelay(relayAnswer, relayForwarded)
		return
	}
	*buf = appendRelay((*buf)[:0], &m.infoHash, &m.peerID, &m.offerID, "answer", m.answer)
	observeRelay(relayAnswer, p.from.send(buf))
}

// receiveRemote delivers a message another instance relayed: an offer
// for a peer whose socket this instance holds, or an answer to an offer
// one of its peers made. The instance that sent an answer checked it
// against the offer it relayed.
func (f *Frontend) receiveRemote(b []byte) {
	defer func() {
		// It runs in the relay's goroutine: a panic would end the process.
		if v := recover(); v != nil {
			logrus.WithFields(logrus.Fields{"panic": v, "stack": string(debug.Stack())}).Error("websocket: panic while handling a message from another instance")
			f.metrics.ObserveError(reasonPanic)
		}
	}()
	var r remoteMessage
	if !r.parse(b) {
		observeRelay(relayOffer, relayMalformed)
		return
	}
	t := f.lookup(r.to)
	if r.kind == remoteOffer {
		if t == nil {
			observeRelay(relayOffer, relayPeerGone)
			return
		}
		f.rememberOfferer(bindKey{r.ih, r.fromID, t.af})
		f.offerTo(t, r.toID, pendingOffer{fromInstance: r.fromInstance, fromAddr: r.from, fromID: r.fromID, ih: r.ih,
			expires: clock.Unix() + int64(f.cfg.OfferTimeout/time.Second)}, &r.offerID, r.sdp)
		return
	}
	if t == nil {
		observeRelay(relayAnswer, relayPeerGone)
		return
	}
	if id, ok := t.swarm(r.ih); !ok || id != r.toID {
		observeRelay(relayAnswer, relayPeerGone)
		return
	}
	buf := f.getBuf()
	*buf = appendRelay((*buf)[:0], &r.ih, &r.fromID, &r.offerID, "answer", r.sdp)
	observeRelay(relayAnswer, t.send(buf))
}

// leave takes a closed connection's peer out of a swarm.
func (f *Frontend) leave(req *bittorrent.AnnounceRequest, resp *bittorrent.AnnounceResponse) {
	if l, ok := f.logic.(frontend.Leaver); ok {
		l.Leave(context.Background(), req, resp)
		return
	}
	f.logic.AfterAnnounce(context.Background(), req, resp)
}

// boundTo returns the connection k is bound to, or nil.
func (f *Frontend) boundTo(k bindKey) *conn {
	f.bindMu.Lock()
	c := f.bindings[k]
	f.bindMu.Unlock()
	return c
}

// bind makes c the owner of peer ID id in swarm ih, unless another
// connection got there first.
func (f *Frontend) bind(c *conn, ih bittorrent.InfoHash, id bittorrent.PeerID) bool {
	k := bindKey{ih, id, c.af}
	f.bindMu.Lock()
	if o := f.bindings[k]; o != nil && o != c {
		f.bindMu.Unlock()
		return false
	}
	f.bindings[k] = c
	f.bindMu.Unlock()
	c.mu.Lock()
	c.swarms = append(c.swarms, membership{ih, id})
	c.mu.Unlock()
	return true
}

func (f *Frontend) unbind(c *conn, ih bittorrent.InfoHash, id bittorrent.PeerID) {
	k := bindKey{ih, id, c.af}
	f.bindMu.Lock()
	if f.bindings[k] == c {
		delete(f.bindings, k)
	}
	f.bindMu.Unlock()
	c.mu.Lock()
	for i := range c.swarms {
		if c.swarms[i].ih == ih {
			last := len(c.swarms) - 1
			c.swarms[i] = c.swarms[last]
			c.swarms = c.swarms[:last]
			break
		}
	}
	c.mu.Unlock()
}

// expectAnswer records an offer relayed to t, unless t already awaits
// too many.
func (f *Frontend) expectAnswer(t *conn, id [20]byte, p pendingOffer) bool {
	f.offerMu.Lock()
	defer f.offerMu.Unlock()
	offers := f.offers[t]
	if offers == nil {
		offers = make(map[[20]byte]pendingOffer)
		f.offers[t] = offers
	}
	if _, dup := offers[id]; !dup && len(offers) >= maxPendingPerConn {
		return false
	}
	offers[id] = p
	return true
}

// takeAnswer removes and returns the offer with ID id relayed to t.
func (f *Frontend) takeAnswer(t *conn, id [20]byte) (pendingOffer, bool) {
	f.offerMu.Lock()
	offers := f.offers[t]
	p, ok := offers[id]
	if ok {
		delete(offers, id)
		if len(offers) == 0 {
			delete(f.offers, t)
		}
	}
	f.offerMu.Unlock()
	return p, ok
}

// maxOfferers bounds the peers of other instances remembered as having
// offered lately; past it, new ones are not (an answer to one that
// matches no offer is then told its to_peer_id is unknown).
const maxOfferers = 1 << 16

// rememberOfferer records that k, a peer of another instance, offered to
// a connection of this one: for twice offer_timeout, so that a late
// answer is told that its offer expired.
func (f *Frontend) rememberOfferer(k bindKey) {
	until := clock.Unix() + 2*int64(f.cfg.OfferTimeout/time.Second)
	f.offerMu.Lock()
	if _, ok := f.offerers[k]; ok || len(f.offerers) < maxOfferers {
		f.offerers[k] = until
	}
	f.offerMu.Unlock()
}

// offeredLately reports whether k, a peer of another instance, offered
// to a connection of this one lately.
func (f *Frontend) offeredLately(k bindKey) bool {
	f.offerMu.Lock()
	until, ok := f.offerers[k]
	f.offerMu.Unlock()
	return ok && until >= clock.Unix()
}

// dropOffers forgets the offers awaiting the answer of a connection that
// closed.
func (f *Frontend) dropOffers(t *conn) {
	f.offerMu.Lock()
	delete(f.offers, t)
	f.offerMu.Unlock()
}

// sweep forgets, now and then, the offers nobody answered in time.
func (f *Frontend) sweep() {
	defer f.served.Done()
	t := time.NewTicker(max(f.cfg.OfferTimeout/4, time.Second))
	defer t.Stop()
	for {
		select {
		case <-f.done:
			return
		case <-t.C:
		}
		now := clock.Unix()
		f.offerMu.Lock()
		for t, offers := range f.offers {
			for id, p := range offers {
				if p.expires < now {
					delete(offers, id)
				}
			}
			if len(offers) == 0 {
				delete(f.offers, t)
			}
		}
		for k, until := range f.offerers {
			if until < now {
				delete(f.offerers, k)
			}
		}
		f.offerMu.Unlock()
	}
}
