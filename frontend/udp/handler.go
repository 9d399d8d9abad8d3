package udp

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/frontend"
	"github.com/chihaya/chihaya/pkg/query"
)

// handler turns one datagram into its reply. Each socket goroutine owns one,
// so that the request, response and params objects are reused from packet
// to packet without locks or pools.
type handler struct {
	logic     frontend.TrackerLogic
	ids       *ConnIDGenerator
	metrics   *frontend.Metrics
	log       *limitedLogger
	opts      announceOptions
	maxScrape int
	// ctx is shared by every request: a per-packet context would allocate.
	ctx context.Context

	announceReq  bittorrent.AnnounceRequest
	announceResp bittorrent.AnnounceResponse
	scrapeReq    bittorrent.ScrapeRequest
	scrapeResp   bittorrent.ScrapeResponse
	urlData      []byte
	params       query.Values
}

func newHandler(ctx context.Context, logic frontend.TrackerLogic, ids *ConnIDGenerator, m *frontend.Metrics, log *limitedLogger, cfg Config) *handler {
	return &handler{
		logic:   logic,
		ids:     ids,
		metrics: m,
		log:     log,
		opts: announceOptions{
			allowIPSpoofing: cfg.AllowIPSpoofing,
			maxNumWant:      uint32(cfg.MaxNumWant),
			defaultNumWant:  uint32(cfg.DefaultNumWant),
		},
		maxScrape: cfg.MaxScrapeInfoHashes,
		ctx:       ctx,
		announceResp: bittorrent.AnnounceResponse{
			Peers:        make([]bittorrent.Peer, 0, cfg.MaxNumWant),
			CompactPeers: make([]byte, 0, 18*cfg.MaxNumWant),
		},
		scrapeReq:  bittorrent.ScrapeRequest{InfoHashes: make([]bittorrent.InfoHash, 0, cfg.MaxScrapeInfoHashes)},
		scrapeResp: bittorrent.ScrapeResponse{Files: make([]bittorrent.Scrape, 0, cfg.MaxScrapeInfoHashes)},
		urlData:    make([]byte, 0, 512),
	}
}

// handle answers the datagram b, received from src, by appending the reply
// to dst. It returns the reply, or nil when the datagram is dropped. A
// panic anywhere below is recovered and counted, and drops the datagram:
// one bad packet must never stop a listener.
//
// For announces and scrapes the reply is written before the logic's After
// step runs, so that a caller that sends it at once (or queues it in the
// outgoing batch) answers before the swarm is updated.
func (h *handler) handle(b []byte, src netip.AddrPort, dst []byte) (reply []byte) {
	defer func() {
		if v := recover(); v != nil {
			h.metrics.ObserveError(reasonPanic)
			h.log.panicked(v)
			reply = nil
		}
	}()

	var start time.Time
	if h.metrics.Timing() {
		start = time.Now()
	}
	connID, action, txID, ok := parseHeader(b)
	if !ok {
		h.metrics.ObserveError(reasonShortPacket)
		return nil
	}
	// A dual-stack socket reports IPv4 clients as IPv4-mapped addresses.
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	af := bittorrent.IPv4
	if src.Addr().Is6() {
		af = bittorrent.IPv6
	}

	switch action {
	case actionConnect:
		if connID != protocolID {
			h.metrics.ObserveRequest(frontend.Connect, af, bittorrent.ErrUnsupportedProtocol, start)
			return h.refuse(dst, txID, bittorrent.ErrUnsupportedProtocol, len(b))
		}
		h.metrics.ObserveRequest(frontend.Connect, af, nil, start)
		return appendConnect(dst, txID, h.ids.Generate(src.Addr()))

	case actionAnnounce, actionScrape:
		a := frontend.Announce
		if action == actionScrape {
			a = frontend.Scrape
		}
		if !h.ids.Validate(connID, src.Addr()) {
			h.metrics.ObserveRequest(a, af, bittorrent.ErrBadConnectionID, start)
			return h.refuse(dst, txID, bittorrent.ErrBadConnectionID, len(b))
		}
		if a == frontend.Announce {
			return h.announce(b, src, af, txID, dst, start)
		}
		return h.scrape(b, src, af, txID, dst, start)

	default:
		h.metrics.ObserveError(reasonUnknownAction)
		if h.ids.Validate(connID, src.Addr()) {
			return appendError(dst, txID, string(bittorrent.ErrUnknownAction))
		}
		return h.refuse(dst, txID, bittorrent.ErrUnknownAction, len(b))
	}
}

