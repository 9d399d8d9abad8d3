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

	"github.com/chihaya/chihaya/pkg/clock"
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
	lns      []*os.File
	// idle holds the plain TCP connections waiting for a request; nil
	// where epoll is missing.
	idle *idlePoller
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
// them when tlsCfg is set. A plain TCP listener is accepted from directly
// (serveRaw).
func (s *server) serve(ln net.Listener, tlsCfg *tls.Config) {
	if tl, ok := ln.(*net.TCPListener); ok && tlsCfg == nil && s.idle != nil {
		// A listener's own RawConn cannot wait for readability; a
		// duplicate of its socket, as an os.File, can.
		if lf, err := tl.File(); err == nil {
			if rc, err := lf.SyscallConn(); err == nil && s.trackListener(lf) {
				s.serveRaw(rc)
				return
			}
			lf.Close()
		}
	}
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.shutting.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = s.acceptFailed(err, backoff)
			continue
		}
		backoff = 0
		c := &conn{s: s, nc: nc, fd: -1, fresh: true}
		c.state.Store(stateActive)
		if ta, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
			c.remote = ta.AddrPort()
		} else if ap, err := netip.ParseAddrPort(nc.RemoteAddr().String()); err == nil {
			c.remote = ap
		}
		if tlsCfg != nil {
			c.nc = tls.Server(nc, tlsCfg)
		}
		if s.track(c) {
			go c.serve()
		}
	}
}

// acceptFailed waits after a failed accept (out of file descriptors and
// the like) rather than spin, as net/http does, and returns the next wait.
func (s *server) acceptFailed(err error, backoff time.Duration) time.Duration {
	backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
	logrus.WithError(err).WithField("frontend", "http").Debug("http: accept")
	time.Sleep(backoff)
	return backoff
}

// trackListener registers a duplicate of a listener's socket, which
// closeListeners closes, or closes it when the server is shutting down.
func (s *server) trackListener(f *os.File) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutting.Load() {
		return false
	}
	s.lns = append(s.lns, f)
	return true
}

// closeListeners closes the duplicates of the listeners' sockets: the
// sockets stop listening once these and the listeners are closed.
func (s *server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.shutting.Store(true)
	for _, f := range s.lns {
		f.Close()
	}
}

