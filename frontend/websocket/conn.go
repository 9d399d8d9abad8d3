package websocket

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	nethttp "net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gws "github.com/gorilla/websocket"

	"github.com/chihaya/chihaya/bittorrent"
)

// conn is one WebSocket connection: a browser, with every torrent it
// announces through this tracker.
type conn struct {
	f  *Frontend
	ws *gws.Conn
	// nc is the connection under ws, through which the reader waits for
	// the next message (see waitMessage).
	nc *peekConn
	// key is the connection's remote address and port: the peer's
	// address in the store, which identifies the connection.
	key    netip.AddrPort
	addr   netip.Addr
	af     bittorrent.AddressFamily
	params bittorrent.Params

	mu sync.Mutex
	// swarms holds the peer ID this connection announced in each swarm:
	// a slice, since most browsers are in a swarm or two, and a map per
	// connection would cost several times its 40 bytes a swarm.
	swarms []membership
	// queue holds the messages waiting for the writer; writing is set
	// while a writer goroutine drains it.
	queue   []*[]byte
	writing bool
	closed  bool

	// br is gorilla/websocket's buffered reader (ours, handed over at the
	// upgrade), which may hold the start of the next message.
	br *bufio.Reader
	// The reader parks (see poller) when nothing is left to read: state
	// is parked then, and whoever swaps it to running (the poller, the
	// idle sweep, kill) starts the reader again with serveFn, made once
	// so that starting it allocates nothing.
	state  atomic.Int32
	fd     int32       // the socket's number in the poller, -1 if not parkable
	armed  atomic.Bool // the socket was put in the poller's epoll set
	killed atomic.Bool
	// seen: the connection has sent a message; busy: its last one came
	// within parkAfter of the one before (see serve). Only its reader
	// touches them.
	seen, busy bool
	serveFn    func()
	drainFn    func() // drain, made once like serveFn
	// lastRead is when the connection last sent something (Unix
	// nanoseconds), from which its idle deadline runs.
	lastRead atomic.Int64
}

const (
	running int32 = iota
	parked
)

// membership is a swarm a connection announced in, with its peer ID there.
type membership struct {
	ih bittorrent.InfoHash
	id bittorrent.PeerID
}

// swarm returns the peer ID c announced in ih.
func (c *conn) swarm(ih bittorrent.InfoHash) (bittorrent.PeerID, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.swarms {
		if c.swarms[i].ih == ih {
			return c.swarms[i].id, true
		}
	}
	return bittorrent.PeerID{}, false
}

func (c *conn) swarmCount() int {
	c.mu.Lock()
	n := len(c.swarms)
	c.mu.Unlock()
	return n
}