// refuse answers a request whose sender is not authenticated. Since the
// source address may be spoofed, the error packet is only sent when it is
// no larger than the request: the tracker must not amplify traffic towards
// a victim. Otherwise the datagram is dropped.
func (h *handler) refuse(dst []byte, txID uint32, err bittorrent.ClientError, reqLen int) []byte {
	if errorHeaderLen+len(err) > reqLen {
		h.metrics.ObserveError(reasonAmplification)
		return nil
	}
	return appendError(dst, txID, string(err))
}

func (h *handler) announce(b []byte, src netip.AddrPort, af bittorrent.AddressFamily, txID uint32, dst []byte, start time.Time) []byte {
	req, resp := &h.announceReq, &h.announceResp
	*resp = bittorrent.AnnounceResponse{Peers: resp.Peers[:0], CompactPeers: resp.CompactPeers[:0]}
	req.Params = bittorrent.ParamsNone
	defer h.params.Reset()

	if err := parseAnnounce(b, src, h.opts, req); err != nil {
		h.metrics.ObserveRequest(frontend.Announce, af, err, start)
		return appendError(dst, txID, bittorrent.ClientText(err))
	}
	if len(b) > announceLen {
		h.urlData = parseOptions(b[announceLen:], h.urlData[:0])
		if len(h.urlData) > 0 {
			// One allocation, only for announces carrying URL data:
			// Params hands out substrings of the query, and a hook may
			// keep them, so they must not alias the reused buffer.
			path, rawQuery := splitURLData(string(h.urlData))
			if err := h.params.Parse(path, rawQuery); err != nil {
				h.metrics.ObserveRequest(frontend.Announce, af, err, start)
				return appendError(dst, txID, bittorrent.ClientText(err))
			}
			req.Params = &h.params
		}
	}

	if err := h.logic.HandleAnnounce(h.ctx, req, resp); err != nil {
		h.failed("announce", err)
		h.metrics.ObserveRequest(frontend.Announce, af, err, start)
		return appendError(dst, txID, bittorrent.ClientText(err))
	}
	if req.Peer.AddressFamily() != af {
		// A hook gave the announcer an address of the other family: its
		// compact peers are of that family too, and are left out as
		// appendAnnounce leaves out such peers.
		resp.CompactPeers = resp.CompactPeers[:0]
	}
	reply := appendAnnounce(dst, txID, af, resp)
	h.metrics.ObserveRequest(frontend.Announce, af, nil, start)
	h.logic.AfterAnnounce(h.ctx, req, resp)
	return reply
}

func (h *handler) scrape(b []byte, src netip.AddrPort, af bittorrent.AddressFamily, txID uint32, dst []byte, start time.Time) []byte {
	req, resp := &h.scrapeReq, &h.scrapeResp
	resp.Files = resp.Files[:0]
	req.AddressFamily = af
	req.RemoteAddr = src.Addr()
	req.Params = bittorrent.ParamsNone

	var err error
	if req.InfoHashes, err = parseScrape(b, h.maxScrape, req.InfoHashes[:0]); err != nil {
		h.metrics.ObserveRequest(frontend.Scrape, af, err, start)
		return appendError(dst, txID, bittorrent.ClientText(err))
	}
	if err := h.logic.HandleScrape(h.ctx, req, resp); err != nil {
		h.failed("scrape", err)
		h.metrics.ObserveRequest(frontend.Scrape, af, err, start)
		return appendError(dst, txID, bittorrent.ClientText(err))
	}
	reply := appendScrape(dst, txID, resp)
	h.metrics.ObserveRequest(frontend.Scrape, af, nil, start)
	h.logic.AfterScrape(h.ctx, req, resp)
	return reply
}

// failed logs an internal error (a client error is the client's business
// and is only counted).
func (h *handler) failed(action string, err error) {
	var ce bittorrent.ClientError
	if !errors.As(err, &ce) {
		h.log.internalError(action, err)
	}
}
