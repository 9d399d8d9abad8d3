package http

import (
	"bytes"
	"errors"
)

// request is what the frontend reads of an HTTP/1.x request head: the
// request line and the few headers a tracker acts on. Its byte slices
// point into the connection's read buffer and are valid until the reply
// is written.
type request struct {
	method []byte
	// target is the request-target as sent: the path and the query.
	target []byte
	http10 bool
	// close is set when the connection must be closed after the reply:
	// the client asked for it (Connection: close, or HTTP/1.0 without
	// Connection: keep-alive), or the request carries a body, which is
	// never read.
	close bool
	// body is set when a body follows the head; it is never read.
	body bool
	// realIP is the last value of http.real_ip_header, when present.
	realIP     []byte
	haveRealIP bool
	// gzip is set when Accept-Encoding allows gzip (for the full scrape).
	gzip bool
}

// Reasons a request head is refused. errHeadTooLarge is answered as
// header_too_large, the others as bad_request.
var (
	errHeadTooLarge  = errors.New("http: request head over max_header_bytes")
	errBadRequest    = errors.New("http: malformed request")
	errNoHost        = errors.New("http: HTTP/1.1 request without Host")
	errBadVersion    = errors.New("http: unsupported HTTP version")
	errBadExpect     = errors.New("http: unsupported expectation")
	errBadTransfer   = errors.New("http: unsupported transfer encoding")
	errBadLength     = errors.New("http: bad Content-Length")
	errBadHeaderLine = errors.New("http: malformed header line")
)

// headEnd returns the length of the request head at the start of b (the
// request line and headers up to and including the empty line), or -1
// when b does not hold all of it yet. Lines end in CRLF or, as net/http
// also accepts, a bare LF. from is where the previous call stopped
// looking, so that a head arriving in pieces is scanned once.
func headEnd(b []byte, from int) int {
	i := max(from-3, 0)
	for {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		if i < len(b) && b[i] == '\n' {
			return i + 1
		}
		if i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n' {
			return i + 2
		}
		if i >= len(b) {
			return -1
		}
	}
}

// nextLine returns the line at the start of b without its line ending,
// and the rest.
func nextLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return b, nil
	}
	line, rest = b[:i], b[i+1:]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

// parseHead fills r from head, a complete request head (see headEnd).
// realIPHeader is the lower-case name of http.real_ip_header, or empty.
//
// It refuses what net/http refuses: a malformed request line, a version
// other than HTTP/1.0 and 1.1, an HTTP/1.1 request without Host or with
// two, a header line without a colon or with a space before it, a header
// value holding a control byte other than tab, an Expect other than
// 100-continue, a Transfer-Encoding other than chunked, and a malformed
// or contradictory Content-Length.
func parseHead(head []byte, realIPHeader string, r *request) error {
	*r = request{}
	line, rest := nextLine(head)
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return errBadRequest
	}
	r.method = line[:sp]
	for _, c := range r.method {
		if !isTokenChar(c) {
			return errBadRequest
		}
	}
	line = line[sp+1:]
	sp = bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return errBadRequest
	}
	r.target = line[:sp]
	for _, c := range r.target {
		if c <= ' ' || c == 0x7f {
			return errBadRequest
		}
	}
	switch string(line[sp+1:]) {
	case "HTTP/1.1":
	case "HTTP/1.0":
		r.http10, r.close = true, true
	default:
		return errBadVersion
	}

	var haveHost, haveLength, decidedGzip bool
	var length []byte
	for len(rest) > 0 {
		line, rest = nextLine(rest)
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return errBadHeaderLine
		}
		name := line[:colon]
		for _, c := range name {
			if !isTokenChar(c) {
				return errBadHeaderLine
			}
		}
		value := bytes.TrimLeft(bytes.TrimRight(line[colon+1:], " \t"), " \t")
		if !validFieldValue(value) {
			return errBadHeaderLine
		}
		switch {
		case equalFold(name, "host"):
			if haveHost {
				// RFC 9112 §3.2; net/http refused it too.
				return errBadHeaderLine
			}
			haveHost = true
		case equalFold(name, "connection"):
			if hasToken(value, "close") {
				r.close = true
			} else if r.http10 && hasToken(value, "keep-alive") {
				r.close = false
			}
		case equalFold(name, "content-length"):
			if haveLength && !bytes.Equal(length, value) {
				return errBadLength
			}
			if len(value) == 0 {
				return errBadLength
			}
			for _, c := range value {
				if c < '0' || c > '9' {
					return errBadLength
				}
			}
			haveLength, length = true, value
			if !allZeros(value) {
				r.close, r.body = true, true
			}
		case equalFold(name, "transfer-encoding"):
			if !equalFold(value, "chunked") {
				return errBadTransfer
			}
			r.close, r.body = true, true
		case equalFold(name, "expect"):
			if !equalFold(value, "100-continue") {
				return errBadExpect
			}
		case equalFold(name, "accept-encoding"):
			if !decidedGzip {
				r.gzip, decidedGzip = acceptsGzip(value)
			}
		}
		if realIPHeader != "" && equalFold(name, realIPHeader) {
			r.realIP, r.haveRealIP = value, true
		}
	}
	if !haveHost && !r.http10 {
		return errNoHost
	}
	return nil
}

// validFieldValue reports whether v holds no control byte but tab, as
// RFC 9110 asks and net/http checked: a bare CR or a NUL inside a header
// line is refused, not read as part of a value (a proxy in front may have
// read the CR as the end of the line).
func validFieldValue(v []byte) bool {
	for _, c := range v {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func allZeros(b []byte) bool {
	for _, c := range b {
		if c != '0' {
			return false
		}
	}
	return true
}

// isTokenChar reports whether c may appear in a method or header name
// (RFC 9110's tchar).
func isTokenChar(c byte) bool { return tokenChars[c] }

var tokenChars = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// equalFold reports whether b equals the lower-case ASCII s, ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// nextItem splits the first entry off the comma-separated list v.
func nextItem(v []byte) (item, rest []byte) {
	if i := bytes.IndexByte(v, ','); i >= 0 {
		return v[:i], v[i+1:]
	}
	return v, nil
}

// hasToken reports whether the comma-separated list v holds the token tok
// (lower case), ignoring case and surrounding spaces.
func hasToken(v []byte, tok string) bool {
	for len(v) > 0 {
		var part []byte
		part, v = nextItem(v)
		if equalFold(bytes.Trim(part, " \t"), tok) {
			return true
		}
	}
	return false
}

// acceptsGzip reads one Accept-Encoding value. decided is set when the
// value names gzip or "*": the first such entry decides, and it allows
// gzip unless its weight is zero.
func acceptsGzip(v []byte) (gzip, decided bool) {
	for len(v) > 0 {
		var part []byte
		part, v = nextItem(v)
		name, params, _ := bytes.Cut(part, []byte(";"))
		name = bytes.Trim(name, " \t")
		if !equalFold(name, "gzip") && !bytes.Equal(name, []byte("*")) {
			continue
		}
		return !zeroWeight(params), true
	}
	return false, false
}

// zeroWeight reports whether the parameters of an Accept-Encoding entry
// are "q=0" (or 0.0, 0.00, 0.000), spaces ignored.
func zeroWeight(params []byte) bool {
	var q [8]byte
	n := 0
	for _, c := range params {
		if c == ' ' || c == '\t' {
			continue
		}
		if n == len(q) {
			return false
		}
		q[n] = c
		n++
	}
	switch string(q[:n]) {
	case "q=0", "q=0.0", "q=0.00", "q=0.000":
		return true
	}
	return false
}
