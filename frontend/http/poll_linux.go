//go:build linux && !386

package http

import (
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/chihaya/chihaya/pkg/clock"
)

// serveRaw serves a plain TCP listener without net.Conn, and reports
// false when it cannot (then the caller serves it through net.Listener).
// A duplicate of the listener's socket, as an os.File, is what its
// acceptors wait on: a listener's own RawConn cannot wait for readability.
func (s *server) serveRaw(ln net.Listener) bool {
	tl, ok := ln.(*net.TCPListener)
	if !ok || s.idle == nil {
		return false
	}
	lf, err := tl.File()
	if err != nil {
		return false
	}
	rc, err := lf.SyscallConn()
	if err != nil || !s.trackListener(lf) {
		lf.Close()
		return false
	}
	s.maxIdleAcceptors = int32(runtime.GOMAXPROCS(0)) + 1
	s.startAcceptor(rc)
	return true
}

// startAcceptor starts one more goroutine running acceptLoop.
func (s *server) startAcceptor(rc syscall.RawConn) {
	s.idleAcceptors.Add(1)
	s.acceptors.Add(1)
	go s.acceptLoop(rc)
}

// acceptLoop accepts plain TCP connections with accept4 on the listener's
// socket, bypassing net.Conn, and serves each on the accepting goroutine:
// a client whose request is there when it is accepted (TCP_DEFER_ACCEPT)
// and who closes after the reply costs accept4, read, write and close,
// and no goroutine, no hand-over to another and none of net's
// per-connection system calls (getsockname, TCP_NODELAY, two epoll_ctl)
// and allocations. A connection is registered with the runtime's poller
// (os.NewFile) only when it has to wait in a goroutine.
//
// Serving a request may wait (a slow client, a store over the network):
// while it does, its goroutine does not accept. So the loop runs in a pool
// of goroutines, which take turns waiting on the listener (the os.File's
// read lock lets one wait at a time): one that takes a connection while
// no other is idle starts another first, and one that finds more than
// GOMAXPROCS+1 others idle after its connection ends. Connections are so
// served in parallel on every P, and a request that waits holds one
// goroutine, as it did with a goroutine per connection.
func (s *server) acceptLoop(rc syscall.RawConn) {
	defer s.acceptors.Done()
	var (
		nfd    int
		remote netip.AddrPort
		aerr   syscall.Errno
	)
	accept := func(fd uintptr) bool {
		nfd, remote, aerr = rawAccept(int(fd))
		return aerr != syscall.EAGAIN
	}
	var backoff time.Duration
	// spare is a conn this goroutine closed, reused for the next
	// connection.
	var spare *conn
	for {
		if err := rc.Read(accept); err != nil {
			// The listener was closed.
			s.idleAcceptors.Add(-1)
			return
		}
		if aerr != 0 {
			if s.shutting.Load() {
				s.idleAcceptors.Add(-1)
				return
			}
			backoff = s.acceptFailed(aerr, backoff)
			continue
		}
		backoff = 0
		c := spare
		if c == nil {
			c = new(conn)
		}
		*c = conn{s: s, fd: nfd, fresh: true, remote: remote}
		c.state.Store(stateActive)
		if !s.track(c) {
			spare = c
			continue
		}
		if s.idleAcceptors.Add(-1) == 0 {
			s.startAcceptor(rc)
		}
		spare = nil
		if c.serve() {
			spare = c
		}
		if s.idleAcceptors.Add(1) > s.maxIdleAcceptors {
			s.idleAcceptors.Add(-1)
			return
		}
	}
}

