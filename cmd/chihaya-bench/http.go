package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"time"
)

// httpWorker drives one HTTP/1.1 connection, one request at a time (no
// pipelining, as clients do). With --new-conn it opens a connection per
// request; otherwise it keeps the connection alive, and opens a new one
// only when the tracker closes it (opentracker closes every connection).
type httpWorker struct {
	cfg *runConfig
	wl  *Workload
	pk  *Picker
	workerBase
	dialer net.Dialer

	conn   net.Conn
	reused bool // the connection has already carried a request
	// serverCloses is set once the tracker closed a kept-alive connection
	// without saying so (opentracker): from then on each connection is
	// closed after its reply instead of failing one request to find out.
	serverCloses bool
	req          []byte
	buf          []byte
	ann          Announce
	host         []byte
	budget       uint64
}

func runHTTP(cfg *runConfig, wl *Workload) (Result, error) {
	workers := make([]*httpWorker, cfg.Sockets)
	host := []byte(cfg.Target.String())
	bufSize := 64 << 10
	if cfg.Mode == modeHTTPIdle {
		// Thousands of connections, one small reply each.
		bufSize = 16 << 10
	}
	for i := range workers {
		w := &httpWorker{
			cfg: cfg, wl: wl, pk: wl.NewPicker(i), host: host,
			req: make([]byte, 0, 1024), buf: make([]byte, bufSize),
			dialer: net.Dialer{Timeout: cfg.Timeout},
		}
		w.budget = cfg.budget(i)
		workers[i] = w
	}
	m := startCPU()
	total := runAll(workers, m.start)
	return newResult(cfg, &total, m), nil
}

func (w *httpWorker) run() {
	defer w.closeConn()
	if w.cfg.Mode == modeHTTPIdle {
		// One announce, then the connection is held open, idle.
		w.budget = 1
		defer func() { time.Sleep(time.Until(w.start.Add(w.cfg.Duration))) }()
	}
	for w.budget > 0 && time.Since(w.start) < w.cfg.Duration {
		w.budget--
		w.buildRequest()
		w.do(true)
	}
}

func (w *httpWorker) closeConn() {
	if w.conn != nil {
		w.conn.Close()
		w.conn = nil
	}
}

// do sends the request in w.req and reads its reply. A keep-alive
// connection the tracker closed while idle fails before any byte of the
// reply; then the request is sent once more on a new connection, as
// clients do, and no error is counted.
func (w *httpWorker) do(mayRetry bool) {
	if w.conn == nil {
		c, err := w.dialer.Dial("tcp", w.cfg.Target.String())
		if err != nil {
			w.st.errs[errDial]++
			// Do not spin: a refused dial returns at once.
			time.Sleep(time.Millisecond)
			return
		}
		w.conn, w.reused = c, false
		w.st.connects++
	}
	sentAt := time.Now()
	_ = w.conn.SetDeadline(sentAt.Add(w.cfg.Timeout))
	w.st.sent++
	if _, err := w.conn.Write(w.req); err != nil {
		reused := w.reused
		w.closeConn()
		if reused && mayRetry {
			w.serverCloses = true
			w.do(false)
			return
		}
		w.st.errs[errSend]++
		return
	}
	kind, keep, got := w.readReply()
	if (kind == errClosed || kind == errRecv) && got == 0 && w.reused && mayRetry {
		w.serverCloses = true
		w.closeConn()
		w.do(false)
		return
	}
	w.reused = true
	if kind >= 0 {
		w.st.errs[kind]++
		keep = false
	} else {
		w.st.responses++
		w.st.hist.Record(time.Since(sentAt))
	}
	if !keep || w.cfg.NewConn || w.serverCloses {
		w.closeConn()
	}
}

