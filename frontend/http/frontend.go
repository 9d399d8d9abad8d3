// Package http is the HTTP(S) tracker frontend: announces (BEP 3, 7, 23,
// 24) and scrapes (BEP 48) over GET requests, served by a small HTTP/1.1
// server of its own (server.go) rather than net/http's.
//
// Every answer is HTTP 200 with a bencoded body: a reply, or a dictionary
// whose only key is `failure reason`. That holds for unknown paths, other
// methods, panics in the logic, and also for requests that are not valid
// HTTP (malformed request lines, oversized headers): clients show the
// failure reason to their user, and a text/plain error page would only
// read as a broken tracker.
package http

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	nethttp "net/http"
	"net/netip"
	"net/url"
	"runtime/debug"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/julienschmidt/httprouter"
	"github.com/sirupsen/logrus"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/frontend"
	"github.com/chihaya/chihaya/pkg/query"
)

// Client errors of this frontend only; the rest are bittorrent's.
const (
	errUnknownPath      = bittorrent.ClientError("unknown path: this is a BitTorrent tracker")
	errMethodNotAllowed = bittorrent.ClientError("method not allowed: use GET")
)

// Buffers larger than this are not kept in the pools, so that one huge
// reply does not pin its memory for good.
const maxPooledBuffer = 64 << 10

// Frontend serves the HTTP tracker on a plain listener, an HTTPS listener,
// or both.
type Frontend struct {
	logic   frontend.TrackerLogic
	parser  *parser
	metrics *frontend.Metrics
	srv     *server
	// announce and scrape hold the routes of each kind; a path matches at
	// most one route of both (Config.Validate checks them together).
	announce, scrape *httprouter.Router

	ln, tlsLn net.Listener
	served    sync.WaitGroup

	announces sync.Pool // *announceState
	scrapes   sync.Pool // *scrapeState
	maxPeers  int
	// full serves scrapes without info_hash; nil unless allow_full_scrape.
	full *fullScrapes
}

var _ frontend.Frontend = (*Frontend)(nil)

// announceState is everything one announce needs, pooled as one object so
// that a request takes a single pool round trip.
type announceState struct {
	values query.Values
	req    bittorrent.AnnounceRequest
	resp   bittorrent.AnnounceResponse
	buf    []byte
	text   textArena
	// wrote is set once a reply has been written, so that a panic after
	// that point does not append a failure to it.
	wrote bool
}

type scrapeState struct {
	values query.Values
	req    bittorrent.ScrapeRequest
	resp   bittorrent.ScrapeResponse
	buf    []byte
	text   textArena
	wrote  bool
}

// NewFrontend binds the configured listeners and serves them in the
// background. cfg must have had WithDefaults and Validate applied. An
// error binding one listener (an address in use, an unreadable
// certificate) is returned and nothing is left running.
func NewFrontend(logic frontend.TrackerLogic, cfg Config) (*Frontend, error) {
	p, err := newParser(cfg)
	if err != nil {
		return nil, err
	}
	f := &Frontend{
		logic:    logic,
		parser:   p,
		metrics:  frontend.NewMetrics("http", cfg.EnableRequestTiming, frontend.Announce, frontend.Scrape),
		maxPeers: cfg.MaxNumWant,
		announce: httprouter.New(),
		scrape:   httprouter.New(),
	}
	f.metrics.KnownErrors("read_timeout", "header_too_large", "bad_request", "unknown_path", "method_not_allowed", "accept_error")
	if fs, ok := logic.(frontend.FullScraper); ok && cfg.AllowFullScrape {
		f.full = newFullScrapes(fs, cfg)
	}
	f.announces.New = func() any { return new(announceState) }
	f.scrapes.New = func() any { return new(scrapeState) }
	// The routers are only looked up (Lookup), never served from, so
	// their handles are placeholders.
	nop := func(nethttp.ResponseWriter, *nethttp.Request, httprouter.Params) {}
	for _, r := range cfg.AnnounceRoutes {
		f.announce.GET(r, nop)
	}
	for _, r := range cfg.ScrapeRoutes {
		f.scrape.GET(r, nop)
	}
	f.srv = newServer(f, cfg)

	tlsCfg, err := LoadTLS(cfg)
	if err != nil {
		return nil, err
	}
	// TCP keep-alive probes would cost four setsockopt calls per accepted
	// connection (a tenth of the tracker's CPU with a connection per
	// request), for nothing: idle_timeout already closes idle connections.
	lc := net.ListenConfig{KeepAlive: -1}
	if cfg.Addr != "" {
		plain := lc
		// The kernel hands over a connection once its request is
		// there: serving it is then one read, no wait (deferAccept).
		plain.Control = deferAccept
		ln, err := plain.Listen(context.Background(), "tcp", cfg.Addr)
		if err != nil {
			return nil, errors.New("http: " + err.Error())
		}
		f.ln = ln
	}
	if cfg.HTTPSAddr != "" {
		ln, err := lc.Listen(context.Background(), "tcp", cfg.HTTPSAddr)
		if err != nil {
			if f.ln != nil {
				f.ln.Close()
			}
			return nil, errors.New("http: https: " + err.Error())
		}
		f.tlsLn = ln
	}
	f.srv.idle = newIdlePoller(f.srv)
	for _, l := range []struct {
		ln  net.Listener
		tls *tls.Config
	}{{f.ln, nil}, {f.tlsLn, tlsCfg}} {
		if l.ln == nil || l.tls == nil && f.srv.serveRaw(l.ln) {
			continue
		}
		f.served.Add(1)
		go func() {
			defer f.served.Done()
			f.srv.serve(l.ln, l.tls)
		}()
	}
	return f, nil
}