// serve reads messages until the connection ends, then leaves every
// swarm; or parks the connection and returns: at once after a message
// that came alone, or once a busy connection has been quiet for
// parkAfter. Its own frame is kept small (the work is in next): the wait
// below it is where a connection without a poller spends its life, and a
// shallow stack there lets the garbage collector shrink the goroutine's
// stack.
func (c *conn) serve() {
	parkable := c.f.poller != nil && c.fd >= 0
	// Started by a wake or by the upgrade, the reader reads before it
	// parks again.
	woken := true
	for {
		// A message may have come in with the last one, read from the
		// socket already.
		if !c.buffered() {
			if parkable && !woken && !c.busy && c.park() {
				return
			}
			idleAt := time.Unix(0, c.lastRead.Load()).Add(c.f.cfg.IdleTimeout)
			deadline := idleAt
			if soon := time.Now().Add(parkAfter); parkable && c.busy && soon.Before(deadline) {
				deadline = soon
			}
			_ = c.ws.SetReadDeadline(deadline)
			if err := c.nc.wait(); err != nil {
				if deadline.Before(idleAt) && isTimeout(err) {
					// Quiet for parkAfter: no longer busy.
					c.busy, woken = false, false
					continue
				}
				c.readFailed(err)
				break
			}
			if deadline.Before(idleAt) {
				// The rest of the message may still be on its way: it
				// has until the idle deadline, not the wait's.
				_ = c.ws.SetReadDeadline(idleAt)
			}
		}
		now := time.Now().UnixNano()
		c.busy = c.seen && now-c.lastRead.Load() < int64(parkAfter)
		c.seen, woken = true, false
		c.lastRead.Store(now)
		if !c.next() {
			break
		}
	}
	c.close()
	c.f.active.Done()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// buffered reports whether part of a message was read from the socket
// and not handled yet.
func (c *conn) buffered() bool {
	return c.nc.pend != nil || c.br != nil && c.br.Buffered() > 0
}

// next reads and handles one message; false ends the connection.
//
//go:noinline
func (c *conn) next() bool {
	f := c.f
	typ, r, err := c.ws.NextReader()
	if err != nil {
		c.readFailed(err)
		return false
	}
	if typ != gws.TextMessage {
		f.metrics.ObserveError(reasonBinaryFrame)
		c.closeWith(gws.CloseUnsupportedData, "binary frames are not accepted: send JSON text")
		return false
	}
	buf := f.getBuf()
	b, err := readAll(r, (*buf)[:0])
	*buf = b
	if err != nil {
		f.putBuf(buf)
		c.readFailed(err)
		return false
	}
	f.handle(c, b)
	f.putBuf(buf)
	return true
}

// readAll appends what r has to b, growing it as needed; the read limit
// bounds it.
func readAll(r io.Reader, b []byte) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// readFailed counts why reading ended, and tells the client where it can.
func (c *conn) readFailed(err error) {
	var ne net.Error
	switch {
	case errors.Is(err, gws.ErrReadLimit):
		// gorilla/websocket has sent the close frame (1009).
		c.f.metrics.ObserveError(reasonMessageTooBig)
	case errors.As(err, &ne) && ne.Timeout():
		c.f.metrics.ObserveError(reasonIdleTimeout)
		c.closeWith(gws.CloseNormalClosure, "idle timeout")
	case gws.IsCloseError(err, gws.CloseNormalClosure, gws.CloseGoingAway, gws.CloseNoStatusReceived),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		// The client left.
	default:
		var ce *gws.CloseError
		if !errors.As(err, &ce) {
			c.f.metrics.ObserveError(reasonProtocolError)
		}
	}
}

// closeWith sends a close frame with code and text.
func (c *conn) closeWith(code int, text string) {
	_ = c.ws.WriteControl(gws.CloseMessage, gws.FormatCloseMessage(code, text), time.Now().Add(time.Second))
}

// close ends the connection: the peer leaves every swarm it announced in,
// as after a `stopped`, and queued messages are dropped.
func (c *conn) close() {
	f := c.f
	c.mu.Lock()
	c.closed = true
	swarms := c.swarms
	c.swarms = nil
	for _, b := range c.queue {
		f.putBuf(b)
	}
	c.queue = nil
	c.mu.Unlock()
	f.unregister(c)
	connectionsOpen.Dec()
	if f.poller != nil {
		f.poller.remove(c)
	}
	_ = c.ws.Close()

	st := f.states.Get().(*state)
	for _, ms := range swarms {
		ih, id := ms.ih, ms.id
		k := bindKey{ih, id, c.af}
		f.bindMu.Lock()
		if f.bindings[k] == c {
			delete(f.bindings, k)
		}
		f.bindMu.Unlock()
		st.ann = bittorrent.AnnounceRequest{
			InfoHash:   ih,
			Peer:       bittorrent.Peer{ID: id, Kind: bittorrent.WebSocketPeer, AddrPort: c.key},
			Event:      bittorrent.Stopped,
			RemoteAddr: c.addr,
			Params:     c.params,
		}
		st.resp = bittorrent.AnnounceResponse{Peers: st.resp.Peers[:0]}
		f.leave(&st.ann, &st.resp)
	}
	f.putState(st)
	f.dropOffers(c)
}

// send queues buf (given up by the caller), a message relayed from
// another connection, for the connection's writer. A closed connection or
// a full queue drops it.
func (c *conn) send(buf *[]byte) relayResult { return c.enqueue(buf, c.f.cfg.SendQueueMessages) }

// reply queues the answer to the connection's own message. Replies may
// use twice the queue: a browser flooded with offers still hears back
// about its own announces, while one that floods the tracker without
// reading is still bounded.
func (c *conn) reply(buf *[]byte) relayResult { return c.enqueue(buf, 2*c.f.cfg.SendQueueMessages) }

func (c *conn) enqueue(buf *[]byte, limit int) relayResult {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.f.putBuf(buf)
		return relayPeerGone
	}
	if len(c.queue) >= limit {
		c.mu.Unlock()
		c.f.putBuf(buf)
		c.f.metrics.ObserveError(reasonSendQueueFull)
		return relayQueueFull
	}
	c.queue = append(c.queue, buf)
	start := !c.writing
	if start {
		c.writing = true
		// The connection's reader is still counted (closed is unset), so
		// the count is above zero here.
		c.f.active.Add(1)
	}
	c.mu.Unlock()
	if start {
		go c.drainFn()
	}
	return relaySent
}

