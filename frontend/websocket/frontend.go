// Package websocket is the WebTorrent tracker frontend: browsers announce
// and scrape with JSON messages over a WebSocket, and the tracker relays
// the WebRTC offers and answers through which they connect to each other.
//
// The wire (bittorrent-tracker's is the reference, with aquatic_ws's
// safeguards): an announce gets a reply with the counts and the interval,
// never a peer list; each of its offers goes to a different random
// WebSocket peer of the swarm, never the sender; an answer is relayed to
// the offerer only if it matches an offer relayed to the answerer within
// offer_timeout. A peer ID belongs to the connection that first announced
// it in a swarm. A closed connection leaves every swarm it announced in,
// as after a `stopped`.
//
// Library: github.com/gorilla/websocket. It runs no goroutine of its own
// per connection, reads through a buffer of the size we choose, and takes
// its write buffer from a pool only while writing; on Linux an idle
// connection parks in an epoll set (park_linux.go) instead of keeping a
// reader goroutine, so it holds a 288-byte read buffer and its state. It
// allocates one small object per message read (its reader); messages are
// framed by peekConn, not by its writer, and everything else on the relay
// path is pooled.
package websocket

import (
	"context"
	"errors"
	"net"
	nethttp "net/http"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	gws "github.com/gorilla/websocket"
	"github.com/julienschmidt/httprouter"
	"github.com/sirupsen/logrus"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/frontend"
	"github.com/chihaya/chihaya/pkg/query"
	"github.com/chihaya/chihaya/pkg/realip"
)

// readBufferSize is each connection's read buffer. Messages are read
// through it into a pooled buffer (larger reads bypass it), so a small one
// costs little for a large offer and saves memory on every idle
// connection. gorilla/websocket takes over a hijacked reader only if it
// is larger than 256 bytes; 288 is the next allocation size class.
const readBufferSize = 288

// maxPooledBuffer: larger buffers are not kept in the pool.
const maxPooledBuffer = 64 << 10

// Frontend serves the WebSocket tracker.
type Frontend struct {
	cfg      Config
	logic    frontend.TrackerLogic
	metrics  *frontend.Metrics
	srv      *nethttp.Server
	ln       net.Listener
	upgrader gws.Upgrader
	origins  map[string]bool
	real     *realip.Resolver
	interval int64

	mu      sync.RWMutex
	conns   map[netip.AddrPort]*conn
	perIP   map[netip.Addr]int
	closing bool

	bindMu   sync.Mutex
	bindings map[bindKey]*conn

	// offers are the offers relayed to each connection that await its
	// answer, by offer ID (relay.go); a connection's go when it closes.
	offerMu sync.Mutex
	offers  map[*conn]map[[20]byte]pendingOffer
	// offerers are the peers of other instances that offered to a
	// connection of this one lately, until when (Unix seconds): what this
	// instance knows of them, so that an answer to one that matches no
	// offer is told so, not that its to_peer_id is unknown (relay.go).
	offerers map[bindKey]int64

	// relay reaches the WebSocket peers whose sockets other instances
	// hold (nil when the store is this instance's alone).
	relay frontend.Relay

	active   sync.WaitGroup // connections and their writers
	served   sync.WaitGroup // the server and the sweeper
	done     chan struct{}
	stopOnce sync.Once

	bufs   sync.Pool // *[]byte
	states sync.Pool // *state

	// poller parks idle connections (nil: each keeps its goroutine).
	poller *poller
}

var _ frontend.Frontend = (*Frontend)(nil)

// state is what handling one message needs, pooled.
type state struct {
	msg    message
	ann    bittorrent.AnnounceRequest
	resp   bittorrent.AnnounceResponse
	scr    bittorrent.ScrapeRequest
	scresp bittorrent.ScrapeResponse
}