// readReply reads one HTTP response into w.buf and checks it. It returns
// the error kind (-1 for success), whether the connection may carry
// another request, and how many bytes arrived.
func (w *httpWorker) readReply() (kind errKind, keep bool, got int) {
	n := 0
	hdrEnd := -1
	for hdrEnd < 0 {
		if n == len(w.buf) {
			return errBadReply, false, n
		}
		m, err := w.conn.Read(w.buf[n:])
		n += m
		if m > 0 {
			hdrEnd = bytes.Index(w.buf[:n], crlfcrlf)
		}
		if hdrEnd < 0 && err != nil {
			return readErrKind(err), false, n
		}
	}
	hdr := w.buf[:hdrEnd]
	bodyStart := hdrEnd + 4

	status, http11, ok := parseStatusLine(hdr)
	if !ok {
		return errBadReply, false, n
	}
	keep = http11
	contentLength, chunked := -1, false
	for line := range bytes.SplitSeq(hdr, crlf) {
		name, value, found := bytes.Cut(line, colon)
		if !found {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, hdrContentLength):
			v, err := strconv.Atoi(string(value)) // no allocation: the conversion does not escape
			if err != nil || v < 0 {
				return errBadReply, false, n
			}
			contentLength = v
		case bytes.EqualFold(name, hdrConnection):
			if bytes.EqualFold(value, tokClose) {
				keep = false
			} else if bytes.EqualFold(value, tokKeepAlive) {
				keep = true
			}
		case bytes.EqualFold(name, hdrTransferEncoding):
			chunked = bytes.EqualFold(value, tokChunked)
		}
	}

	var body []byte
	switch {
	case chunked:
		var k errKind
		body, n, k = w.readChunked(bodyStart, n)
		if k >= 0 {
			return k, false, n
		}
	case contentLength >= 0:
		end := bodyStart + contentLength
		if end > len(w.buf) {
			return errBadReply, false, n
		}
		for n < end {
			m, err := w.conn.Read(w.buf[n:end])
			n += m
			if n < end && err != nil {
				return readErrKind(err), false, n
			}
		}
		body = w.buf[bodyStart:end]
	default:
		// Delimited by the end of the connection.
		keep = false
		for {
			if n == len(w.buf) {
				return errBadReply, false, n
			}
			m, err := w.conn.Read(w.buf[n:])
			n += m
			if err == io.EOF {
				break
			}
			if err != nil {
				return readErrKind(err), false, n
			}
		}
		body = w.buf[bodyStart:n]
	}
	if status != 200 {
		return errHTTPStatus, keep, n
	}
	if len(body) == 0 || body[0] != 'd' {
		return errBadReply, keep, n
	}
	if bytes.Contains(body, failureReason) {
		return errTracker, keep, n
	}
	want := keyInterval
	if w.cfg.Mode == modeHTTPScrape {
		want = keyFiles
	}
	if !bytes.Contains(body, want) {
		return errBadReply, keep, n
	}
	return -1, keep, n
}

// readChunked decodes a chunked body in place, from w.buf[start:n], reading
// more as needed.
func (w *httpWorker) readChunked(start, n int) (body []byte, got int, kind errKind) {
	out := start // decoded bytes are moved down to w.buf[start:out]
	pos := start
	for {
		// Make sure a whole size line is there.
		var line int
		for {
			line = bytes.Index(w.buf[pos:n], crlf)
			if line >= 0 {
				break
			}
			if n == len(w.buf) {
				return nil, n, errBadReply
			}
			m, err := w.conn.Read(w.buf[n:])
			n += m
			if err != nil && m == 0 {
				return nil, n, readErrKind(err)
			}
		}
		sizeHex, _, _ := bytes.Cut(w.buf[pos:pos+line], semicolon)
		size, err := strconv.ParseUint(string(bytes.TrimSpace(sizeHex)), 16, 31)
		if err != nil {
			return nil, n, errBadReply
		}
		pos += line + 2
		need := pos + int(size) + 2 // data and its CRLF
		if need > len(w.buf) {
			return nil, n, errBadReply
		}
		for n < need {
			m, err := w.conn.Read(w.buf[n:])
			n += m
			if n < need && err != nil && m == 0 {
				return nil, n, readErrKind(err)
			}
		}
		if size == 0 {
			// No trailers are expected from a tracker.
			return w.buf[start:out], n, -1
		}
		out += copy(w.buf[out:], w.buf[pos:pos+int(size)])
		pos = need
	}
}