// deferAccept sets TCP_DEFER_ACCEPT on a listening socket: accept
// returns a connection only once its first bytes have arrived (or after a
// second, the kernel's SYN-ACK retransmissions permitting), so that a new
// connection rarely has to wait for its request in the idle poller. HTTP
// clients always speak first.
func deferAccept(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_DEFER_ACCEPT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// pollState is what the idle poller keeps in a conn.
type pollState struct {
	inSet     bool // the descriptor is in the poller's epoll set
	ev        syscall.EpollEvent
	idleUntil int64 // clock.Monotonic
}

// idlePoller holds the plain TCP connections that wait for the first byte
// of a request (kept alive between requests, or accepted before their
// request arrived) in an epoll set of its own, so that such a connection
// costs no goroutine and no registration with the runtime's poller: only
// its conn and a slot here. One goroutine waits on the set (itself
// registered with the runtime's poller, so no thread blocks in
// epoll_wait), starts a goroutine for each connection whose bytes arrive,
// and closes the connections idle past their deadline.
type idlePoller struct {
	s     *server
	epfd  int
	file  *os.File // epfd, registered with the runtime's poller
	rc    syscall.RawConn
	every time.Duration // how often deadlines are checked

	mu     sync.Mutex
	closed bool
	conns  []*conn // by descriptor: the connections in the set
	n      int
}

// newIdlePoller returns a running idlePoller, or nil when epoll is not
// available (then idle connections wait in goroutines).
func newIdlePoller(s *server) *idlePoller {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil
	}
	if err := syscall.SetNonblock(epfd, true); err != nil {
		syscall.Close(epfd)
		return nil
	}
	f := os.NewFile(uintptr(epfd), "epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil
	}
	p := &idlePoller{s: s, epfd: epfd, file: f, rc: rc}
	p.every = min(max(min(s.idleTimeout, s.readTimeout)/8, 10*time.Millisecond), time.Second)
	go p.run()
	return p
}

// park puts c, which has nothing buffered, into the set until bytes
// arrive or until deadline (clock.Monotonic). It reports false when the
// poller is closed (shutdown), and then c must be closed by its caller.
func (p *idlePoller) park(c *conn, deadline int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	// Under the lock: shutdown and the deadline check close parked
	// connections, and must not find one whose registration is underway.
	op := syscall.EPOLL_CTL_MOD
	if !c.inSet {
		op = syscall.EPOLL_CTL_ADD
	}
	c.ev = syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: int32(c.fd)}
	if err := syscall.EpollCtl(p.epfd, op, c.fd, &c.ev); err != nil {
		logrus.WithError(err).WithField("frontend", "http").Debug("http: epoll_ctl")
		return false
	}
	c.inSet = true
	c.idleUntil = deadline
	c.state.Store(stateIdle)
	for c.fd >= len(p.conns) {
		p.conns = append(p.conns, make([]*conn, len(p.conns)+64)...)
	}
	p.conns[c.fd] = c
	p.n++
	return true
}

// run waits for parked connections to become readable, and checks their
// deadlines every p.every.
func (p *idlePoller) run() {
	events := make([]syscall.EpollEvent, 256)
	var ready, expired []*conn
	var n int
	wait := func(fd uintptr) bool {
		var err error
		n, err = syscall.EpollWait(int(fd), events, 0)
		if err != nil {
			n = 0
		}
		return n > 0
	}
	nextCheck := clock.Monotonic() + int64(p.every)
	for {
		p.file.SetReadDeadline(time.Now().Add(p.every)) //nolint:errcheck // an epoll fd takes deadlines
		err := p.rc.Read(wait)
		if err != nil && !os.IsTimeout(err) {
			return // closed
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			if fd < len(p.conns) && p.conns[fd] != nil {
				ready = append(ready, p.conns[fd])
				p.conns[fd] = nil
				p.n--
			}
		}
		n = 0
		if now := clock.Monotonic(); now >= nextCheck {
			nextCheck = now + int64(p.every)
			for fd, c := range p.conns {
				if c != nil && c.idleUntil <= now {
					expired = append(expired, c)
					p.conns[fd] = nil
					p.n--
				}
			}
		}
		p.mu.Unlock()
		for i, c := range ready {
			if c.state.CompareAndSwap(stateIdle, stateActive) {
				go c.serve()
			} else {
				c.close(false) // shutdown found it idle, and left it to us
			}
			ready[i] = nil
		}
		ready = ready[:0]
		for i, c := range expired {
			c.close(false)
			expired[i] = nil
		}
		expired = expired[:0]
	}
}

// closeAll closes the parked connections and the poller (shutdown).
func (p *idlePoller) closeAll() {
	p.mu.Lock()
	p.closed = true
	var parked []*conn
	for fd, c := range p.conns {
		if c != nil {
			parked = append(parked, c)
			p.conns[fd] = nil
		}
	}
	p.mu.Unlock()
	p.file.Close()
	for _, c := range parked {
		c.close(false)
	}
}