// NewFrontend binds the listener and serves it in the background. cfg
// must have had WithDefaults and Validate applied.
func NewFrontend(logic frontend.TrackerLogic, cfg Config) (*Frontend, error) {
	f := &Frontend{
		cfg:      cfg,
		logic:    logic,
		metrics:  frontend.NewMetrics("websocket", cfg.EnableRequestTiming, frontend.Announce, frontend.Scrape),
		interval: int64(cfg.AnnounceInterval / time.Second),
		conns:    make(map[netip.AddrPort]*conn),
		perIP:    make(map[netip.Addr]int),
		bindings: make(map[bindKey]*conn),
		offers:   make(map[*conn]map[[20]byte]pendingOffer),
		offerers: make(map[bindKey]int64),
		done:     make(chan struct{}),
	}
	f.metrics.KnownErrors(knownReasons()...)
	if rp, ok := logic.(frontend.RelayProvider); ok {
		f.relay = rp.Relay()
	}
	real, err := realip.New(cfg.RealIPHeader, cfg.TrustedProxies)
	if err != nil {
		return nil, errors.New("websocket: trusted_proxies: " + err.Error())
	}
	f.real = real
	f.bufs.New = func() any { b := make([]byte, 0, 4096); return &b }
	f.states.New = func() any { return new(state) }
	if len(cfg.AllowedOrigins) > 0 {
		f.origins = make(map[string]bool)
		for _, o := range cfg.AllowedOrigins {
			f.origins[strings.ToLower(strings.TrimSuffix(o, "/"))] = true
		}
	}
	f.upgrader = gws.Upgrader{
		HandshakeTimeout: cfg.WriteTimeout,
		WriteBufferPool:  &writePool{},
		// Origins are checked before the upgrade (serveUpgrade), where a
		// refusal is counted.
		CheckOrigin: func(*nethttp.Request) bool { return true },
	}

	var handler nethttp.Handler = nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		f.serveUpgrade(w, r, nil)
	})
	if len(cfg.Routes) > 0 {
		router := httprouter.New()
		router.RedirectTrailingSlash = false
		router.RedirectFixedPath = false
		router.HandleOPTIONS = false
		router.NotFound = nethttp.HandlerFunc(func(w nethttp.ResponseWriter, _ *nethttp.Request) {
			f.metrics.ObserveError(reasonUnknownPath)
			nethttp.Error(w, "unknown path: this is a WebTorrent tracker", nethttp.StatusNotFound)
		})
		for _, route := range cfg.Routes {
			router.GET(route, f.serveUpgrade)
		}
		handler = router
	}
	f.srv = &nethttp.Server{
		Handler:           handler,
		ReadHeaderTimeout: cfg.WriteTimeout,
		// A request that is not upgraded (refused, or not WebSocket) leaves
		// a keep-alive connection that no per-IP limit counts: without
		// this, net/http would let it idle forever.
		IdleTimeout: cfg.WriteTimeout,
		// And a request whose body never comes would hold its connection
		// forever while net/http waits to discard that body. An upgraded
		// connection sets its own read deadline before it reads.
		ReadTimeout:    cfg.WriteTimeout,
		MaxHeaderBytes: 8 << 10,
		ErrorLog:       nil,
	}

	tlsCfg, err := LoadTLS(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, errors.New("websocket: " + err.Error())
	}
	f.ln = ln
	serveLn := ln
	if tlsCfg != nil {
		serveLn = tlsListener(ln, tlsCfg)
	}
	f.poller = newPoller()
	if f.relay != nil {
		f.relay.Receive(f.receiveRemote)
	}
	f.served.Add(2)
	if f.poller != nil {
		f.served.Add(1)
		go f.sweepIdle()
	}
	go func() {
		defer f.served.Done()
		if err := f.srv.Serve(serveLn); err != nil && !errors.Is(err, nethttp.ErrServerClosed) {
			logrus.WithError(err).WithField("addr", ln.Addr().String()).Error("websocket: serve")
		}
	}()
	go f.sweep()
	return f, nil
}

// Addr returns the listener's address.
func (f *Frontend) Addr() net.Addr { return f.ln.Addr() }

