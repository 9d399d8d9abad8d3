package websocket

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// poller lets an idle connection go without a goroutine. A connection
// with nothing left to read parks: it arms its socket in an epoll set of
// its own (one-shot, level-triggered) and its reader goroutine ends. When
// the socket becomes readable (a message, the peer's close), the poller
// starts a reader again. A goroutine's stack (4 KiB once it has handled a
// message: it never shrinks to the 2 KiB minimum) was half of an idle
// connection's memory.
//
// The poller only says when to start reading; the reader then reads
// through Go's own netpoller as before, with its read deadline, so a wake
// with nothing to read (an event of a socket number since reused) costs a
// goroutine that waits, never a wrong read.
type poller struct {
	epfd, evfd int
	mu         sync.RWMutex
	conns      map[int32]*conn // by socket number
	done       chan struct{}
}

const parkEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

// newPoller starts the poller, or returns nil (connections then keep
// their goroutine) when the system refuses one.
func newPoller() *poller {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: -1}); err != nil {
		unix.Close(evfd)
		unix.Close(epfd)
		return nil
	}
	p := &poller{epfd: epfd, evfd: evfd, conns: make(map[int32]*conn), done: make(chan struct{})}
	go p.run()
	return p
}

// run wakes the connections whose sockets are readable, until stop. It
// waits in epoll_wait on a thread of its own.
func (p *poller) run() {
	defer close(p.done)
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		for i := range events[:n] {
			fd := events[i].Fd
			if fd == -1 {
				return
			}
			p.mu.RLock()
			c := p.conns[fd]
			p.mu.RUnlock()
			if c != nil {
				c.wake()
			}
		}
	}
}

// stop ends run and releases the poller's descriptors.
func (p *poller) stop() {
	var one = [8]byte{1}
	_, _ = unix.Write(p.evfd, one[:])
	<-p.done
	unix.Close(p.evfd)
	unix.Close(p.epfd)
}

// add makes c parkable, if its connection is a plain TCP socket (a TLS
// connection may hold decrypted bytes its socket no longer shows, so it
// keeps its goroutine).
func (p *poller) add(c *conn, nc net.Conn) {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return
	}
	fd := int32(-1)
	if rc.Control(func(s uintptr) { fd = int32(s) }) != nil || fd < 0 {
		return
	}
	c.fd = fd
	p.mu.Lock()
	p.conns[fd] = c
	p.mu.Unlock()
}

// remove forgets c; called before its socket is closed.
func (p *poller) remove(c *conn) {
	if c.fd < 0 {
		return
	}
	p.mu.Lock()
	if p.conns[c.fd] == c {
		delete(p.conns, c.fd)
	}
	p.mu.Unlock()
}

// arm asks for one wake of c when its socket is readable. A socket closed
// meanwhile has left the epoll set by itself (then MOD fails, and ADD
// too). armed is set before the socket is armed: once it is, another
// goroutine may be running c.
func (p *poller) arm(c *conn) error {
	ev := unix.EpollEvent{Events: parkEvents, Fd: c.fd}
	if c.armed.Swap(true) {
		err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, int(c.fd), &ev)
		if !errors.Is(err, unix.ENOENT) {
			return err
		}
	}
	return unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(c.fd), &ev)
}

// useSocket lets wait read a plain TCP connection's socket itself.
func (p *peekConn) useSocket() {
	if tc, ok := p.Conn.(*net.TCPConn); ok {
		if rc, err := tc.SyscallConn(); err == nil {
			p.rc, p.readFn = rc, p.readSocket
		}
	}
}

// readSocket reads what has arrived into a pooled buffer, which it keeps
// only if something came; false asks the netpoller to wait for more.
func (p *peekConn) readSocket(fd uintptr) bool {
	b := readPool.Get().(*[]byte)
	for {
		n, err := syscall.Read(int(fd), *b)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			readPool.Put(b)
			return false
		case err != nil:
			p.rerr = os.NewSyscallError("read", err)
		case n == 0:
			p.rerr = io.EOF
		default:
			*b = (*b)[:n]
			p.pend, p.off = b, 0
			return true
		}
		readPool.Put(b)
		return true
	}
}
