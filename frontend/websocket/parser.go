package websocket

import (
	"math"
	"unicode/utf8"

	"github.com/chihaya/chihaya/bittorrent"
)

// The client errors of this frontend; the metric reason of each is in
// reasons (metrics.go).
const (
	errMalformed        = bittorrent.ClientError("malformed message: must be a JSON object")
	errInvalidInfoHash  = bittorrent.ClientError("invalid info_hash: must be 20 characters, each U+0000 to U+00FF")
	errInvalidPeerID    = bittorrent.ClientError("invalid peer_id: must be 20 characters, each U+0000 to U+00FF")
	errInvalidToPeerID  = bittorrent.ClientError("invalid to_peer_id: must be 20 characters, each U+0000 to U+00FF")
	errInvalidOfferID   = bittorrent.ClientError("invalid offer_id: must be 20 characters, each U+0000 to U+00FF")
	errInvalidAction    = bittorrent.ClientError("invalid action: must be \"announce\" or \"scrape\"")
	errInvalidOffers    = bittorrent.ClientError("invalid offers: must be a list of {\"offer\": {…}, \"offer_id\": …}")
	errTooManyOffers    = bittorrent.ClientError("too many offers in one announce")
	errInvalidAnswer    = bittorrent.ClientError("invalid answer: must be a JSON object")
	errInvalidNumber    = bittorrent.ClientError("invalid uploaded, downloaded, left or numwant: must be a non-negative number")
	errMissingToPeerID  = bittorrent.ClientError("answer without to_peer_id")
	errMissingOfferID   = bittorrent.ClientError("answer without offer_id")
	errPeerIDTaken      = bittorrent.ClientError("peer_id is in use by another connection in this swarm")
	errPeerIDChanged    = bittorrent.ClientError("peer_id differs from the one this connection announced in this swarm")
	errTooManySwarms    = bittorrent.ClientError("too many swarms on one connection")
	errNotAnnounced     = bittorrent.ClientError("announce in this swarm on this connection before answering")
	errUnknownToPeerID  = bittorrent.ClientError("to_peer_id is not in this swarm")
	errUnknownOffer     = bittorrent.ClientError("could not find the offer corresponding to your answer")
	errTooManyHashes    = bittorrent.ClientError("too many info_hash values in one scrape")
	errInfoHashListOnly = bittorrent.ClientError("invalid info_hash: a list is only allowed in a scrape")
)

// action is what a message asks for.
type action uint8

const (
	actionNone action = iota
	actionAnnounce
	actionScrape
)

func (a action) String() string {
	switch a {
	case actionAnnounce:
		return "announce"
	case actionScrape:
		return "scrape"
	}
	return ""
}

// offer is one WebRTC offer of an announce: its ID and its `offer` object
// as the raw JSON bytes of the message, relayed as they came.
type offer struct {
	id  [20]byte
	sdp []byte
}

// message is one parsed client message. The byte slices point into the
// message's buffer, so a message is only valid while that buffer is.
type message struct {
	action action

	infoHash    bittorrent.InfoHash
	hasInfoHash bool
	// infoHashes holds a scrape's hashes, whether sent as a list or as one
	// string.
	infoHashes []bittorrent.InfoHash
	hashList   bool

	peerID      bittorrent.PeerID
	hasPeerID   bool
	toPeerID    bittorrent.PeerID
	hasToPeerID bool
	offerID     [20]byte
	hasOfferID  bool

	event      bittorrent.Event
	uploaded   uint64
	downloaded uint64
	// left is math.MaxUint64 when the client does not know it (WebTorrent
	// sends null before it has a torrent's metadata).
	left uint64

	offers []offer
	answer []byte
}

// reset empties m for the next message, keeping its slices' space.
func (m *message) reset() {
	*m = message{infoHashes: m.infoHashes[:0], offers: m.offers[:0], left: math.MaxUint64}
}

// missing returns the error for the first field an announce lacks (with
// answer, an answer: also the peer and offer it answers), or nil.
func (m *message) missing(answer bool) error {
	switch {
	case !m.hasInfoHash:
		return bittorrent.ErrMissingInfoHash
	case !m.hasPeerID:
		return bittorrent.ErrMissingPeerID
	case answer && !m.hasToPeerID:
		return errMissingToPeerID
	case answer && !m.hasOfferID:
		return errMissingOfferID
	}
	return nil
}

// maxDepth bounds the nesting of JSON values skipped or relayed.
const maxDepth = 32

// parser reads one message. It never allocates: strings are compared and
// decoded in place, and offers and answers are kept as slices of the
// message.
type parser struct {
	b         []byte
	i         int
	maxOffers int
	maxHashes int
}

// parseMessage parses b into m (which it resets). The first error found is
// returned, with m holding what was read before it: the action and info
// hash, when they came first, so that the failure can name them.
func parseMessage(b []byte, m *message, maxOffers, maxHashes int) error {
	m.reset()
	if !utf8.Valid(b) {
		// Relaying invalid UTF-8 in a text frame would get the receiving
		// browser's connection closed.
		return errMalformed
	}
	p := parser{b: b, maxOffers: maxOffers, maxHashes: maxHashes}
	p.ws()
	err := p.object(errMalformed, func(key []byte) error { return p.field(m, key) })
	if err != nil {
		return err
	}
	return p.end(m)
}

