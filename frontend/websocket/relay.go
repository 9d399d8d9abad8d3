package websocket

import (
	"time"

	"github.com/chihaya/chihaya/bittorrent"
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

// offerKey is an offer relayed to a connection, awaiting its answer.
type offerKey struct {
	to *conn
	id [20]byte
}

type pendingOffer struct {
	from    *conn
	fromID  bittorrent.PeerID
	ih      bittorrent.InfoHash
	expires int64 // Unix seconds
}

// relayOffers sends each offer of m to one of peers, the WebSocket peers
// the store chose, in order.
func (f *Frontend) relayOffers(c *conn, m *message, peers []bittorrent.Peer) {
	now := clock.Unix()
	for i := range m.offers {
		if i >= len(peers) {
			observeRelay(relayOffer, relayNoPeer)
			continue
		}
		o := &m.offers[i]
		p := &peers[i]
		t := f.lookup(p.AddrPort)
		if t == nil || t == c {
			observeRelay(relayOffer, relayPeerGone)
			continue
		}
		if id, ok := t.swarm(m.infoHash); !ok || id != p.ID {
			observeRelay(relayOffer, relayPeerGone)
			continue
		}
		if !f.expectAnswer(t, o.id, pendingOffer{from: c, fromID: m.peerID, ih: m.infoHash, expires: now + int64(f.cfg.OfferTimeout/time.Second)}) {
			observeRelay(relayOffer, relayQueueFull)
			continue
		}
		buf := f.getBuf()
		*buf = appendRelay((*buf)[:0], &m.infoHash, &m.peerID, &o.id, "offer", o.sdp)
		r := t.send(buf)
		if r != relaySent {
			f.takeAnswer(t, o.id)
		}
		observeRelay(relayOffer, r)
	}
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
		if f.boundTo(bindKey{m.infoHash, m.toPeerID, c.af}) == nil {
			f.refuse(c, m, errUnknownToPeerID)
		} else {
			f.refuse(c, m, errUnknownOffer)
		}
		return
	}
	buf := f.getBuf()
	*buf = appendRelay((*buf)[:0], &m.infoHash, &m.peerID, &m.offerID, "answer", m.answer)
	observeRelay(relayAnswer, p.from.send(buf))
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
	k := offerKey{t, id}
	f.offerMu.Lock()
	defer f.offerMu.Unlock()
	if _, dup := f.offers[k]; !dup {
		if t.pending >= maxPendingPerConn {
			return false
		}
		t.pending++
	}
	f.offers[k] = p
	return true
}

// takeAnswer removes and returns the offer with ID id relayed to t.
func (f *Frontend) takeAnswer(t *conn, id [20]byte) (pendingOffer, bool) {
	k := offerKey{t, id}
	f.offerMu.Lock()
	p, ok := f.offers[k]
	if ok {
		delete(f.offers, k)
		t.pending--
	}
	f.offerMu.Unlock()
	return p, ok
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
		for k, p := range f.offers {
			if p.expires < now {
				delete(f.offers, k)
				k.to.pending--
			}
		}
		f.offerMu.Unlock()
	}
}
