package http

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
)

// server is the frontend's HTTP/1.1 server: a tracker answers GET requests
// without bodies, so it needs far less than net/http, and every byte and
// goroutine per connection counts when tens of thousands of clients
// announce over a new connection each, or hold kept-alive connections
// open.
//
//   - An idle connection holds no buffer: on a plain TCP connection the
//     wait for the next request is a wait for readability (through
//     syscall.RawConn), and the read buffer is taken from a pool only once
//     bytes are there, and given back once the request is answered.
//   - An idle connection's goroutine has the smallest stack: the goroutine
//     that answered a request (whose stack grew in the logic) hands the
//     wait for the next one to a new goroutine and ends.
//   - Deadlines cost a runtime timer each: the read deadline is only set
//     before a wait, the write deadline only when a write would block.
//
// TLS connections (https_addr) are read through crypto/tls with a pooled
// buffer held while they wait.
type server struct {
	f            *Frontend
	readTimeout  time.Duration
	writeTimeout time.Duration
	idleTimeout  time.Duration
	keepAlive    bool
	// realIPHeader is http.real_ip_header in lower case, or empty.
	realIPHeader string
	// bufs holds read buffers of max_header_bytes: a request head must
	// fit in one.
	bufs    sync.Pool
	bufSize int

	// ctx is the context of every request; Stop cancels it when it gives
	// up waiting for them.
	ctx    context.Context
	cancel context.CancelFunc

	shutting atomic.Bool
	mu       sync.Mutex
	conns    map[*conn]struct{}
}

func newServer(f *Frontend, cfg Config) *server {
	s := &server{
		f:            f,
		readTimeout:  cfg.ReadTimeout,
		writeTimeout: cfg.WriteTimeout,
		idleTimeout:  cfg.IdleTimeout,
		keepAlive:    cfg.EnableKeepAlive,
		bufSize:      cfg.MaxHeaderBytes,
		conns:        make(map[*conn]struct{}),
	}
	s.realIPHeader = strings.ToLower(cfg.RealIPHeader)
	s.bufs.New = func() any {
		b := make([]byte, s.bufSize)
		return &b
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// serve accepts connections on ln until it is closed, terminating TLS on
// them when tlsCfg is set.
func (s *server) serve(ln net.Listener, tlsCfg *tls.Config) {
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.shutting.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait rather than
			// spin, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			logrus.WithError(err).WithField("frontend", "http").Debug("http: accept")
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if c := s.newConn(nc, tlsCfg); c != nil {
			go c.serve()
		}
	}
}

func (s *server) newConn(nc net.Conn, tlsCfg *tls.Config) *conn {
	c := &conn{s: s, nc: nc, fresh: true}
	if ta, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		c.remote = ta.AddrPort()
	} else if ap, err := netip.ParseAddrPort(nc.RemoteAddr().String()); err == nil {
		c.remote = ap
	}
	if tlsCfg != nil {
		c.nc = tls.Server(nc, tlsCfg)
	} else if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			c.rc = rc
			c.rawFn = c.raw
		}
	}
	s.mu.Lock()
	if s.shutting.Load() {
		s.mu.Unlock()
		nc.Close()
		return nil
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	return c
}

func (s *server) getBuf() []byte  { return *(s.bufs.Get().(*[]byte)) }
func (s *server) putBuf(b []byte) { s.bufs.Put(&b) }

