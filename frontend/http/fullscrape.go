package http

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	nethttp "net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/frontend"
	"github.com/chihaya/chihaya/frontend/http/bencode"
)

// Limits of the full scrape, which costs a walk of the whole store and
// tens of megabytes on the wire for a million swarms.
const (
	// maxFullScrapes is how many full scrapes are streamed at once; more
	// are refused as busy.
	maxFullScrapes = 2
	// maxFullScrapeClients bounds the addresses remembered for the
	// per-address interval (about 64 bytes each). When it is reached and
	// none has expired, new addresses are refused until some do.
	maxFullScrapeClients = 1 << 16
	// fullScrapeChunk is how much of the reply is buffered before it is
	// written out.
	fullScrapeChunk = 32 << 10
)

// fullScrapes admits and streams full scrapes.
type fullScrapes struct {
	logic        frontend.FullScraper
	every        time.Duration
	writeTimeout time.Duration
	running      chan struct{}

	mu   sync.Mutex
	last map[netip.Addr]time.Time
}

func newFullScrapes(logic frontend.FullScraper, cfg Config) *fullScrapes {
	return &fullScrapes{
		logic:        logic,
		every:        cfg.FullScrapeInterval,
		writeTimeout: cfg.WriteTimeout,
		running:      make(chan struct{}, maxFullScrapes),
		last:         make(map[netip.Addr]time.Time),
	}
}