// Stop closes the listener, sends every connection a close frame (1001,
// going away), gives the clients until ctx is done to close their side,
// then closes what remains. Every swarm loses the peers of the closed
// connections, as after a `stopped`.
func (f *Frontend) Stop(ctx context.Context) error {
	err := f.srv.Shutdown(ctx)
	f.stopOnce.Do(func() { close(f.done) })
	f.mu.Lock()
	f.closing = true
	conns := make([]*conn, 0, len(f.conns))
	for _, c := range f.conns {
		conns = append(conns, c)
	}
	f.mu.Unlock()
	deadline := time.Now().Add(time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	for _, c := range conns {
		_ = c.ws.WriteControl(gws.CloseMessage, gws.FormatCloseMessage(gws.CloseGoingAway, "tracker shutting down"), deadline)
	}
	finished := make(chan struct{})
	go func() {
		f.active.Wait()
		close(finished)
	}()
	// Clients answer a close frame at once; those that do not are cut off.
	grace := time.NewTimer(time.Until(deadline))
	defer grace.Stop()
	select {
	case <-finished:
	case <-grace.C:
		for _, c := range conns {
			c.kill()
		}
	case <-ctx.Done():
		for _, c := range conns {
			c.kill()
		}
	}
	select {
	case <-finished:
	case <-ctx.Done():
		err = errors.Join(err, errors.New("websocket: stop: "+ctx.Err().Error()))
	}
	f.served.Wait()
	if f.poller != nil {
		f.poller.stop()
	}
	if f.relay != nil {
		f.relay.Receive(nil)
	}
	return err
}

// serveUpgrade checks an upgrade request against the limits, upgrades it,
// and starts the connection's reader.
func (f *Frontend) serveUpgrade(w nethttp.ResponseWriter, r *nethttp.Request, ps httprouter.Params) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	var client netip.Addr
	if err == nil {
		client, err = f.real.ClientAddr(r.RemoteAddr, r.Header)
	}
	if err != nil {
		f.metrics.ObserveError(reasonUnknownAddress)
		nethttp.Error(w, string(bittorrent.ErrUnknownAddress), nethttp.StatusBadRequest)
		return
	}
	// The browser's address with the port of the connection it came over
	// (the proxy's, behind one): the peer's identity in the store, unique
	// among the open connections (checked below).
	ap = netip.AddrPortFrom(client, ap.Port())
	if origin := r.Header.Get("Origin"); origin != "" && f.origins != nil && !f.origins[strings.ToLower(origin)] {
		f.metrics.ObserveError(reasonOriginRefused)
		nethttp.Error(w, "origin not allowed", nethttp.StatusForbidden)
		return
	}
	v := new(query.Values)
	if err := v.Parse(requestPath(r), r.URL.RawQuery); err != nil {
		f.metrics.ObserveError(reasonOf(err))
		nethttp.Error(w, bittorrent.ClientText(err), nethttp.StatusBadRequest)
		return
	}
	for _, p := range ps {
		v.SetRouteParam(p.Key, p.Value)
	}
	c := &conn{f: f, key: ap, addr: ap.Addr(), params: v, fd: -1}
	c.serveFn, c.drainFn = c.serve, c.drain
	c.lastRead.Store(time.Now().UnixNano())
	if ap.Addr().Is6() {
		c.af = bittorrent.IPv6
	}

	f.mu.Lock()
	switch {
	case f.closing:
		f.mu.Unlock()
		f.metrics.ObserveError(reasonShuttingDown)
		nethttp.Error(w, "tracker shutting down", nethttp.StatusServiceUnavailable)
		return
	case f.perIP[c.addr] >= f.cfg.MaxConnectionsPerIP:
		f.mu.Unlock()
		f.metrics.ObserveError(reasonTooManyConns)
		nethttp.Error(w, "too many connections from this address", nethttp.StatusTooManyRequests)
		return
	case f.conns[ap] != nil:
		// Only possible behind several proxies: the address and port a
		// connection comes from identify it in the store.
		f.mu.Unlock()
		f.metrics.ObserveError(reasonConnectionInUse)
		nethttp.Error(w, "connection address in use", nethttp.StatusServiceUnavailable)
		return
	}
	f.perIP[c.addr]++
	f.active.Add(1)
	f.mu.Unlock()

	ws, err := f.upgrader.Upgrade(hijacker{w, c}, r, nil)
	if err != nil {
		// The upgrader has answered with an HTTP error.
		f.metrics.ObserveError(reasonUpgradeFailed)
		f.unregister(c)
		f.active.Done()
		return
	}
	ws.SetReadLimit(f.cfg.MaxMessageBytes)
	// c.ws is set before c is published, and never changes after.
	f.mu.Lock()
	if f.closing || f.conns[ap] != nil {
		f.mu.Unlock()
		f.metrics.ObserveError(reasonShuttingDown)
		_ = ws.WriteControl(gws.CloseMessage, gws.FormatCloseMessage(gws.CloseTryAgainLater, "try again later"), time.Now().Add(time.Second))
		_ = ws.Close()
		f.unregister(c)
		f.active.Done()
		return
	}
	c.ws = ws
	if f.poller != nil {
		f.poller.add(c, c.nc.Conn)
	}
	f.conns[ap] = c
	f.mu.Unlock()
	connectionsOpen.Inc()
	// The connection waits for its first message parked, where it can
	// (a burst of new connections would otherwise hold a goroutine each,
	// whose runtime record is never freed); else its reader runs in a
	// goroutine of its own so that net/http's, with its deeper stack, ends
	// now.
	if !c.park() {
		go c.serve()
	}
}