// track registers a new connection for shutdown, or closes it when the
// server is shutting down.
func (s *server) track(c *conn) bool {
	s.mu.Lock()
	if s.shutting.Load() {
		s.mu.Unlock()
		c.closeNow()
		return false
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	return true
}

func (s *server) getBuf() []byte  { return *(s.bufs.Get().(*[]byte)) }
func (s *server) putBuf(b []byte) { s.bufs.Put(&b) }

// shutdown closes the idle connections and lets the others finish their
// request, then waits for them all to be closed until ctx is done; then it
// closes what is left and cancels the requests' context. The listeners
// must be closed first.
func (s *server) shutdown(ctx context.Context) error {
	if s.idle != nil {
		s.idle.closeAll()
	}
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
				c.closeFromOutside()
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
	stateActive int32 = iota
	stateIdle
	stateClosed
)

// What conn.raw does when called by the RawConn.
const (
	opTryRead  = iota // read once, do not wait
	opWaitRead        // read, waiting for readability
	opWrite           // write what it can, do not wait
)

// conn is one client connection: a TLS connection (nc), or a plain TCP
// socket (fd) read and written with system calls, and registered with the
// runtime's poller (file, rc) once it has to wait.
type conn struct {
	s  *server
	nc net.Conn
	fd int
	// file is set once fd is registered with the poller; it is atomic for
	// shutdown, which closes connections from another goroutine.
	file   atomic.Pointer[os.File]
	rc     syscall.RawConn       // file's
	rawFn  func(fd uintptr) bool // c.raw, bound once
	op     int
	remote netip.AddrPort
	state  atomic.Int32
	pollState

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
		if err == errParked {
			// The idle poller has the connection now: it is not ours to
			// touch any more.
			return
		}
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
		if c.s.shutting.Load() {
			c.close(false)
			return
		}
		if c.rc == nil && c.nc == nil {
			if !c.s.idle.park(c, clock.Monotonic()+int64(c.s.idleTimeout)) {
				c.close(false)
			}
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
	switch {
	case c.nc != nil:
		return c.fillBlocking()
	case c.rc == nil:
		// Not registered yet: the bytes are most often there already.
		if c.buf == nil {
			c.buf = c.s.getBuf()
		}
		n, err := ignoringEINTR(syscall.Read, c.fd, c.buf[c.n:])
		if err == nil {
			c.rn, c.rerr = n, nil
			return c.readDone()
		}
		if err != syscall.EAGAIN {
			return err
		}
		if c.n == 0 {
			// Waiting for a request: in the idle poller, without a
			// goroutine or a buffer.
			c.s.putBuf(c.buf)
			c.buf = nil
			wait := c.s.idleTimeout
			if c.fresh {
				wait = c.s.readTimeout
			}
			if c.s.idle.park(c, clock.Monotonic()+int64(wait)) {
				return errParked
			}
			return net.ErrClosed
		}
		if err := c.register(); err != nil {
			return err
		}
	default:
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
	}
	if err := c.setReadDeadline(); err != nil {
		return err
	}
	if c.n == 0 && !c.markIdle() {
		return net.ErrClosed
	}
	c.op = opWaitRead
	if err := c.rc.Read(c.rawFn); err != nil {
		return err
	}
	return c.readDone()
}

// markIdle marks the connection idle before it waits for a request, so
// that shutdown closes it rather than wait for it. It reports false when
// the connection is closed or must be: the server is shutting down.
func (c *conn) markIdle() bool {
	switch c.state.Load() {
	case stateClosed:
		return false
	case stateActive:
		c.state.Store(stateIdle)
	}
	return !c.s.shutting.Load()
}

// register hands fd to the runtime's poller, so that the connection can
// wait for bytes or for room to write.
func (c *conn) register() error {
	f := os.NewFile(uintptr(c.fd), "")
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	c.rc, c.rawFn = rc, c.raw
	c.file.Store(f)
	return nil
}

func ignoringEINTR(fn func(int, []byte) (int, error), fd int, p []byte) (int, error) {
	for {
		n, err := fn(fd, p)
		if err != syscall.EINTR {
			return n, err
		}
	}
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
	if c.n == 0 && !c.markIdle() {
		return net.ErrClosed
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
	if c.nc != nil {
		return c.nc.SetReadDeadline(dl)
	}
	return c.file.Load().SetReadDeadline(dl)
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
	if c.nc != nil {
		if err := c.nc.SetWriteDeadline(time.Now().Add(c.s.writeTimeout)); err != nil {
			c.werr = err
			return err
		}
		if _, err := c.nc.Write(p); err != nil {
			c.werr = err
		}
		return c.werr
	}
	if c.rc == nil {
		for len(p) > 0 {
			n, err := ignoringEINTR(syscall.Write, c.fd, p)
			if err == syscall.EAGAIN {
				break
			}
			if err != nil {
				c.werr = err
				return err
			}
			p = p[n:]
		}
		if len(p) == 0 {
			return nil
		}
		if err := c.register(); err != nil {
			c.werr = err
			return err
		}
	} else {
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
	// The socket is full: wait for room, up to write_timeout.
	f := c.file.Load()
	if err := f.SetWriteDeadline(time.Now().Add(c.s.writeTimeout)); err != nil {
		c.werr = err
		return err
	}
	if _, err := f.Write(p); err != nil {
		c.werr = err
	}
	return c.werr
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
	case c.nc != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed):
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
		c.drain()
	}
	c.closeNow()
	if c.buf != nil {
		c.s.putBuf(c.buf)
		c.buf = nil
	}
	c.s.mu.Lock()
	delete(c.s.conns, c)
	c.s.mu.Unlock()
}

// drain half-closes the connection and reads what the client still sends
// for up to half a second, or until it closes.
func (c *conn) drain() {
	var r interface {
		Read([]byte) (int, error)
		SetReadDeadline(time.Time) error
	}
	if c.nc != nil {
		cw, ok := c.nc.(interface{ CloseWrite() error })
		if !ok || cw.CloseWrite() != nil {
			return
		}
		r = c.nc
	} else {
		if syscall.Shutdown(c.fd, syscall.SHUT_WR) != nil {
			return
		}
		if c.rc == nil && c.register() != nil {
			return
		}
		r = c.file.Load()
	}
	r.SetReadDeadline(time.Now().Add(500 * time.Millisecond)) //nolint:errcheck // best effort
	if c.buf == nil {
		c.buf = c.s.getBuf()
	}
	for {
		if _, err := r.Read(c.buf); err != nil {
			return
		}
	}
}

// closeNow closes the socket.
func (c *conn) closeNow() {
	switch {
	case c.nc != nil:
		c.nc.Close()
	case c.file.Load() != nil:
		c.file.Load().Close()
	default:
		syscall.Close(c.fd)
	}
}

// closeIfIdle closes the connection if it is waiting for a request.
func (c *conn) closeIfIdle() {
	if c.state.CompareAndSwap(stateIdle, stateClosed) {
		c.closeFromOutside()
	}
}

// closeFromOutside closes the connection from another goroutine than its
// own: a socket that is not registered with the poller is left to its
// goroutine, which is not waiting on it (closing it here could close a
// descriptor the number of which is reused meanwhile).
func (c *conn) closeFromOutside() {
	if c.nc != nil {
		c.nc.Close()
	} else if f := c.file.Load(); f != nil {
		f.Close()
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

var (
	errAborted = errors.New("http: connection aborted")
	// errParked is returned by fill when the connection went to the idle
	// poller.
	errParked = errors.New("http: connection parked")
)