// shutdown closes the idle connections and lets the others finish their
// request, then waits for them all to be closed until ctx is done; then it
// closes what is left and cancels the requests' context. The listeners
// must be closed first.
func (s *server) shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutting.Store(true)
	for c := range s.conns {
		c.closeIfIdle()
	}
	s.mu.Unlock()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			s.cancel()
			return nil
		}
		select {
		case <-ctx.Done():
			s.mu.Lock()
			for c := range s.conns {
				c.nc.Close()
			}
			s.mu.Unlock()
			s.cancel()
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// The states of a connection, for shutdown: an idle connection (waiting
// for a request's first byte) is closed at once, an active one after its
// reply.
const (
	stateIdle int32 = iota
	stateActive
	stateClosed
)

// What conn.raw does when called by the RawConn.
const (
	opTryRead  = iota // read once, do not wait
	opWaitRead        // read, waiting for readability
	opWrite           // write what it can, do not wait
)

// conn is one client connection.
type conn struct {
	s  *server
	nc net.Conn
	// rc reads and writes a plain TCP connection without waiting through
	// the runtime's poller unless it must; nil for TLS.
	rc     syscall.RawConn
	rawFn  func(fd uintptr) bool // c.raw, bound once
	op     int
	remote netip.AddrPort
	state  atomic.Int32

	// buf holds the bytes read of the current request (and any that
	// follow it); nil while the connection is idle.
	buf []byte
	n   int
	// scanned is how much of buf[:n] is known to hold no end of head.
	scanned int
	// fresh is set until the first request is answered: until then the
	// wait for bytes is bounded by read_timeout, afterwards by
	// idle_timeout.
	fresh bool
	// reqStart is when the current request's first wait began, the zero
	// time before.
	reqStart time.Time
	rdl      time.Time // the read deadline last set

	// The outcome of raw.
	rn   int
	rerr error
	wb   []byte

	// werr is the first write error: once a reply could not be written
	// the connection is closed.
	werr error
}

// serve reads and answers requests until the connection is closed. A
// goroutine that has answered a request hands the connection over to a
// new goroutine when it has to wait for the next one, so that an idle
// connection keeps only a minimal stack.
func (c *conn) serve() {
	defer c.recoverPanic()
	for {
		end, err := c.readHead()
		if err != nil {
			c.readFailed(err)
			return
		}
		var r request
		if err := parseHead(c.buf[:end], c.s.realIPHeader, &r); err != nil {
			c.refuse(err)
			return
		}
		c.reqStart = time.Time{}
		if !c.s.keepAlive || c.s.shutting.Load() {
			r.close = true
		}
		c.s.f.dispatch(c, &r)
		c.fresh = false
		if r.close || c.werr != nil {
			c.close(c.n > end || r.body)
			return
		}
		c.n = copy(c.buf, c.buf[end:c.n])
		if c.n > 0 {
			continue // a pipelined request
		}
		c.s.putBuf(c.buf)
		c.buf = nil
		c.state.Store(stateIdle)
		if c.s.shutting.Load() && c.state.CompareAndSwap(stateIdle, stateClosed) {
			c.close(false)
			return
		}
		go c.serve()
		return
	}
}

// readHead reads until buf holds a whole request head, and returns its
// length.
func (c *conn) readHead() (int, error) {
	for {
		if c.n > 0 {
			if end := headEnd(c.buf[:c.n], c.scanned); end >= 0 {
				c.scanned = 0
				return end, nil
			}
			c.scanned = c.n
			if c.n == len(c.buf) {
				return 0, errHeadTooLarge
			}
		}
		if err := c.fill(); err != nil {
			return 0, err
		}
	}
}

// fill reads what the client sent into buf, waiting for it until the
// connection's read deadline.
func (c *conn) fill() error {
	if c.rc == nil {
		return c.fillBlocking()
	}
	c.op = opTryRead
	err := c.rc.Read(c.rawFn)
	if err == nil && c.rerr != syscall.EAGAIN {
		return c.readDone()
	}
	// Nothing there yet (or a deadline set for an earlier wait has
	// passed): wait, with this wait's deadline.
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	if err := c.setReadDeadline(); err != nil {
		return err
	}
	c.op = opWaitRead
	if err := c.rc.Read(c.rawFn); err != nil {
		return err
	}
	return c.readDone()
}

func (c *conn) readDone() error {
	if c.rerr != nil {
		return c.rerr
	}
	if c.rn <= 0 {
		return io.EOF
	}
	c.n += c.rn
	return c.activate()
}

// activate marks the connection active once bytes of a request are in,
// unless shutdown closed it meanwhile.
func (c *conn) activate() error {
	if c.state.Load() == stateIdle && !c.state.CompareAndSwap(stateIdle, stateActive) {
		return net.ErrClosed
	}
	return nil
}

// fillBlocking is fill for connections without a RawConn (TLS).
func (c *conn) fillBlocking() error {
	if c.buf == nil {
		c.buf = c.s.getBuf()
	}
	if err := c.setReadDeadline(); err != nil {
		return err
	}
	n, err := c.nc.Read(c.buf[c.n:])
	if n > 0 {
		c.n += n
		return c.activate()
	}
	if err == nil {
		return nil
	}
	return err
}

// setReadDeadline sets the deadline of the wait to come: idle_timeout
// from now for the first byte of a request on a kept-alive connection,
// read_timeout from the request's first wait otherwise.
func (c *conn) setReadDeadline() error {
	now := time.Now()
	var dl time.Time
	if c.n == 0 && !c.fresh {
		dl = now.Add(c.s.idleTimeout)
	} else {
		if c.reqStart.IsZero() {
			c.reqStart = now
		}
		dl = c.reqStart.Add(c.s.readTimeout)
		if !dl.After(now) {
			return os.ErrDeadlineExceeded
		}
	}
	if dl.Equal(c.rdl) {
		return nil
	}
	c.rdl = dl
	return c.nc.SetReadDeadline(dl)
}

// raw is the function given to the RawConn; c.op says what it does.
func (c *conn) raw(fd uintptr) bool {
	if c.op == opWrite {
		c.rerr = nil
		for len(c.wb) > 0 {
			n, err := syscall.Write(int(fd), c.wb)
			if err == syscall.EINTR {
				continue
			}
			if err != nil {
				c.rerr = err
				return true
			}
			c.wb = c.wb[n:]
		}
		return true
	}
	if c.buf == nil {
		c.buf = c.s.getBuf()
	}
	for {
		n, err := syscall.Read(int(fd), c.buf[c.n:])
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			if c.n == 0 {
				// Nothing to keep while waiting.
				c.s.putBuf(c.buf)
				c.buf = nil
			}
			c.rerr = err
			return c.op == opTryRead
		}
		c.rn, c.rerr = n, err
		return true
	}
}