func (f *Frontend) unregister(c *conn) {
	f.mu.Lock()
	if f.conns[c.key] == c {
		delete(f.conns, c.key)
	}
	if n := f.perIP[c.addr] - 1; n > 0 {
		f.perIP[c.addr] = n
	} else {
		delete(f.perIP, c.addr)
	}
	f.mu.Unlock()
}

func (f *Frontend) lookup(ap netip.AddrPort) *conn {
	f.mu.RLock()
	c := f.conns[ap]
	f.mu.RUnlock()
	return c
}

// handle answers one message.
func (f *Frontend) handle(c *conn, b []byte) {
	st := f.states.Get().(*state)
	defer func() {
		if v := recover(); v != nil {
			logrus.WithFields(logrus.Fields{"panic": v, "stack": string(debug.Stack())}).Error("websocket: panic while handling a message")
			f.metrics.ObserveError(reasonPanic)
			c.reply(f.failure(string(bittorrent.ErrInternal), actionNone, nil))
			return // the state may be half-updated: not pooled
		}
		f.putState(st)
	}()
	m := &st.msg
	if err := parseMessage(b, m, f.cfg.MaxOffers, f.cfg.MaxScrapeInfoHashes); err != nil {
		f.refuse(c, m, err)
		return
	}
	switch {
	case m.action == actionScrape:
		f.scrape(c, st)
	case m.answer != nil:
		f.answer(c, m)
	default:
		f.announce(c, st)
	}
}

func (f *Frontend) putState(st *state) {
	st.ann = bittorrent.AnnounceRequest{}
	st.resp = bittorrent.AnnounceResponse{Peers: st.resp.Peers[:0]}
	st.scr = bittorrent.ScrapeRequest{InfoHashes: st.scr.InfoHashes[:0]}
	st.scresp = bittorrent.ScrapeResponse{Files: st.scresp.Files[:0]}
	f.states.Put(st)
}

// refuse counts err and answers it with a failure naming the message's
// action and info hash, when known.
func (f *Frontend) refuse(c *conn, m *message, err error) {
	f.metrics.ObserveError(reasonOf(err))
	var ih *bittorrent.InfoHash
	if m.hasInfoHash {
		ih = &m.infoHash
	}
	c.reply(f.failure(bittorrent.ClientText(err), m.action, ih))
}

// observe counts a request the logic answered with err.
func (f *Frontend) observe(a frontend.Action, af bittorrent.AddressFamily, err error, start time.Time) {
	f.metrics.ObserveRequest(a, af, err, start)
	if _, ok := err.(bittorrent.ClientError); !ok {
		var ce bittorrent.ClientError
		if !errors.As(err, &ce) {
			logrus.WithError(err).WithField("action", a.String()).Error("websocket: internal error")
		}
	}
}

func (f *Frontend) failure(reason string, a action, ih *bittorrent.InfoHash) *[]byte {
	buf := f.getBuf()
	*buf = appendFailure((*buf)[:0], reason, a, ih)
	return buf
}

