// Package udp is the UDP tracker frontend of BEP 15, with the URL data
// options of BEP 41.
//
// Several sockets share the listening address through SO_REUSEPORT, each
// read by one goroutine that owns all the memory it needs: datagrams are
// read and written in batches (recvmmsg/sendmmsg), parsed in place,
// answered into reused buffers, and no goroutine or channel is involved per
// datagram.
package udp

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/chihaya/chihaya/frontend"
)

// maxDatagram is the size of each read buffer. A BEP 15 request fits a
// 1500-byte MTU; larger datagrams are cut by the kernel and dropped.
const maxDatagram = 2048

// Frontend is a running UDP tracker.
type Frontend struct {
	logic   frontend.TrackerLogic
	cfg     Config
	ids     *ConnIDGenerator
	metrics *frontend.Metrics
	log     limitedLogger
	addr    net.Addr
	conns   []*net.UDPConn
	cancel  context.CancelFunc

	wg       sync.WaitGroup
	stopOnce sync.Once
	closing  atomic.Bool
	stopped  chan struct{}
}

var _ frontend.Frontend = (*Frontend)(nil)

// NewFrontend binds cfg.Sockets sockets to cfg.Addr and serves them in the
// background. cfg must have had WithDefaults applied and passed Validate.
// With port 0 the first socket picks a free port and the others join it.
func NewFrontend(logic frontend.TrackerLogic, cfg Config) (*Frontend, error) {
	if logic == nil {
		return nil, errors.New("udp: nil TrackerLogic")
	}
	key := []byte(cfg.PrivateKey)
	if len(key) == 0 {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("udp: generate private key: %w", err)
		}
	}
	f := &Frontend{
		logic:   logic,
		cfg:     cfg,
		ids:     NewConnIDGenerator(key, cfg.MaxClockSkew),
		metrics: frontend.NewMetrics("udp", cfg.EnableRequestTiming),
		stopped: make(chan struct{}),
	}
	if err := f.listen(); err != nil {
		f.closeConns()
		return nil, err
	}
	// Requests outlive no Stop, but the logic may use the context to
	// abandon work when the frontend shuts down.
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	for _, c := range f.conns {
		w, err := f.newWorker(ctx, c)
		if err != nil {
			cancel()
			f.closeConns()
			return nil, err
		}
		f.wg.Add(1)
		go w.run()
	}
	go func() {
		f.wg.Wait()
		close(f.stopped)
	}()
	return f, nil
}

// listen binds the sockets. Only the first one resolves port 0, so that
// all of them share the port it got.
func (f *Frontend) listen() error {
	host, _, err := net.SplitHostPort(f.cfg.Addr)
	if err != nil {
		return fmt.Errorf("udp: listen %s: %w", f.cfg.Addr, err)
	}
	lc := net.ListenConfig{}
	if f.cfg.Sockets > 1 {
		lc.Control = reusePort
	}
	addr := f.cfg.Addr
	for i := 0; i < f.cfg.Sockets; i++ {
		pc, err := lc.ListenPacket(context.Background(), "udp", addr)
		if err != nil {
			return fmt.Errorf("udp: listen %s: %w", addr, err)
		}
		c := pc.(*net.UDPConn)
		f.conns = append(f.conns, c)
		if f.cfg.ReadBufferSize > 0 {
			// The kernel silently caps the size; an error here is not
			// worth refusing to start over.
			_ = c.SetReadBuffer(f.cfg.ReadBufferSize)
		}
		if i == 0 {
			f.addr = c.LocalAddr()
			addr = net.JoinHostPort(host, strconv.Itoa(c.LocalAddr().(*net.UDPAddr).Port))
		}
	}
	return nil
}

// Addr returns the address the sockets are bound to, with the real port
// when the configuration asked for port 0.
func (f *Frontend) Addr() net.Addr { return f.addr }

// Stop closes the sockets, which ends their goroutines once the datagrams
// they are handling are answered, and waits for them until ctx is done.
func (f *Frontend) Stop(ctx context.Context) error {
	f.stopOnce.Do(func() {
		f.closing.Store(true)
		f.closeConns()
	})
	select {
	case <-f.stopped:
		f.cancel()
		return nil
	case <-ctx.Done():
		f.cancel()
		return fmt.Errorf("udp: stop: %w", ctx.Err())
	}
}

func (f *Frontend) closeConns() {
	for _, c := range f.conns {
		_ = c.Close()
	}
}

// batchConn is what ipv4.PacketConn and ipv6.PacketConn have in common.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// worker reads one socket. All of its state is its own.
type worker struct {
	f    *Frontend
	conn *net.UDPConn
	h    *handler

	// Batched mode (batch_size > 1).
	bc  batchConn
	in  []ipv4.Message
	out []ipv4.Message
	// outBufs are the reply buffers, one per slot of out; out[i].Buffers
	// points into them.
	outBufs [][]byte

	// Single mode (batch_size 1).
	buf, reply []byte
}