// drain writes the queue until it is empty: all the messages queued at
// once go out in one write (framed into the connection's batch, see
// peekConn), since a system call per message is most of the relay's cost.
// A write that fails or times out closes the connection.
func (c *conn) drain() {
	defer c.f.active.Done()
	var batch []*[]byte
	for {
		c.mu.Lock()
		if len(c.queue) == 0 || c.closed {
			for _, b := range c.queue {
				c.f.putBuf(b)
			}
			c.queue = c.queue[:0]
			if cap(c.queue) < cap(batch) && cap(batch) <= maxKeptQueue {
				// The connection keeps a queue's space for its next
				// messages, unless a burst made it large.
				c.queue = batch[:0]
			}
			if cap(c.queue) > maxKeptQueue {
				c.queue = nil
			}
			c.writing = false
			c.mu.Unlock()
			return
		}
		batch, c.queue = c.queue, batch[:0]
		c.mu.Unlock()

		deadline := time.Now().Add(c.f.cfg.WriteTimeout)
		c.nc.startBatch()
		var err error
		for i, buf := range batch {
			if err == nil {
				err = c.nc.writeText(*buf)
			}
			c.f.putBuf(buf)
			batch[i] = nil
		}
		if ferr := c.nc.flush(deadline); err == nil {
			err = ferr
		}
		if err != nil {
			c.f.metrics.ObserveError(reasonWriteTimeout)
			c.mu.Lock()
			c.closed = true
			c.mu.Unlock()
			// The reader sees the socket closed and cleans up.
			c.kill()
		}
	}
}

// maxKeptQueue: a connection keeps the space of a send queue up to this
// many messages between bursts.
const maxKeptQueue = 4

// tlsListener serves TLS on ln.
func tlsListener(ln net.Listener, cfg *tls.Config) net.Listener {
	return tls.NewListener(ln, cfg)
}

// peekConn is the network connection under a WebSocket connection. Its
// reader waits for the next message with wait, not inside
// gorilla/websocket: the frames of that wait are few, so while the
// connection is idle (most of its life) its goroutine's stack stays
// small. Once a message starts, wait reads what has arrived into a pooled
// buffer, usually the whole message, which goes back to the pool once
// gorilla/websocket has read it: an idle connection holds none.
//
// Its writer gathers the frames gorilla/websocket writes between
// startBatch and flush into one write. gorilla/websocket never writes two
// frames at once, so frames are gathered whole, its control frames (close,
// pong) included.
type peekConn struct {
	net.Conn
	// pend holds what wait read and Read has not handed out yet.
	pend *[]byte
	off  int
	// first is wait's one-byte read: in the struct, as a local it would
	// escape to the heap through the io.Reader call.
	first [1]byte
	// rc is the socket of a plain TCP connection, which wait reads
	// itself: one system call a message instead of three (a read that
	// finds nothing, then one byte, then the rest). readFn is readSocket,
	// made once; rerr is its error.
	rc     syscall.RawConn
	readFn func(fd uintptr) bool
	rerr   error

	wmu       sync.Mutex
	batching  bool
	batch     *[]byte // from batchPool while batching
	closeSent bool    // gorilla/websocket wrote a close frame
}