// Addr returns the address of the plain HTTP listener, or nil.
func (f *Frontend) Addr() net.Addr {
	if f.ln == nil {
		return nil
	}
	return f.ln.Addr()
}

// TLSAddr returns the address of the HTTPS listener, or nil.
func (f *Frontend) TLSAddr() net.Addr {
	if f.tlsLn == nil {
		return nil
	}
	return f.tlsLn.Addr()
}

// Stop closes the listeners and the idle connections, waits for requests
// in flight until ctx is done, then closes whatever connections remain.
func (f *Frontend) Stop(ctx context.Context) error {
	f.srv.closeListeners()
	for _, ln := range []net.Listener{f.ln, f.tlsLn} {
		if ln != nil {
			ln.Close()
		}
	}
	f.served.Wait()
	if err := f.srv.shutdown(ctx); err != nil {
		return errors.New("http: shutdown: " + err.Error())
	}
	return nil
}

// dispatch answers one request: it routes it by method and path to the
// announce or scrape handler, or answers it with a failure.
func (f *Frontend) dispatch(c *conn, r *request) {
	target := r.target
	if len(target) == 0 || target[0] != '/' {
		var ok bool
		if target, ok = originForm(target); !ok {
			f.metrics.ObserveError("bad_request")
			// Set before the reply, whose head announces the close.
			r.close = true
			c.replyStatic(r, failureBadRequestBody)
			return
		}
		// The handlers read the path and query from r.target.
		r.target = target
	}
	rawPath := target
	if i := bytes.IndexByte(target, '?'); i >= 0 {
		rawPath = target[:i]
	}
	// Routes match the unescaped path, as net/http's URL.Path.
	path := unsafe.String(unsafe.SliceData(rawPath), len(rawPath))
	if bytes.IndexByte(rawPath, '%') >= 0 {
		p, err := url.PathUnescape(path)
		if err != nil {
			f.metrics.ObserveError("bad_request")
			// Set before the reply, whose head announces the close.
			r.close = true
			c.replyStatic(r, failureBadRequestBody)
			return
		}
		path = p
	}
	get := string(r.method) == "GET"
	for i, router := range []*httprouter.Router{f.announce, f.scrape} {
		h, ps, _ := router.Lookup("GET", path)
		if h == nil {
			continue
		}
		if !get {
			f.metrics.ObserveError("method_not_allowed")
			c.replyStatic(r, failureMethodNotAllowed)
			return
		}
		// Hooks may keep route parameters past the request (eventstream
		// queues them); path may point into the connection's buffer.
		for j := range ps {
			ps[j].Value = strings.Clone(ps[j].Value)
		}
		if i == 0 {
			f.serveAnnounce(c, r, len(rawPath), ps)
		} else {
			f.serveScrape(c, r, len(rawPath), ps)
		}
		return
	}
	f.metrics.ObserveError("unknown_path")
	c.replyStatic(r, failureUnknownPath)
}