// end checks that nothing but white space follows the object, and that
// the message has an action.
func (p *parser) end(m *message) error {
	p.ws()
	if p.i != len(p.b) {
		return errMalformed
	}
	if m.action == actionNone {
		return errInvalidAction
	}
	if m.hashList && m.action != actionScrape {
		return errInfoHashListOnly
	}
	return nil
}

func (p *parser) field(m *message, key []byte) error {
	switch string(key) {
	case "action":
		s, ok := p.rawString()
		switch {
		case !ok:
			return errInvalidAction
		case string(s) == "announce":
			m.action = actionAnnounce
		case string(s) == "scrape":
			m.action = actionScrape
		default:
			return errInvalidAction
		}
	case "info_hash":
		return p.infoHash(m)
	case "peer_id":
		return p.binary((*[20]byte)(&m.peerID), &m.hasPeerID, errInvalidPeerID)
	case "to_peer_id":
		return p.binary((*[20]byte)(&m.toPeerID), &m.hasToPeerID, errInvalidToPeerID)
	case "offer_id":
		return p.binary(&m.offerID, &m.hasOfferID, errInvalidOfferID)
	case "uploaded":
		return p.number(&m.uploaded)
	case "downloaded":
		return p.number(&m.downloaded)
	case "left":
		return p.number(&m.left)
	case "numwant":
		var n uint64
		return p.number(&n) // the number of offers is what counts
	case "event":
		return p.event(m)
	case "offers":
		return p.offers(m)
	case "answer":
		start := p.i
		if p.peek() != '{' || !p.skip(0) {
			return errInvalidAnswer
		}
		m.answer = p.b[start:p.i]
	default:
		if !p.skip(0) {
			return errMalformed
		}
	}
	return nil
}

func (p *parser) infoHash(m *message) error {
	if p.peek() != '[' {
		var ih [20]byte
		if err := p.binary(&ih, &m.hasInfoHash, errInvalidInfoHash); err != nil {
			return err
		}
		m.infoHash = ih
		m.infoHashes = append(m.infoHashes[:0], ih)
		return nil
	}
	m.hashList = true
	m.infoHashes = m.infoHashes[:0]
	return p.array(errInvalidInfoHash, func() error {
		if len(m.infoHashes) == p.maxHashes {
			return errTooManyHashes
		}
		var ih [20]byte
		var ok bool
		if err := p.binary(&ih, &ok, errInvalidInfoHash); err != nil {
			return err
		}
		m.infoHashes = append(m.infoHashes, ih)
		return nil
	})
}

func (p *parser) event(m *message) error {
	if p.literal("null") {
		m.event = bittorrent.None
		return nil
	}
	s, ok := p.rawString()
	if !ok {
		return bittorrent.ErrInvalidEvent
	}
	if string(s) == "update" {
		m.event = bittorrent.None
		return nil
	}
	e, err := bittorrent.ParseEvent(string(s))
	m.event = e
	return err
}

func (p *parser) offers(m *message) error {
	if p.literal("null") {
		return nil
	}
	return p.array(errInvalidOffers, func() error {
		if len(m.offers) == p.maxOffers {
			return errTooManyOffers
		}
		o, err := p.offer()
		if err != nil {
			return err
		}
		m.offers = append(m.offers, o)
		return nil
	})
}

func (p *parser) offer() (offer, error) {
	var o offer
	var hasID bool
	err := p.object(errInvalidOffers, func(key []byte) error {
		switch string(key) {
		case "offer":
			start := p.i
			if p.peek() != '{' || !p.skip(1) {
				return errInvalidOffers
			}
			o.sdp = p.b[start:p.i]
		case "offer_id":
			return p.binary(&o.id, &hasID, errInvalidOfferID)
		default:
			if !p.skip(1) {
				return errInvalidOffers
			}
		}
		return nil
	})
	if err != nil {
		return o, err
	}
	if o.sdp == nil || !hasID {
		return o, errInvalidOffers
	}
	return o, nil
}

// binary reads a binary string: exactly 20 characters, each a code point
// up to U+00FF standing for one byte.
func (p *parser) binary(dst *[20]byte, has *bool, bad error) error {
	if !p.eat('"') {
		return bad
	}
	n := 0
	for p.i < len(p.b) {
		c := p.b[p.i]
		var v int
		switch {
		case c == '"':
			p.i++
			if n != 20 {
				return bad
			}
			*has = true
			return nil
		case c == '\\':
			r, ok := p.escape()
			if !ok || r > 0xFF {
				return bad
			}
			v = int(r)
		case c < 0x20:
			return bad
		case c < 0x80:
			v = int(c)
			p.i++
		case (c == 0xC2 || c == 0xC3) && p.i+1 < len(p.b) && p.b[p.i+1]&0xC0 == 0x80:
			v = int(c&0x1F)<<6 | int(p.b[p.i+1]&0x3F)
			p.i += 2
		default:
			return bad // a code point above U+00FF
		}
		if n == 20 {
			return bad
		}
		dst[n] = byte(v)
		n++
	}
	return bad
}