// clientKey is the address a client's full scrapes are counted under:
// its IPv6 /64, since a host chooses freely among the addresses of its
// /64.
func clientKey(a netip.Addr) netip.Addr {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// admit records a full scrape from a at now, or returns how long a must
// wait for the next one.
func (fs *fullScrapes) admit(a netip.Addr, now time.Time) (wait time.Duration, ok bool) {
	k := clientKey(a)
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if t, seen := fs.last[k]; seen && now.Sub(t) < fs.every {
		return fs.every - now.Sub(t), false
	}
	if len(fs.last) >= maxFullScrapeClients {
		for c, t := range fs.last {
			if now.Sub(t) >= fs.every {
				delete(fs.last, c)
			}
		}
		if len(fs.last) >= maxFullScrapeClients {
			return fs.every, false
		}
	}
	fs.last[k] = now
	return 0, true
}

// appendRetry appends the failure of a full scrape refused for now (too
// soon, or too many at once): the failure reason says why and when to come
// back, and BEP 31's `retry in` gives the minutes.
func appendRetry(dst []byte, why bittorrent.ClientError, wait time.Duration) []byte {
	secs := int64((wait + time.Second - 1) / time.Second)
	d := bencode.BeginDict(dst)
	d.String("failure reason", string(why)+"; try again in "+strconv.FormatInt(secs, 10)+"s")
	d.Uint("retry in", uint64((secs+59)/60))
	return d.End()
}

// serveFullScrape answers a scrape without info_hash. The prehooks see it
// first (with no info hashes), so that a hook that guards scrapes (jwt)
// guards the full scrape too; then the address's interval and the number
// running are checked, and the reply is streamed batch by batch as the
// logic walks the store: never built whole in memory.
func (f *Frontend) serveFullScrape(w nethttp.ResponseWriter, r *nethttp.Request, st *scrapeState, src netip.Addr, af bittorrent.AddressFamily, start time.Time) {
	st.req.InfoHashes = st.req.InfoHashes[:0]
	st.req.AddressFamily = af
	st.req.RemoteAddr = src
	st.resp.Files = st.resp.Files[:0]
	if err := f.logic.HandleScrape(r.Context(), &st.req, &st.resp); err != nil {
		f.refuse(w, st, frontend.Scrape, af, err, start, appendFailure(st.buf[:0], bittorrent.ClientText(err)))
		return
	}
	fs := f.full
	select {
	case fs.running <- struct{}{}:
	default:
		f.refuse(w, st, frontend.Scrape, af, bittorrent.ErrFullScrapeBusy, start, appendRetry(st.buf[:0], bittorrent.ErrFullScrapeBusy, fs.every))
		return
	}
	defer func() { <-fs.running }()
	if wait, ok := fs.admit(src, time.Now()); !ok {
		f.refuse(w, st, frontend.Scrape, af, bittorrent.ErrFullScrapeTooSoon, start, appendRetry(st.buf[:0], bittorrent.ErrFullScrapeTooSoon, wait))
		return
	}

	st.wrote = true
	h := w.Header()
	h["Content-Type"] = contentType
	// The reply's form follows Accept-Encoding whichever form this one is,
	// so a cache in front must key on it.
	h.Set("Vary", "Accept-Encoding")
	var out io.Writer = w
	var gz *gzip.Writer
	if acceptsGzip(r.Header) {
		h.Set("Content-Encoding", "gzip")
		// The fastest level: a full scrape is mostly random info hashes,
		// which no level compresses, and the counts compress well at any.
		gz, _ = gzip.NewWriterLevel(w, gzip.BestSpeed)
		out = gz
	}
	rc := nethttp.NewResponseController(w)
	buf := make([]byte, 0, fullScrapeChunk+256)
	buf = append(buf, "d5:filesd"...)
	var prev bittorrent.InfoHash
	first := true
	write := func() error {
		// Each chunk gets the whole write timeout: the reply as a whole
		// may take much longer than one.
		_ = rc.SetWriteDeadline(time.Now().Add(fs.writeTimeout))
		_, err := out.Write(buf)
		buf = buf[:0]
		return err
	}
	err := fs.logic.FullScrape(r.Context(), func(batch []bittorrent.Scrape) error {
		for i := range batch {
			s := &batch[i]
			if !first && bytes.Compare(s.InfoHash[:], prev[:]) <= 0 {
				// Unsorted keys would make a reply clients reject.
				return errFullScrapeOrder
			}
			first, prev = false, s.InfoHash
			buf = bencode.AppendBytes(buf, s.InfoHash[:])
			d := bencode.BeginDict(buf)
			d.Uint("complete", uint64(s.Complete))
			d.Uint("downloaded", uint64(s.Downloaded))
			d.Uint("incomplete", uint64(s.Incomplete))
			buf = d.End()
			if len(buf) >= fullScrapeChunk {
				if err := write(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err == nil {
		buf = append(buf, "ee"...)
		err = write()
	}
	if err == nil && gz != nil {
		_ = rc.SetWriteDeadline(time.Now().Add(fs.writeTimeout))
		err = gz.Close()
	}
	if err != nil {
		// The status line is out: the only way left to tell the client
		// that the reply is incomplete is to cut the connection, rather
		// than end the chunked body as if it were whole.
		if !isClientGone(err) {
			logrus.WithError(err).Error("http: full scrape failed")
		}
		f.metrics.ObserveRequest(frontend.Scrape, af, err, start)
		panic(nethttp.ErrAbortHandler)
	}
	f.metrics.ObserveRequest(frontend.Scrape, af, nil, start)
	f.logic.AfterScrape(context.Background(), &st.req, &st.resp)
	f.putScrape(st)
}

var errFullScrapeOrder = errors.New("http: full scrape: info hashes out of order")

// isClientGone reports whether err is a write to a client that left or
// stopped reading, which is not an error of ours.
func isClientGone(err error) bool {
	s := err.Error()
	return strings.Contains(s, "broken pipe") || strings.Contains(s, "connection reset") || strings.Contains(s, "i/o timeout") || err == context.Canceled
}

// refuse writes a failure reply and counts the request.
func (f *Frontend) refuse(w nethttp.ResponseWriter, st *scrapeState, a frontend.Action, af bittorrent.AddressFamily, err error, start time.Time, body []byte) {
	st.buf = body
	st.wrote = true
	writeReply(w, st.buf)
	f.observe(a, af, err, start)
	f.putScrape(st)
}

// acceptsGzip reports whether the request's Accept-Encoding allows gzip
// (and does not refuse it with q=0).
func acceptsGzip(h nethttp.Header) bool {
	for _, v := range h.Values("Accept-Encoding") {
		for _, part := range strings.Split(v, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if !strings.EqualFold(strings.TrimSpace(name), "gzip") && strings.TrimSpace(name) != "*" {
				continue
			}
			q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}