// write writes p whole: at once when the socket takes it, else waiting up
// to write_timeout.
func (c *conn) write(p []byte) error {
	if c.werr != nil {
		return c.werr
	}
	if c.rc != nil {
		c.wb, c.op = p, opWrite
		err := c.rc.Write(c.rawFn)
		p, c.wb = c.wb, nil
		if err == nil && c.rerr == nil {
			return nil
		}
		if err == nil && c.rerr != syscall.EAGAIN {
			c.werr = c.rerr
			return c.werr
		}
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			c.werr = err
			return err
		}
	}
	if err := c.nc.SetWriteDeadline(time.Now().Add(c.s.writeTimeout)); err != nil {
		c.werr = err
		return err
	}
	if _, err := c.nc.Write(p); err != nil {
		c.werr = err
		return err
	}
	return nil
}

// replyHeadRoom is the room left before a reply's body in its buffer for
// the status line and headers, so that both go out in one write.
const replyHeadRoom = 128

// replyBuf returns buf emptied down to the head room, for a body to be
// appended to.
func replyBuf(buf []byte) []byte {
	if cap(buf) < replyHeadRoom+256 {
		buf = make([]byte, replyHeadRoom, replyHeadRoom+512)
	}
	return buf[:replyHeadRoom]
}

// reply writes buf[replyHeadRoom:] (see replyBuf) as a whole 200 reply
// with its Content-Length, the head written into the room before it.
func (c *conn) reply(r *request, buf []byte) {
	var h [replyHeadRoom]byte
	head := appendHead(h[:0], r, len(buf)-replyHeadRoom)
	start := replyHeadRoom - len(head)
	copy(buf[start:], head)
	c.write(buf[start:]) //nolint:errcheck // kept in c.werr
}

// replyStatic writes body, which the caller does not own, as a whole 200
// reply.
func (c *conn) replyStatic(r *request, body []byte) {
	b := replyBuf(nil)
	c.reply(r, append(b, body...))
}

// appendHead appends the status line and headers of a 200 reply whose
// body has n bytes (n < 0: chunked).
func appendHead(b []byte, r *request, n int) []byte {
	b = append(b, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"...)
	if n >= 0 {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(n), 10)
		b = append(b, "\r\n"...)
	}
	switch {
	case r.close:
		b = append(b, "Connection: close\r\n"...)
	case r.http10:
		b = append(b, "Connection: keep-alive\r\n"...)
	}
	return append(b, "\r\n"...)
}

// readFailed ends a connection whose request could not be read: a head
// over max_header_bytes is answered, a client too slow to send its request
// is counted and dropped, and a client that left is let go.
func (c *conn) readFailed(err error) {
	switch {
	case err == errHeadTooLarge:
		c.refuse(err)
		return
	case errors.Is(err, os.ErrDeadlineExceeded):
		if c.n > 0 {
			c.s.f.metrics.ObserveError("read_timeout")
		}
	case c.rc == nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed):
		// A failed TLS handshake, most often.
		logrus.WithError(err).WithField("frontend", "http").Debug("http: read")
	}
	c.close(false)
}

// refuse answers a request the server cannot serve with a bencoded
// failure, counts it, and closes the connection.
func (c *conn) refuse(err error) {
	reply := failureBadRequest
	if err == errHeadTooLarge {
		reply = failureHeaderTooLarge
		c.s.f.metrics.ObserveError("header_too_large")
	} else {
		c.s.f.metrics.ObserveError("bad_request")
	}
	c.write(reply) //nolint:errcheck // the connection is closed next
	c.close(true)
}

// close closes the connection. unread says the client may have sent bytes
// that were not read: closing then would send a reset, which may destroy
// the reply before the client reads it, so the connection is half-closed
// first and what comes is read away for a moment.
func (c *conn) close(unread bool) {
	c.state.Store(stateClosed)
	if unread && c.werr == nil {
		if cw, ok := c.nc.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
			c.nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond)) //nolint:errcheck // best effort
			if c.buf == nil {
				c.buf = c.s.getBuf()
			}
			for {
				if _, err := c.nc.Read(c.buf); err != nil {
					break
				}
			}
		}
	}
	c.nc.Close()
	if c.buf != nil {
		c.s.putBuf(c.buf)
		c.buf = nil
	}
	c.s.mu.Lock()
	delete(c.s.conns, c)
	c.s.mu.Unlock()
}

// closeIfIdle closes the connection if it is waiting for a request.
func (c *conn) closeIfIdle() {
	if c.state.CompareAndSwap(stateIdle, stateClosed) {
		c.nc.Close()
	}
}

// recoverPanic keeps a panic outside the request handlers (which have
// their own) from taking the tracker down: it is logged and counted, and
// the connection closed.
func (c *conn) recoverPanic() {
	v := recover()
	if v == nil {
		return
	}
	c.s.f.servePanic(v)
	c.werr = errAborted
	c.close(false)
}

var errAborted = errors.New("http: connection aborted")
