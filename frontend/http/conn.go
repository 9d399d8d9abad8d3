package http

import (
	"bytes"
	"crypto/tls"
	"errors"
	"log"
	"net"
	"strconv"
	"sync/atomic"

	"github.com/sirupsen/logrus"

	"github.com/chihaya/chihaya/bittorrent"
)

// listener wraps each accepted connection in a conn, terminating TLS
// first when tls is set, so that conn sees the plain HTTP bytes.
type listener struct {
	net.Listener
	f   *Frontend
	tls *tls.Config
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if l.tls != nil {
		c = tls.Server(c, l.tls)
	}
	return &conn{Conn: c, f: l.f}, nil
}

// conn keeps net/http's own error answers off the wire. When net/http
// refuses a request before any handler runs (a malformed request line,
// headers over the limit, an unsupported transfer encoding) it writes a
// plain-text 4xx/5xx response straight to the connection and closes it.
// Our handlers only ever answer 200, so a write that starts a non-200,
// non-1xx status line can only be one of those: conn replaces it with a
// bencoded failure, still followed by the close, and counts it.
//
// conn also counts requests dropped because the client was too slow to
// send them: a read timeout while a request is partly read. Such a client
// gets no answer, its connection is closed.
type conn struct {
	net.Conn
	f *Frontend
	// pending is set when bytes of a request were read and no reply has
	// been written since. It is touched by net/http's background reader
	// as well as by the serving goroutine.
	pending atomic.Bool
	// timedOut is set once a partly read request timed out: net/http
	// then answers 400, which would be a second count and pointless bytes
	// to a client that is not reading; the connection is dropped instead.
	timedOut atomic.Bool
}

// Read and Write only load the flags in the common case: a store is an
// atomic exchange, a load a plain read.
func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.pending.Load() {
		c.pending.Store(true)
	}
	if err != nil && c.pending.Load() {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && c.pending.CompareAndSwap(true, false) {
			c.timedOut.Store(true)
			c.f.metrics.ObserveError("read_timeout")
		}
	}
	return n, err
}

func (c *conn) Write(p []byte) (int, error) {
	if c.pending.Load() {
		c.pending.Store(false)
	}
	if status, ok := refusalStatus(p); ok {
		if c.timedOut.Load() {
			return len(p), nil
		}
		reply := failureBadRequest
		if status == 431 {
			reply = failureHeaderTooLarge
			c.f.metrics.ObserveError("header_too_large")
		} else {
			c.f.metrics.ObserveError("bad_request")
		}
		if _, err := c.Conn.Write(reply); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// netHTTPErrorHeaders follow the status line of every response net/http
// writes on its own when it refuses a request.
var netHTTPErrorHeaders = []byte("\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n")

// refusalStatus reports whether p is a refusal written by net/http itself,
// and returns its status. It matches the whole status line and the headers
// net/http uses, not just a status code, because a write may also start in
// the middle of one of our own replies, whose bytes a peer partly controls
// (its 20-byte peer ID); those cannot spell out a 60-byte header block.
func refusalStatus(p []byte) (int, bool) {
	// Our own replies, 200s, are ruled out by one byte.
	if len(p) < 13 || p[9] < '3' || p[9] > '5' || !(bytes.HasPrefix(p, []byte("HTTP/1.1 ")) || bytes.HasPrefix(p, []byte("HTTP/1.0 "))) {
		return 0, false
	}
	if p[9] < '3' || p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9' || p[12] != ' ' {
		return 0, false
	}
	status := int(p[9]-'0')*100 + int(p[10]-'0')*10 + int(p[11]-'0')
	if bytes.HasPrefix(p[9:], []byte("417 Expectation Failed\r\n")) {
		// Sent through the handler path, with headers of its own.
		return status, true
	}
	eol := bytes.Index(p, []byte("\r\n"))
	if eol < 0 || !bytes.HasPrefix(p[eol:], netHTTPErrorHeaders) {
		return 0, false
	}
	return status, true
}

// errHeaderTooLarge has no constant in bittorrent: it never reaches the
// logic, only this frontend's replacement of net/http's 431.
const errHeaderTooLarge = bittorrent.ClientError("request headers too large")

var (
	failureBadRequest     = refusalResponse(string(bittorrent.ErrMalformedRequest))
	failureHeaderTooLarge = refusalResponse(string(errHeaderTooLarge))
)

// refusalResponse builds a complete HTTP response carrying a bencoded
// failure, announcing the close that net/http performs after a refusal.
func refusalResponse(reason string) []byte {
	body := appendFailure(nil, reason)
	b := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: ")
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	return append(b, body...)
}

// newErrorLog routes net/http's own log lines (TLS handshake failures,
// accept errors) to logrus at debug level: clients cause them at will, so
// they must not flood an operator's log.
func newErrorLog() *log.Logger {
	return log.New(errorLogWriter{}, "", 0)
}

type errorLogWriter struct{}

func (errorLogWriter) Write(p []byte) (int, error) {
	logrus.WithField("frontend", "http").Debug(string(bytes.TrimSpace(p)))
	return len(p), nil
}

// CloseWrite lets net/http half-close the connection after a refusal, so
// that the client reads the failure before the connection goes away.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
