package http

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/chihaya/chihaya/pkg/clock"
)

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
	// follow it); nil while the connection is idle. It is *bufp, from
	// the server's pool.
	buf  []byte
	bufp *[]byte
	n    int
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

// serve reads and answers requests until the connection is closed, and
// reports whether this goroutine closed it (then nothing else refers to
// c). A goroutine that has answered a request hands the connection over
// to a new goroutine when it has to wait for the next one, so that an idle
// connection keeps only a minimal stack.
func (c *conn) serve() (closed bool) {
	defer c.recoverPanic()
	for {
		end, err := c.readHead()
		if err == errParked {
			// The idle poller has the connection now: it is not ours to
			// touch any more.
			return false
		}
		if err != nil {
			c.readFailed(err)
			return true
		}
		var r request
		if err := parseHead(c.buf[:end], c.s.realIPHeader, &r); err != nil {
			c.refuse(err)
			return true
		}
		c.reqStart = time.Time{}
		if !c.s.keepAlive || c.s.shutting.Load() {
			r.close = true
		}
		c.s.f.dispatch(c, &r)
		c.fresh = false
		if r.close || c.werr != nil {
			c.close(c.n > end || r.body)
			return true
		}
		c.n = copy(c.buf, c.buf[end:c.n])
		if c.n > 0 {
			continue // a pipelined request
		}
		c.releaseBuf()
		if c.s.shutting.Load() {
			c.close(false)
			return true
		}
		if c.rc == nil && c.nc == nil {
			if !c.s.idle.park(c, clock.Monotonic()+int64(c.s.idleTimeout)) {
				c.close(false)
				return true
			}
			return false
		}
		go c.serve()
		return false
	}
}

// takeBuf gives the connection a read buffer from the pool.
func (c *conn) takeBuf() {
	c.bufp = c.s.bufs.Get().(*[]byte)
	c.buf = *c.bufp
}

// releaseBuf gives the connection's read buffer back to the pool.
func (c *conn) releaseBuf() {
	c.s.bufs.Put(c.bufp)
	c.bufp, c.buf = nil, nil
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
			c.takeBuf()
		}
		n, err := rawRead(c.fd, c.buf[c.n:])
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
			c.releaseBuf()
			wait := c.s.idleTimeout
			if c.fresh {
				// read_timeout bounds the whole first request, this
				// wait included, as it did under net/http: the
				// deadline set once its bytes come counts from here.
				if c.reqStart.IsZero() {
					c.reqStart = time.Now()
				}
				wait = c.s.readTimeout - time.Since(c.reqStart)
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
		c.takeBuf()
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
			n, err := sysWrite(int(fd), c.wb)
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
		c.takeBuf()
	}
	for {
		n, err := sysRead(int(fd), c.buf[c.n:])
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			if c.n == 0 {
				// Nothing to keep while waiting.
				c.releaseBuf()
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
			n, err := rawWrite(c.fd, p)
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
		c.releaseBuf()
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
		if sysShutdownWrite(c.fd) != nil {
			return
		}
		if c.rc == nil && c.register() != nil {
			return
		}
		r = c.file.Load()
	}
	r.SetReadDeadline(time.Now().Add(500 * time.Millisecond)) //nolint:errcheck // best effort
	if c.buf == nil {
		c.takeBuf()
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
		rawClose(c.fd)
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