func (f *Frontend) announce(c *conn, st *state) {
	var start time.Time
	if f.metrics.Timing() {
		start = time.Now()
	}
	m := &st.msg
	if err := m.missing(false); err != nil {
		f.refuse(c, m, err)
		return
	}
	stopped := m.event == bittorrent.Stopped
	id, joined := c.swarm(m.infoHash)
	switch {
	case joined && id != m.peerID:
		f.refuse(c, m, errPeerIDChanged)
		return
	case !joined && !stopped && c.swarmCount() >= f.cfg.MaxSwarmsPerConnection:
		f.refuse(c, m, errTooManySwarms)
		return
	case !joined && !stopped && !f.bind(c, m.infoHash, m.peerID):
		// Bound before the logic runs: with a store that applies the
		// announce as it answers (Redis), a peer ID refused after would
		// stay in the swarm until collected.
		f.refuse(c, m, errPeerIDTaken)
		return
	case !joined && stopped && f.boundTo(bindKey{m.infoHash, m.peerID, c.af}) != nil:
		f.refuse(c, m, errPeerIDTaken)
		return
	}

	req, resp := &st.ann, &st.resp
	*req = bittorrent.AnnounceRequest{
		InfoHash:   m.infoHash,
		Peer:       bittorrent.Peer{ID: m.peerID, Kind: bittorrent.WebSocketPeer, AddrPort: c.key},
		Event:      m.event,
		Left:       m.left,
		Downloaded: m.downloaded,
		Uploaded:   m.uploaded,
		RemoteAddr: c.addr,
		Params:     c.params,
	}
	if !stopped {
		req.NumWant = uint32(len(m.offers))
	}
	if resp.Peers == nil {
		resp.Peers = make([]bittorrent.Peer, 0, f.cfg.MaxOffers)
	}
	ctx := context.Background()
	if err := f.logic.HandleAnnounce(ctx, req, resp); err != nil {
		if !joined && !stopped {
			f.unbind(c, m.infoHash, m.peerID)
		}
		f.observe(frontend.Announce, c.af, err, start)
		c.reply(f.failure(bittorrent.ClientText(err), actionAnnounce, &m.infoHash))
		return
	}
	buf := f.getBuf()
	*buf = appendAnnounceReply((*buf)[:0], &m.infoHash, resp.Complete, resp.Incomplete, f.interval)
	if !stopped {
		f.relayOffers(c, m, resp.Peers)
	}
	// Unlike HTTP and UDP, the swarm is updated before the reply is queued:
	// a browser announces again the moment it hears back (with the offers
	// of its next torrent, say), and then must find itself in the swarm.
	// The reply waits for an update of the memory store, a microsecond.
	if joined || !stopped {
		// A `stopped` of a peer that never joined changes nothing.
		f.logic.AfterAnnounce(ctx, req, resp)
	}
	if stopped && joined {
		f.unbind(c, m.infoHash, m.peerID)
	}
	c.reply(buf)
	f.metrics.ObserveRequest(frontend.Announce, c.af, nil, start)
}

func (f *Frontend) scrape(c *conn, st *state) {
	var start time.Time
	if f.metrics.Timing() {
		start = time.Now()
	}
	m := &st.msg
	if len(m.infoHashes) == 0 {
		f.refuse(c, m, bittorrent.ErrFullScrapeDisabled)
		return
	}
	req, resp := &st.scr, &st.scresp
	req.AddressFamily = c.af
	req.InfoHashes = append(req.InfoHashes[:0], m.infoHashes...)
	req.RemoteAddr = c.addr
	req.Params = c.params
	ctx := context.Background()
	if err := f.logic.HandleScrape(ctx, req, resp); err != nil {
		f.observe(frontend.Scrape, c.af, err, start)
		c.reply(f.failure(bittorrent.ClientText(err), actionScrape, nil))
		return
	}
	buf := f.getBuf()
	*buf = appendScrape((*buf)[:0], resp.Files)
	c.reply(buf)
	f.metrics.ObserveRequest(frontend.Scrape, c.af, nil, start)
	f.logic.AfterScrape(ctx, req, resp)
}

func (f *Frontend) getBuf() *[]byte { return f.bufs.Get().(*[]byte) }

func (f *Frontend) putBuf(b *[]byte) {
	if cap(*b) > maxPooledBuffer {
		return
	}
	*b = (*b)[:0]
	f.bufs.Put(b)
}

// requestPath returns the path as the client sent it.
func requestPath(r *nethttp.Request) string {
	uri := r.RequestURI
	if i := strings.IndexByte(uri, '?'); i >= 0 {
		return uri[:i]
	}
	return uri
}

// writePool lends gorilla/websocket its write buffers while it writes.
type writePool struct{ p sync.Pool }

func (w *writePool) Get() any  { return w.p.Get() }
func (w *writePool) Put(v any) { w.p.Put(v) }