// originForm returns the path and query of an absolute request-target
// ("http://host/announce?…", which a client talking to a proxy sends), or
// "/" when it has no path. Other forms are refused.
func originForm(t []byte) ([]byte, bool) {
	if string(t) == "*" {
		return []byte("*"), true
	}
	rest, ok := cutFold(t, "http://")
	if !ok {
		rest, ok = cutFold(t, "https://")
	}
	if !ok {
		return nil, false
	}
	if i := bytes.IndexAny(rest, "/?"); i >= 0 && rest[i] == '/' {
		return rest[i:], true
	}
	return []byte("/"), true
}

// cutFold cuts the lower-case prefix from t, ignoring case (a URL's
// scheme is case-insensitive).
func cutFold(t []byte, prefix string) ([]byte, bool) {
	if len(t) < len(prefix) || !equalFold(t[:len(prefix)], prefix) {
		return t, false
	}
	return t[len(prefix):], true
}

func (f *Frontend) serveAnnounce(c *conn, r *request, pathLen int, ps httprouter.Params) {
	var start time.Time
	if f.metrics.Timing() {
		start = time.Now()
	}
	st := f.announces.Get().(*announceState)
	st.wrote = false
	defer f.recoverPanic(c, r, &st.wrote, frontend.Announce)

	src, af, err := f.readQuery(&st.values, &st.text, c, r, pathLen, ps)
	if err == nil {
		st.req.Params = &st.values
		err = f.parser.parseAnnounce(&st.values, src, &st.req)
	}
	if err == nil {
		af = st.req.Peer.AddressFamily()
		if st.resp.Peers == nil {
			st.resp.Peers = make([]bittorrent.Peer, 0, f.maxPeers)
		}
		err = f.logic.HandleAnnounce(c.s.ctx, &st.req, &st.resp)
	}
	if err != nil {
		st.buf = appendFailure(replyBuf(st.buf), bittorrent.ClientText(err))
		st.wrote = true
		// Counted first: a client that reads the failure finds it
		// counted.
		f.observe(frontend.Announce, af, err, start)
		c.reply(r, st.buf)
		f.putAnnounce(st)
		return
	}
	st.buf = appendAnnounce(replyBuf(st.buf), &st.req, &st.resp)
	st.wrote = true
	c.reply(r, st.buf)
	f.metrics.ObserveRequest(frontend.Announce, af, nil, start)
	// The client has its answer: the swarm update must not be cut short
	// because it hangs up, so the request's context is not passed on.
	f.logic.AfterAnnounce(context.Background(), &st.req, &st.resp)
	f.putAnnounce(st)
}

// readQuery finds the client's address (and so the family its failure is
// counted under) and parses the query and the route parameters into v.
// The request's path and query are copied into text first: they outlive
// the connection's buffer in v.
func (f *Frontend) readQuery(v *query.Values, text *textArena, c *conn, r *request, pathLen int, ps httprouter.Params) (netip.Addr, bittorrent.AddressFamily, error) {
	src, err := f.parser.clientAddr(c.remote, r.realIP, r.haveRealIP)
	if err != nil {
		return src, bittorrent.IPv4, err
	}
	af := peerFamily(src)
	target := text.String(r.target)
	path, rawQuery := target[:pathLen], ""
	if pathLen < len(target) {
		rawQuery = target[pathLen+1:]
	}
	if err := v.Parse(path, rawQuery); err != nil {
		return src, af, err
	}
	for _, p := range ps {
		v.SetRouteParam(p.Key, p.Value)
	}
	return src, af, nil
}

func (f *Frontend) putAnnounce(st *announceState) {
	st.values.Reset()
	st.req = bittorrent.AnnounceRequest{}
	st.resp = bittorrent.AnnounceResponse{Peers: st.resp.Peers[:0]}
	if cap(st.buf) > maxPooledBuffer {
		st.buf = nil
	}
	f.announces.Put(st)
}