func (f *Frontend) newWorker(ctx context.Context, c *net.UDPConn) (*worker, error) {
	w := &worker{
		f:    f,
		conn: c,
		h:    newHandler(ctx, f.logic, f.ids, f.metrics, &f.log, f.cfg),
	}
	// The largest reply is an IPv6 announce with max_numwant peers.
	replyCap := max(maxDatagram, 20+18*f.cfg.MaxNumWant)
	n := f.cfg.BatchSize
	if n == 1 {
		w.buf = make([]byte, maxDatagram)
		w.reply = make([]byte, 0, replyCap)
		return w, nil
	}
	// The message layout is the same for both families; the IPv6 variant
	// also serves a dual-stack socket.
	if la, ok := c.LocalAddr().(*net.UDPAddr); ok && la.IP.To4() != nil {
		w.bc = ipv4.NewPacketConn(c)
	} else {
		w.bc = ipv6.NewPacketConn(c)
	}
	w.in = make([]ipv4.Message, n)
	w.out = make([]ipv4.Message, n)
	w.outBufs = make([][]byte, n)
	for i := 0; i < n; i++ {
		w.in[i].Buffers = [][]byte{make([]byte, maxDatagram)}
		w.outBufs[i] = make([]byte, 0, replyCap)
		w.out[i].Buffers = make([][]byte, 1)
	}
	return w, nil
}

func (w *worker) run() {
	defer w.f.wg.Done()
	if w.bc != nil {
		w.runBatched()
	} else {
		w.runSingle()
	}
}

// runSingle reads and answers one datagram per system call.
func (w *worker) runSingle() {
	for {
		n, _, flags, src, err := w.conn.ReadMsgUDPAddrPort(w.buf, nil)
		if err != nil {
			if w.closed(err) {
				return
			}
			w.f.metrics.ObserveError(reasonReadError)
			w.f.log.socketError("read", err)
			continue
		}
		if flags&msgTrunc != 0 {
			w.f.metrics.ObserveError(reasonOversized)
			continue
		}
		reply := w.h.handle(w.buf[:n], src, w.reply[:0])
		if reply == nil {
			continue
		}
		// src is answered as received: on a dual-stack socket an IPv4
		// client's mapped address is the one the socket can send to.
		if _, err := w.conn.WriteToUDPAddrPort(reply, src); err != nil {
			if w.closed(err) {
				return
			}
			w.f.metrics.ObserveError(reasonWriteError)
			w.f.log.socketError("write", err)
		}
		if cap(reply) > cap(w.reply) {
			w.reply = reply[:0]
		}
	}
}

// runBatched reads up to batch_size datagrams per recvmmsg, answers them
// into the outgoing batch, and sends that with sendmmsg.
func (w *worker) runBatched() {
	for {
		n, err := w.bc.ReadBatch(w.in, 0)
		if err != nil {
			if w.closed(err) {
				return
			}
			w.f.metrics.ObserveError(reasonReadError)
			w.f.log.socketError("read", err)
			continue
		}
		nout := 0
		for i := 0; i < n; i++ {
			m := &w.in[i]
			if m.Flags&msgTrunc != 0 {
				w.f.metrics.ObserveError(reasonOversized)
				continue
			}
			ua, ok := m.Addr.(*net.UDPAddr)
			if !ok {
				continue
			}
			reply := w.h.handle(m.Buffers[0][:m.N], ua.AddrPort(), w.outBufs[nout][:0])
			if reply == nil {
				continue
			}
			if cap(reply) > cap(w.outBufs[nout]) {
				w.outBufs[nout] = reply[:0]
			}
			// The address read is reused for the reply, so that the
			// write allocates nothing.
			w.out[nout].Buffers[0] = reply
			w.out[nout].Addr = ua
			nout++
		}
		if nout > 0 && !w.writeAll(w.out[:nout]) {
			return
		}
	}
}

// writeAll sends the batch, resuming after a partial write and skipping a
// message the kernel refuses. It reports false when the socket is closed.
func (w *worker) writeAll(ms []ipv4.Message) bool {
	for len(ms) > 0 {
		n, err := w.bc.WriteBatch(ms, 0)
		if err != nil {
			if w.closed(err) {
				return false
			}
			w.f.metrics.ObserveError(reasonWriteError)
			w.f.log.socketError("write", err)
			n = 1
		}
		if n <= 0 {
			n = 1
		}
		ms = ms[n:]
	}
	return true
}

// closed reports whether err means the socket was closed, so that the
// goroutine ends instead of spinning on the error.
func (w *worker) closed(err error) bool {
	return errors.Is(err, net.ErrClosed) || w.f.closing.Load()
}
