// Package udp is the UDP tracker frontend of BEP 15, with the URL data
// options of BEP 41.
//
// Several sockets share the listening address through SO_REUSEPORT, each
// read by one goroutine that owns all the memory it needs: datagrams are
// read and written in batches (recvmmsg/sendmmsg, called directly on Linux
// so that not even the source address is allocated), parsed in place,
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

	"github.com/chihaya/chihaya/frontend"
)

// actions are what a UDP tracker serves (BEP 15).
var actions = []frontend.Action{frontend.Announce, frontend.Scrape, frontend.Connect}

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
		metrics: frontend.NewMetrics("udp", cfg.EnableRequestTiming, actions...),
		stopped: make(chan struct{}),
	}
	f.metrics.KnownErrors(reasonShortPacket, reasonOversized, reasonUnknownAction, reasonAmplification, reasonReadError, reasonWriteError)
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

// worker reads one socket. All of its state is its own.
type worker struct {
	f    *Frontend
	conn *net.UDPConn
	h    *handler

	// batch is set in batched mode (batch_size > 1).
	batch *batchIO
	// fan answers a batch's datagrams concurrently, when the logic's
	// requests share round trips (fanout.go); idx is the batch's
	// datagrams it answers.
	fan *fanout
	idx []int

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
	if f.cfg.BatchSize == 1 {
		w.buf = make([]byte, maxDatagram)
		w.reply = make([]byte, 0, replyCap)
		return w, nil
	}
	b, err := newBatchIO(c, f.cfg.BatchSize, replyCap)
	if err != nil {
		return nil, fmt.Errorf("udp: %w", err)
	}
	w.batch = b
	if r, ok := f.logic.(frontend.RoundTripSharer); ok && r.SharesRoundTrips() {
		w.fan = newFanout(ctx, f, b, f.cfg.BatchSize)
		w.idx = make([]int, 0, f.cfg.BatchSize)
	}
	return w, nil
}

func (w *worker) run() {
	defer w.f.wg.Done()
	if w.batch != nil {
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
			if w.failed("read", reasonReadError, err) {
				return
			}
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
		if _, err := w.conn.WriteToUDPAddrPort(reply, src); err != nil && w.failed("write", reasonWriteError, err) {
			return
		}
		if cap(reply) > cap(w.reply) {
			w.reply = reply[:0]
		}
	}
}

// runBatched reads up to batch_size datagrams per recvmmsg, answers them
// into the outgoing batch, and sends that with sendmmsg. Each reply is
// complete in the batch before the logic's After step for its request
// runs, so the swarm update never changes what the client is told.
func (w *worker) runBatched() {
	b := w.batch
	if w.fan != nil {
		defer w.fan.stop()
	}
	for {
		n, err := b.read()
		if err != nil {
			if w.failed("read", reasonReadError, err) {
				return
			}
			continue
		}
		w.idx = w.idx[:0]
		for i := 0; i < n; i++ {
			p, src, truncated := b.packet(i)
			if truncated {
				w.f.metrics.ObserveError(reasonOversized)
				continue
			}
			if !src.IsValid() {
				continue
			}
			if w.fan != nil {
				w.idx = append(w.idx, i)
			} else if reply := w.h.handle(p, src, b.replyBuf(i)); reply != nil {
				b.queue(i, reply)
			}
		}
		if w.fan != nil {
			w.fan.run(w.idx)
			for _, i := range w.idx {
				if reply := w.fan.slots[i].reply; reply != nil {
					b.queue(i, reply)
				}
			}
		}
		if !w.writeAll() {
			return
		}
	}
}

// writeAll sends the queued replies, resuming after a partial write and
// skipping a reply the kernel refuses. It reports false when the socket is
// closed.
func (w *worker) writeAll() bool {
	for w.batch.pending() {
		if err := w.batch.write(); err != nil && w.failed("write", reasonWriteError, err) {
			return false
		}
	}
	return true
}

// failed handles a socket error of op ("read", "write"): it reports true
// when the socket was closed, and otherwise counts the error under reason
// and logs it (rate-limited) for the goroutine to go on.
func (w *worker) failed(op, reason string, err error) (closed bool) {
	if w.closed(err) {
		return true
	}
	w.f.metrics.ObserveError(reason)
	w.f.log.socketError(op, err)
	return false
}

// closed reports whether err means the socket was closed, so that the
// goroutine ends instead of spinning on the error.
func (w *worker) closed(err error) bool {
	return errors.Is(err, net.ErrClosed) || w.f.closing.Load()
}