func (f *Frontend) serveScrape(c *conn, r *request, pathLen int, ps httprouter.Params) {
	var start time.Time
	if f.metrics.Timing() {
		start = time.Now()
	}
	st := f.scrapes.Get().(*scrapeState)
	st.wrote = false
	defer f.recoverPanic(c, r, &st.wrote, frontend.Scrape)

	src, af, err := f.readQuery(&st.values, &st.text, c, r, pathLen, ps)
	if err == nil {
		st.req.Params = &st.values
		err = f.parser.parseScrape(&st.values, src, &st.req)
		if err == bittorrent.ErrFullScrapeDisabled && f.full != nil {
			f.serveFullScrape(c, r, st, src, af, start)
			return
		}
	}
	if err == nil {
		af = st.req.AddressFamily
		st.resp.Files = st.resp.Files[:0]
		err = f.logic.HandleScrape(c.s.ctx, &st.req, &st.resp)
	}
	if err != nil {
		st.buf = appendFailure(replyBuf(st.buf), bittorrent.ClientText(err))
		st.wrote = true
		// Counted first: a client that reads the failure finds it
		// counted.
		f.observe(frontend.Scrape, af, err, start)
		c.reply(r, st.buf)
		f.putScrape(st)
		return
	}
	st.buf = appendScrape(replyBuf(st.buf), &st.resp)
	st.wrote = true
	c.reply(r, st.buf)
	f.metrics.ObserveRequest(frontend.Scrape, af, nil, start)
	f.logic.AfterScrape(context.Background(), &st.req, &st.resp)
	f.putScrape(st)
}

func (f *Frontend) putScrape(st *scrapeState) {
	st.values.Reset()
	st.req = bittorrent.ScrapeRequest{InfoHashes: st.req.InfoHashes[:0]}
	st.resp = bittorrent.ScrapeResponse{Files: st.resp.Files[:0]}
	if cap(st.buf) > maxPooledBuffer {
		st.buf = nil
	}
	f.scrapes.Put(st)
}

// observe counts a failed request, and logs it when it is internal: the
// client only ever sees the generic text, so the log is where the cause is.
func (f *Frontend) observe(a frontend.Action, af bittorrent.AddressFamily, err error, start time.Time) {
	f.metrics.ObserveRequest(a, af, err, start)
	var ce bittorrent.ClientError
	if !errors.As(err, &ce) {
		logrus.WithError(err).WithField("action", a.String()).Error("http: internal error")
	}
}

// recoverPanic is deferred by the handlers. It answers ErrInternal unless
// a reply was already written, counts the panic, and logs it with its
// stack. The pooled state is not returned: it may be half-updated.
func (f *Frontend) recoverPanic(c *conn, r *request, wrote *bool, a frontend.Action) {
	v := recover()
	if v == nil {
		return
	}
	logrus.WithFields(logrus.Fields{"action": a.String(), "panic": v, "stack": string(debug.Stack())}).Error("http: panic while serving a request")
	f.metrics.ObserveRequest(a, bittorrent.IPv4, frontend.ErrPanic, time.Now())
	if !*wrote {
		c.replyStatic(r, failureInternal)
	}
}

// servePanic logs and counts a panic outside the handlers (in the server
// or the router).
func (f *Frontend) servePanic(v any) {
	logrus.WithFields(logrus.Fields{"panic": v, "stack": string(debug.Stack())}).Error("http: panic while routing a request")
	f.metrics.ObserveError("panic")
}

var (
	failureUnknownPath      = appendFailure(nil, string(errUnknownPath))
	failureMethodNotAllowed = appendFailure(nil, string(errMethodNotAllowed))
	failureInternal         = appendFailure(nil, string(bittorrent.ErrInternal))
	failureBadRequestBody   = appendFailure(nil, string(bittorrent.ErrMalformedRequest))
)

// textArena copies request text into blocks that are never reused, so
// that the strings the logic sees stay valid as long as anything holds
// them, at the cost of one allocation per block rather than one per
// request. A retained string keeps its whole block alive.
type textArena struct{ b []byte }

const textBlock = 16 << 10

// String returns a copy of p.
func (a *textArena) String(p []byte) string {
	if len(p) == 0 {
		return ""
	}
	if len(p) > cap(a.b)-len(a.b) {
		a.b = make([]byte, 0, max(textBlock, len(p)))
	}
	n := len(a.b)
	a.b = append(a.b, p...)
	return unsafe.String(&a.b[n], len(p))
}

// peerFamily is the family a client address belongs to.
func peerFamily(a netip.Addr) bittorrent.AddressFamily {
	if a.Is6() {
		return bittorrent.IPv6
	}
	return bittorrent.IPv4
}

// LoadTLS returns the TLS configuration of the HTTPS listener, with its key
// pair read from tls_cert_path and tls_key_path, or nil without
// https_addr. `chihaya validate` calls it too, so that a missing or bad
// key pair is found before the daemon starts.
func LoadTLS(cfg Config) (*tls.Config, error) {
	if cfg.HTTPSAddr == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCertPath, cfg.TLSKeyPath)
	if err != nil {
		return nil, errors.New("http: load TLS key pair: " + err.Error())
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"http/1.1"},
	}, nil
}
