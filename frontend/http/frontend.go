// Package http is the HTTP(S) tracker frontend: announces (BEP 3, 7, 23,
// 24) and scrapes (BEP 48) over GET requests.
//
// Every answer is HTTP 200 with a bencoded body: a reply, or a dictionary
// whose only key is `failure reason`. That holds for unknown paths, other
// methods, panics in the logic, and also for the requests net/http refuses
// on its own (malformed request lines, oversized headers), whose plain-text
// answers are replaced on the wire; clients show the failure reason to
// their user, and a text/plain error page would only read as a broken
// tracker.
package http

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	nethttp "net/http"
	"net/netip"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

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
	srv     *nethttp.Server

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
	// wrote is set once a reply has been handed to net/http, so that a
	// panic after that point does not append a failure to it.
	wrote bool
}

type scrapeState struct {
	values query.Values
	req    bittorrent.ScrapeRequest
	resp   bittorrent.ScrapeResponse
	buf    []byte
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
	}
	f.metrics.KnownErrors("read_timeout", "header_too_large", "bad_request", "unknown_path", "method_not_allowed")
	if fs, ok := logic.(frontend.FullScraper); ok && cfg.AllowFullScrape {
		f.full = newFullScrapes(fs, cfg)
	}
	f.announces.New = func() any { return new(announceState) }
	f.scrapes.New = func() any { return new(scrapeState) }

	router := httprouter.New()
	// Redirects and automatic OPTIONS answers would write HTML or empty
	// bodies; every answer of a tracker is bencoded.
	router.RedirectTrailingSlash = false
	router.RedirectFixedPath = false
	router.HandleOPTIONS = false
	router.HandleMethodNotAllowed = true
	router.NotFound = nethttp.HandlerFunc(f.serveNotFound)
	router.MethodNotAllowed = nethttp.HandlerFunc(f.serveMethodNotAllowed)
	router.PanicHandler = f.servePanic
	for _, r := range cfg.AnnounceRoutes {
		router.GET(r, f.serveAnnounce)
	}
	for _, r := range cfg.ScrapeRoutes {
		router.GET(r, f.serveScrape)
	}

	f.srv = &nethttp.Server{
		Handler:           router,
		ReadTimeout:       cfg.ReadTimeout,
		ReadHeaderTimeout: cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		// net/http reads up to MaxHeaderBytes plus 4 KiB of slack before
		// refusing a request; subtract the slack so that the configured
		// limit is the one enforced.
		MaxHeaderBytes: max(cfg.MaxHeaderBytes-4096, 1),
		ErrorLog:       newErrorLog(),
		// TLS is terminated by our listener (see listener), and we speak
		// HTTP/1.1 only: HTTP/2 would bypass the failure rewriting.
		TLSNextProto: map[string]func(*nethttp.Server, *tls.Conn, nethttp.Handler){},
	}
	f.srv.SetKeepAlivesEnabled(cfg.EnableKeepAlive)

	tlsCfg, err := LoadTLS(cfg)
	if err != nil {
		return nil, err
	}
	// TCP keep-alive probes would cost four setsockopt calls per accepted
	// connection (a tenth of the tracker's CPU with a connection per
	// request), for nothing: idle_timeout already closes idle connections.
	lc := net.ListenConfig{KeepAlive: -1}
	if cfg.Addr != "" {
		ln, err := lc.Listen(context.Background(), "tcp", cfg.Addr)
		if err != nil {
			return nil, errors.New("http: " + err.Error())
		}
		f.ln = &listener{Listener: ln, f: f}
	}
	if cfg.HTTPSAddr != "" {
		ln, err := lc.Listen(context.Background(), "tcp", cfg.HTTPSAddr)
		if err != nil {
			if f.ln != nil {
				f.ln.Close()
			}
			return nil, errors.New("http: https: " + err.Error())
		}
		f.tlsLn = &listener{Listener: ln, f: f, tls: tlsCfg}
	}
	for _, ln := range []net.Listener{f.ln, f.tlsLn} {
		if ln == nil {
			continue
		}
		f.served.Add(1)
		go func() {
			defer f.served.Done()
			if err := f.srv.Serve(ln); err != nil && !errors.Is(err, nethttp.ErrServerClosed) {
				logrus.WithError(err).WithField("addr", ln.Addr().String()).Error("http: serve")
			}
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

// Stop closes the listeners, waits for requests in flight until ctx is
// done, then closes whatever connections remain.
func (f *Frontend) Stop(ctx context.Context) error {
	err := f.srv.Shutdown(ctx)
	if err != nil {
		err = errors.Join(errors.New("http: shutdown: "+err.Error()), f.srv.Close())
	}
	f.served.Wait()
	return err
}

func (f *Frontend) serveAnnounce(w nethttp.ResponseWriter, r *nethttp.Request, ps httprouter.Params) {
	var start time.Time
	if f.metrics.Timing() {
		start = time.Now()
	}
	st := f.announces.Get().(*announceState)
	st.wrote = false
	defer f.recoverPanic(w, &st.wrote, frontend.Announce)

	src, af, err := f.readQuery(&st.values, r, ps)
	if err == nil {
		st.req.Params = &st.values
		err = f.parser.parseAnnounce(&st.values, src, &st.req)
	}
	if err == nil {
		af = st.req.Peer.AddressFamily()
		if st.resp.Peers == nil {
			st.resp.Peers = make([]bittorrent.Peer, 0, f.maxPeers)
		}
		err = f.logic.HandleAnnounce(r.Context(), &st.req, &st.resp)
	}
	if err != nil {
		st.buf = appendFailure(st.buf[:0], bittorrent.ClientText(err))
		st.wrote = true
		writeReply(w, st.buf)
		f.observe(frontend.Announce, af, err, start)
		f.putAnnounce(st)
		return
	}
	st.buf = appendAnnounce(st.buf[:0], &st.req, &st.resp)
	st.wrote = true
	writeReply(w, st.buf)
	flush(w)
	f.metrics.ObserveRequest(frontend.Announce, af, nil, start)
	// The client has its answer: the swarm update must not be cut short
	// because it hangs up, so the request's context is not passed on.
	f.logic.AfterAnnounce(context.Background(), &st.req, &st.resp)
	f.putAnnounce(st)
}

// readQuery finds the client's address (and so the family its failure is
// counted under) and parses the query and the route parameters into v.
func (f *Frontend) readQuery(v *query.Values, r *nethttp.Request, ps httprouter.Params) (netip.Addr, bittorrent.AddressFamily, error) {
	src, err := f.parser.clientAddr(r.RemoteAddr, r.Header)
	if err != nil {
		return src, bittorrent.IPv4, err
	}
	af := peerFamily(src)
	if err := v.Parse(requestPath(r), r.URL.RawQuery); err != nil {
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

func (f *Frontend) serveScrape(w nethttp.ResponseWriter, r *nethttp.Request, ps httprouter.Params) {
	var start time.Time
	if f.metrics.Timing() {
		start = time.Now()
	}
	st := f.scrapes.Get().(*scrapeState)
	st.wrote = false
	defer f.recoverPanic(w, &st.wrote, frontend.Scrape)

	src, af, err := f.readQuery(&st.values, r, ps)
	if err == nil {
		st.req.Params = &st.values
		err = f.parser.parseScrape(&st.values, src, &st.req)
		if err == bittorrent.ErrFullScrapeDisabled && f.full != nil {
			f.serveFullScrape(w, r, st, src, af, start)
			return
		}
	}
	if err == nil {
		af = st.req.AddressFamily
		st.resp.Files = st.resp.Files[:0]
		err = f.logic.HandleScrape(r.Context(), &st.req, &st.resp)
	}
	if err != nil {
		st.buf = appendFailure(st.buf[:0], bittorrent.ClientText(err))
		st.wrote = true
		writeReply(w, st.buf)
		f.observe(frontend.Scrape, af, err, start)
		f.putScrape(st)
		return
	}
	st.buf = appendScrape(st.buf[:0], &st.resp)
	st.wrote = true
	writeReply(w, st.buf)
	flush(w)
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
func (f *Frontend) recoverPanic(w nethttp.ResponseWriter, wrote *bool, a frontend.Action) {
	v := recover()
	if v == nil {
		return
	}
	if v == nethttp.ErrAbortHandler {
		panic(v)
	}
	logrus.WithFields(logrus.Fields{"action": a.String(), "panic": v, "stack": string(debug.Stack())}).Error("http: panic while serving a request")
	f.metrics.ObserveRequest(a, bittorrent.IPv4, frontend.ErrPanic, time.Now())
	if !*wrote {
		writeReply(w, appendFailure(nil, string(bittorrent.ErrInternal)))
	}
}

// servePanic catches what recoverPanic cannot: a panic in the router itself.
func (f *Frontend) servePanic(w nethttp.ResponseWriter, _ *nethttp.Request, v any) {
	logrus.WithFields(logrus.Fields{"panic": v, "stack": string(debug.Stack())}).Error("http: panic while routing a request")
	f.metrics.ObserveError("panic")
	writeReply(w, appendFailure(nil, string(bittorrent.ErrInternal)))
}

func (f *Frontend) serveNotFound(w nethttp.ResponseWriter, _ *nethttp.Request) {
	f.metrics.ObserveError("unknown_path")
	writeReply(w, failureUnknownPath)
}

func (f *Frontend) serveMethodNotAllowed(w nethttp.ResponseWriter, _ *nethttp.Request) {
	f.metrics.ObserveError("method_not_allowed")
	writeReply(w, failureMethodNotAllowed)
}

var (
	failureUnknownPath      = appendFailure(nil, string(errUnknownPath))
	failureMethodNotAllowed = appendFailure(nil, string(errMethodNotAllowed))
	// contentType is shared by every reply rather than built per request;
	// net/http only reads it.
	contentType = []string{"text/plain"}
)

// writeReply sends body as the whole reply, with its Content-Length, so
// that a flush before the handler returns sends it whole and unchunked.
func writeReply(w nethttp.ResponseWriter, body []byte) {
	h := w.Header()
	h["Content-Type"] = contentType
	h["Content-Length"] = contentLength(len(body))
	w.Write(body) //nolint:errcheck // a client that hung up is not an error of ours
}

// flush puts the reply on the wire before the logic's After step, as
// frontend.TrackerLogic asks: otherwise net/http would only send it once
// the handler returns, after the swarm update and the posthooks.
func flush(w nethttp.ResponseWriter) {
	if fl, ok := w.(nethttp.Flusher); ok {
		fl.Flush()
	}
}

// contentLengths holds the header values of the usual reply lengths, so
// that setting the header allocates nothing: each entry is a one-element
// slice of one shared array, which net/http only reads.
var contentLengths = func() []string {
	v := make([]string, 4096)
	for i := range v {
		v[i] = strconv.Itoa(i)
	}
	return v
}()

func contentLength(n int) []string {
	if n < len(contentLengths) {
		return contentLengths[n : n+1 : n+1]
	}
	return []string{strconv.Itoa(n)}
}

// requestPath returns the path as the client sent it, for Params.RawPath.
func requestPath(r *nethttp.Request) string {
	uri := r.RequestURI
	for i := 0; i < len(uri); i++ {
		if uri[i] == '?' {
			return uri[:i]
		}
	}
	return uri
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