func readErrKind(err error) errKind {
	var ne net.Error
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return errTimeout
	case errors.Is(err, io.EOF):
		return errClosed
	}
	return errRecv
}

var (
	crlf                = []byte("\r\n")
	crlfcrlf            = []byte("\r\n\r\n")
	colon               = []byte(":")
	semicolon           = []byte(";")
	hdrContentLength    = []byte("Content-Length")
	hdrConnection       = []byte("Connection")
	hdrTransferEncoding = []byte("Transfer-Encoding")
	tokClose            = []byte("close")
	tokKeepAlive        = []byte("keep-alive")
	tokChunked          = []byte("chunked")
	failureReason       = []byte("14:failure reason")
	keyInterval         = []byte("8:interval")
	keyFiles            = []byte("5:files")
)

// parseStatusLine reads "HTTP/1.x NNN reason".
func parseStatusLine(hdr []byte) (status int, http11, ok bool) {
	line, _, _ := bytes.Cut(hdr, crlf)
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, false, false
	}
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return 0, false, false
		}
		status = status*10 + int(c-'0')
	}
	return status, line[7] == '1', true
}

// buildRequest writes the next request into w.req.
func (w *httpWorker) buildRequest() {
	b := append(w.req[:0], "GET "...)
	if w.cfg.Mode == modeHTTPScrape {
		b = append(b, w.cfg.ScrapePath...)
		for i := range w.cfg.ScrapeHashes {
			if i == 0 {
				b = append(b, '?')
			} else {
				b = append(b, '&')
			}
			b = append(b, "info_hash="...)
			b = appendEscaped(b, w.wl.InfoHash(w.pk.Torrent())[:])
		}
	} else {
		w.pk.Next(&w.ann)
		b = appendHTTPAnnounceQuery(b, w.cfg.AnnouncePath, w.wl, &w.ann)
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, w.host...)
	b = append(b, "\r\nUser-Agent: chihaya-bench\r\n"...)
	if w.cfg.NewConn {
		b = append(b, "Connection: close\r\n"...)
	}
	w.req = append(b, "\r\n"...)
}

// appendHTTPAnnounceQuery appends path and the announce's query string.
func appendHTTPAnnounceQuery(b []byte, path string, wl *Workload, a *Announce) []byte {
	var pid [20]byte
	wl.PeerID(&pid, a.Torrent, a.Peer)
	b = append(b, path...)
	b = append(b, "?info_hash="...)
	b = appendEscaped(b, wl.InfoHash(a.Torrent)[:])
	b = append(b, "&peer_id="...)
	b = appendEscaped(b, pid[:])
	b = append(b, "&port="...)
	b = strconv.AppendUint(b, uint64(wl.Port(a.Peer)), 10)
	b = append(b, "&uploaded=0&downloaded=0&left="...)
	b = strconv.AppendUint(b, a.Left, 10)
	if a.Event != EventNone {
		b = append(b, "&event="...)
		b = append(b, a.Event.String()...)
	}
	if a.NumWant >= 0 {
		b = append(b, "&numwant="...)
		b = strconv.AppendInt(b, int64(a.NumWant), 10)
	}
	b = append(b, "&key="...)
	b = strconv.AppendUint(b, uint64(uint32(wl.peerMix(a.Torrent, a.Peer))), 16)
	return append(b, "&compact=1"...)
}

const hexDigits = "0123456789ABCDEF"

// appendEscaped percent-encodes raw bytes, leaving RFC 3986's unreserved
// characters literal as clients do.
func appendEscaped(b []byte, raw []byte) []byte {
	for _, c := range raw {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b = append(b, c)
			continue
		}
		b = append(b, '%', hexDigits[c>>4], hexDigits[c&15])
	}
	return b
}
