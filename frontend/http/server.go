package http

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// server is the frontend's HTTP/1.1 server: a tracker answers GET requests
// without bodies, so it needs far less than net/http, and every byte and
// goroutine per connection counts when tens of thousands of clients
// announce over a new connection each, or hold kept-alive connections
// open.
//
//   - A new connection costs no goroutine: on Linux it is served on the
//     goroutine that accepted it (acceptLoop), from accept4 to close.
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

	// acceptors counts the goroutines of acceptLoop, idleAcceptors those
	// of them not serving a connection; more than maxIdleAcceptors idle
	// ones end.
	acceptors        sync.WaitGroup
	idleAcceptors    atomic.Int32
	maxIdleAcceptors int32

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
// them when tlsCfg is set. Plain TCP listeners are served by serveRaw
// where it can.
func (s *server) serve(ln net.Listener, tlsCfg *tls.Config) {
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

// acceptFailed counts a failed accept (out of file descriptors and the
// like) and waits after it rather than spin, as net/http does, and returns
// the next wait.
func (s *server) acceptFailed(err error, backoff time.Duration) time.Duration {
	backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
	s.f.metrics.ObserveError("accept_error")
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
	// The acceptors end once they have served the connection they hold
	// (counted in conns below too).
	accepting := make(chan struct{})
	go func() {
		s.acceptors.Wait()
		close(accepting)
	}()
	select {
	case <-accepting:
	case <-ctx.Done():
	}
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