// errCloseSent: no message may follow a close frame.
var errCloseSent = errors.New("websocket: close frame sent")

var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, 8<<10); return &b }}

// Write is gorilla/websocket's: the upgrade's response and control
// frames, each in one call.
func (p *peekConn) Write(b []byte) (int, error) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if len(b) > 0 && b[0] == 0x88 { // FIN, opcode 8: close
		p.closeSent = true
	}
	if p.batching {
		*p.batch = append(*p.batch, b...)
		return len(b), nil
	}
	return p.Conn.Write(b)
}

// writeText frames msg as a text message (RFC 6455 5.2: a server's frames
// are not masked) into the batch, between startBatch and flush. Framing
// here rather than in gorilla/websocket's writer saves a copy and the
// allocation its write buffer pool costs per message.
func (p *peekConn) writeText(msg []byte) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.closeSent {
		return errCloseSent
	}
	b := *p.batch
	switch n := len(msg); {
	case n < 126:
		b = append(b, 0x81, byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x81, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x81, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	*p.batch = append(b, msg...)
	return nil
}

func (p *peekConn) startBatch() {
	p.wmu.Lock()
	p.batching = true
	p.batch = batchPool.Get().(*[]byte)
	p.wmu.Unlock()
}

// flush writes what was gathered since startBatch, by the deadline.
func (p *peekConn) flush(deadline time.Time) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.batching = false
	b := p.batch
	p.batch = nil
	var err error
	if len(*b) > 0 {
		_ = p.Conn.SetWriteDeadline(deadline)
		_, err = p.Conn.Write(*b)
	}
	if cap(*b) <= maxPooledBuffer {
		*b = (*b)[:0]
		batchPool.Put(b)
	}
	return err
}

// readPool holds the buffers wait reads into: 8 KiB, so that an announce
// with five offers (4 to 5 KB) comes in one read.
var readPool = sync.Pool{New: func() any { b := make([]byte, 8<<10); return &b }}

// wait blocks until the peer sends something, or the read deadline. It
// waits on a one-byte read, holding no buffer, and only then takes one
// from the pool for what else has arrived (a frame is at least two
// bytes, so that read does not wait long).
func (p *peekConn) wait() error {
	if p.pend != nil {
		return nil
	}
	if p.rc != nil {
		// Go's netpoller waits, with the read deadline, whenever
		// readSocket finds nothing.
		p.rerr = nil
		if err := p.rc.Read(p.readFn); err != nil {
			return err
		}
		return p.rerr
	}
	for {
		n, err := p.Conn.Read(p.first[:])
		if n == 1 {
			break
		}
		if err != nil {
			return err
		}
	}
	b := readPool.Get().(*[]byte)
	(*b)[0] = p.first[0]
	// An error here comes back on gorilla's next read, after the byte.
	n, _ := p.Conn.Read((*b)[1:cap(*b)])
	*b = (*b)[:1+n]
	p.pend, p.off = b, 0
	return nil
}

func (p *peekConn) Read(b []byte) (int, error) {
	if p.pend == nil {
		return p.Conn.Read(b)
	}
	n := copy(b, (*p.pend)[p.off:])
	p.off += n
	if p.off == len(*p.pend) {
		*p.pend = (*p.pend)[:cap(*p.pend)]
		readPool.Put(p.pend)
		p.pend = nil
	}
	return n, nil
}

// hijacker hands gorilla/websocket the connection wrapped in a peekConn.
type hijacker struct {
	nethttp.ResponseWriter
	c *conn
}

func (h hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := h.ResponseWriter.(nethttp.Hijacker).Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.c.nc = &peekConn{Conn: nc}
	h.c.nc.useSocket()
	if brw.Reader.Buffered() > 0 {
		// gorilla/websocket refuses the upgrade for it.
		return h.c.nc, brw, nil
	}
	// Our reader, not net/http's, so that c.buffered can see into it;
	// gorilla/websocket reuses one larger than 256 bytes (Upgrader's
	// ReadBufferSize is 0).
	h.c.br = bufio.NewReaderSize(h.c.nc, readBufferSize)
	return h.c.nc, bufio.NewReadWriter(h.c.br, brw.Writer), nil
}
