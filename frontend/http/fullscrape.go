package http

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
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
// logic walks the store: never built whole in memory. It goes out chunked
// (HTTP/1.0: delimited by the close), gzipped when the client accepts it.
func (f *Frontend) serveFullScrape(c *conn, r *request, st *scrapeState, src netip.Addr, af bittorrent.AddressFamily, start time.Time) {
	st.req.InfoHashes = st.req.InfoHashes[:0]
	st.req.AddressFamily = af
	st.req.RemoteAddr = src
	st.resp.Files = st.resp.Files[:0]
	if err := f.logic.HandleScrape(c.s.ctx, &st.req, &st.resp); err != nil {
		f.refuse(c, r, st, frontend.Scrape, af, err, start, appendFailure(replyBuf(st.buf), bittorrent.ClientText(err)))
		return
	}
	fs := f.full
	select {
	case fs.running <- struct{}{}:
	default:
		f.refuse(c, r, st, frontend.Scrape, af, bittorrent.ErrFullScrapeBusy, start, appendRetry(replyBuf(st.buf), bittorrent.ErrFullScrapeBusy, fs.every))
		return
	}
	defer func() { <-fs.running }()
	if wait, ok := fs.admit(src, time.Now()); !ok {
		f.refuse(c, r, st, frontend.Scrape, af, bittorrent.ErrFullScrapeTooSoon, start, appendRetry(replyBuf(st.buf), bittorrent.ErrFullScrapeTooSoon, wait))
		return
	}

	st.wrote = true
	if r.http10 {
		r.close = true
	}
	head := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n")
	// The reply's form follows Accept-Encoding whichever form this one is,
	// so a cache in front must key on it.
	head = append(head, "Vary: Accept-Encoding\r\n"...)
	if r.gzip {
		head = append(head, "Content-Encoding: gzip\r\n"...)
	}
	if !r.http10 {
		head = append(head, "Transfer-Encoding: chunked\r\n"...)
	}
	if r.close {
		head = append(head, "Connection: close\r\n"...)
	}
	head = append(head, "\r\n"...)
	cw := &chunkWriter{c: c, raw: r.http10}
	err := c.write(head)
	var out io.Writer = cw
	var gz *gzip.Writer
	if r.gzip {
		// The fastest level: a full scrape is mostly random info hashes,
		// which no level compresses, and the counts compress well at any.
		gz, _ = gzip.NewWriterLevel(cw, gzip.BestSpeed)
		out = gz
	}
	buf := make([]byte, 0, fullScrapeChunk+256)
	buf = append(buf, "d5:filesd"...)
	var prev bittorrent.InfoHash
	first := true
	write := func() error {
		_, err := out.Write(buf)
		buf = buf[:0]
		return err
	}
	if err == nil {
		err = fs.logic.FullScrape(c.s.ctx, func(batch []bittorrent.Scrape) error {
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
	}
	if err == nil {
		buf = append(buf, "ee"...)
		err = write()
	}
	if err == nil && gz != nil {
		err = gz.Close()
	}
	if err == nil {
		err = cw.end()
	}
	if err != nil {
		// The status line is out: the only way left to tell the client
		// that the reply is incomplete is to cut the connection, rather
		// than end the chunked body as if it were whole.
		if !isClientGone(err) {
			logrus.WithError(err).Error("http: full scrape failed")
		}
		f.metrics.ObserveRequest(frontend.Scrape, af, err, start)
		if c.werr == nil {
			c.werr = errAborted
		}
		f.putScrape(st)
		return
	}
	f.metrics.ObserveRequest(frontend.Scrape, af, nil, start)
	f.logic.AfterScrape(context.Background(), &st.req, &st.resp)
	f.putScrape(st)
}

// chunkWriter writes a body in HTTP/1.1 chunks, each write a chunk that
// gets the whole write timeout (the reply as a whole may take much
// longer), or as it comes when raw (HTTP/1.0, delimited by the close).
type chunkWriter struct {
	c   *conn
	raw bool
	b   []byte
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if w.raw {
		return len(p), w.c.write(p)
	}
	w.b = strconv.AppendInt(w.b[:0], int64(len(p)), 16)
	w.b = append(w.b, "\r\n"...)
	w.b = append(w.b, p...)
	w.b = append(w.b, "\r\n"...)
	return len(p), w.c.write(w.b)
}

// end writes the last chunk.
func (w *chunkWriter) end() error {
	if w.raw {
		return nil
	}
	return w.c.write([]byte("0\r\n\r\n"))
}

var errFullScrapeOrder = errors.New("http: full scrape: info hashes out of order")

// isClientGone reports whether err is a write to a client that left or
// stopped reading, which is not an error of ours.
func isClientGone(err error) bool {
	s := err.Error()
	return strings.Contains(s, "broken pipe") || strings.Contains(s, "connection reset") || strings.Contains(s, "i/o timeout") || err == context.Canceled
}

// refuse writes a failure reply and counts the request.
func (f *Frontend) refuse(c *conn, r *request, st *scrapeState, a frontend.Action, af bittorrent.AddressFamily, err error, start time.Time, body []byte) {
	st.buf = body
	st.wrote = true
	// Counted first: a client that reads the refusal finds it counted.
	f.observe(a, af, err, start)
	c.reply(r, st.buf)
	f.putScrape(st)
}
