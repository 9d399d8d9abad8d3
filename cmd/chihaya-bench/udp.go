package main

import (
	"encoding/binary"
	"errors"
	"math/bits"
	"net"
	"os"
	"time"

	"github.com/chihaya/chihaya/internal/mmsg"
)

// BEP 15 actions and the connect magic.
const (
	udpActionConnect  = 0
	udpActionAnnounce = 1
	udpActionScrape   = 2
	udpActionError    = 3
	udpProtocolID     = 0x41727101980
)

// maxScrapeHashes is as many hashes as fit a scrape in one datagram.
const maxScrapeHashes = 74

// udpRecvBuf holds the largest reply a generated request can get: 200
// IPv6 peers, or a scrape of maxScrapeHashes.
const udpRecvBuf = 20 + 18*200

type slotKind uint8

const (
	slotFree slotKind = iota
	slotConnect
	slotAnnounce
	slotScrape
)

// udpSlot is one request in flight. Its index is in the low bits of the
// transaction ID, so a reply finds its request without a map.
type udpSlot struct {
	kind   slotKind
	txID   uint32
	sentAt time.Duration // since the run's start
	item   int           // fill: which peer this announce puts in place
}

// udpWorker drives one socket: it keeps up to --inflight requests
// outstanding, sending and receiving them in batches, and reuses its
// connection ID for --conn-id-life as a real client does.
type udpWorker struct {
	cfg  *runConfig
	wl   *Workload
	pk   *Picker
	mc   *mmsg.Conn
	conn *net.UDPConn
	workerBase

	slots    []udpSlot
	free     []int
	slotBits uint
	gen      uint32
	bufs     [][]byte // one request buffer per slot
	out      [][]byte // requests queued for the next send
	outSlots []int
	in       [][]byte
	ann      Announce

	connID     uint64
	haveConn   bool
	connAt     time.Duration
	connecting bool

	budget uint64 // requests still to issue (load modes)

	// fill: this worker's items are fillNext, fillNext+stride, … below
	// fillEnd; item i is peer i%peers of torrent i/peers (round-robin:
	// peer i/torrents of torrent i%torrents).
	fillNext, fillStride, fillEnd int
	retry                         []int
	deadline                      time.Duration // read deadline in force, since start
}

func runUDP(cfg *runConfig, wl *Workload) (Result, error) {
	workers := make([]*udpWorker, cfg.Sockets)
	raddr := net.UDPAddrFromAddrPort(cfg.Target)
	for i := range workers {
		conn, err := net.DialUDP("udp", nil, raddr)
		if err != nil {
			closeUDP(workers)
			return Result{}, err
		}
		mmsg.SetBuffers(conn, 4<<20)
		w, err := newUDPWorker(cfg, wl, i, conn)
		if err != nil {
			conn.Close()
			closeUDP(workers)
			return Result{}, err
		}
		workers[i] = w
	}
	defer closeUDP(workers)

	m := startCPU()
	total := runAll(workers, m.start)
	r := newResult(cfg, &total, m)
	if cfg.Mode == modeFill {
		r.FillWanted = uint64(cfg.Workload.Torrents) * uint64(cfg.Workload.Peers)
		r.FillAcked = total.acked
	}
	return r, nil
}

func closeUDP(ws []*udpWorker) {
	for _, w := range ws {
		if w != nil {
			w.conn.Close()
		}
	}
}

func newUDPWorker(cfg *runConfig, wl *Workload, id int, conn *net.UDPConn) (*udpWorker, error) {
	n := cfg.Inflight
	mc, err := mmsg.New(conn, n)
	if err != nil {
		return nil, err
	}
	w := &udpWorker{
		cfg: cfg, wl: wl, pk: wl.NewPicker(id), mc: mc, conn: conn,
		slots: make([]udpSlot, n), free: make([]int, 0, n),
		slotBits: uint(bits.Len(uint(n - 1))),
		bufs:     make([][]byte, n), out: make([][]byte, 0, n), outSlots: make([]int, 0, n),
		in:    make([][]byte, n),
		retry: make([]int, 0, n),
	}
	for i := n - 1; i >= 0; i-- {
		w.free = append(w.free, i)
		w.bufs[i] = make([]byte, 0, 16+20*maxScrapeHashes)
		w.in[i] = make([]byte, udpRecvBuf)
	}
	w.budget = cfg.budget(id)
	w.fillNext, w.fillStride = id, cfg.Sockets
	w.fillEnd = cfg.Workload.Torrents * cfg.Workload.Peers
	return w, nil
}

// tick is how often outstanding requests are checked for a timeout.
func (w *udpWorker) tick() time.Duration {
	t := w.cfg.Timeout / 4
	return min(max(t, time.Millisecond), 100*time.Millisecond)
}

func (w *udpWorker) run() {
	end := w.cfg.Duration
	tick := w.tick()
	var lastScan time.Duration
	for {
		now := time.Since(w.start)
		if now >= end {
			return
		}
		if now-lastScan >= tick {
			w.expire(now)
			lastScan = now
		}
		w.queue(now)
		if len(w.free) == len(w.slots) && len(w.out) == 0 {
			return // nothing in flight and nothing left to send
		}
		w.flush(now)
		if !w.receive(now, end, tick) {
			return
		}
	}
}

// expire frees the slots whose requests got no reply in time; a fill
// announce is queued again, since each peer must be acknowledged.
func (w *udpWorker) expire(now time.Duration) {
	for i := range w.slots {
		s := &w.slots[i]
		if s.kind == slotFree || now-s.sentAt < w.cfg.Timeout {
			continue
		}
		w.st.errs[errTimeout]++
		switch s.kind {
		case slotConnect:
			w.connecting = false
		case slotAnnounce:
			if w.cfg.Mode == modeFill {
				w.retry = append(w.retry, s.item)
			}
		}
		w.release(i)
	}
}

func (w *udpWorker) release(i int) {
	w.slots[i].kind = slotFree
	w.free = append(w.free, i)
}

// take claims a free slot for a request of kind and returns its index and
// transaction ID.
func (w *udpWorker) take(kind slotKind) (int, uint32) {
	i := w.free[len(w.free)-1]
	w.free = w.free[:len(w.free)-1]
	w.gen++
	tx := w.gen<<w.slotBits | uint32(i)
	w.slots[i] = udpSlot{kind: kind, txID: tx}
	return i, tx
}

// queue fills free slots with requests: a connect when the connection ID is
// missing or a minute old (the old one is used until the new one arrives,
// as clients do), then announces or scrapes.
func (w *udpWorker) queue(now time.Duration) {
	if (!w.haveConn || now-w.connAt >= w.cfg.ConnIDLife) && !w.connecting && len(w.free) > 0 && w.hasWork() {
		i, tx := w.take(slotConnect)
		b := binary.BigEndian.AppendUint64(w.bufs[i][:0], udpProtocolID)
		b = binary.BigEndian.AppendUint32(b, udpActionConnect)
		b = binary.BigEndian.AppendUint32(b, tx)
		w.push(i, b)
		w.connecting = true
	}
	if !w.haveConn {
		return
	}
	for len(w.free) > 0 {
		switch w.cfg.Mode {
		case modeFill:
			var item int
			switch {
			case len(w.retry) > 0:
				item = w.retry[len(w.retry)-1]
				w.retry = w.retry[:len(w.retry)-1]
			case w.fillNext < w.fillEnd:
				item = w.fillNext
				w.fillNext += w.fillStride
			default:
				return
			}
			t, p := item/w.cfg.Workload.Peers, item%w.cfg.Workload.Peers
			if w.cfg.FillRoundRobin {
				t, p = item%w.cfg.Workload.Torrents, item/w.cfg.Workload.Torrents
			}
			w.wl.FillAnnounce(&w.ann, t, p, int32(w.cfg.FillNumWant))
			i, tx := w.take(slotAnnounce)
			w.slots[i].item = item
			w.push(i, appendUDPAnnounce(w.bufs[i][:0], w.connID, tx, w.wl, &w.ann))
		case modeUDPScrape:
			if w.budget == 0 {
				return
			}
			w.budget--
			i, tx := w.take(slotScrape)
			w.push(i, appendUDPScrape(w.bufs[i][:0], w.connID, tx, w.pk, w.cfg.ScrapeHashes))
		default:
			if w.budget == 0 {
				return
			}
			w.budget--
			w.pk.Next(&w.ann)
			i, tx := w.take(slotAnnounce)
			w.push(i, appendUDPAnnounce(w.bufs[i][:0], w.connID, tx, w.wl, &w.ann))
		}
	}
}

// hasWork reports whether requests remain to be issued.
func (w *udpWorker) hasWork() bool {
	if w.cfg.Mode == modeFill {
		return len(w.retry) > 0 || w.fillNext < w.fillEnd
	}
	return w.budget > 0
}

func (w *udpWorker) push(i int, b []byte) {
	w.bufs[i] = b
	w.out = append(w.out, b)
	w.outSlots = append(w.outSlots, i)
}

func (w *udpWorker) flush(now time.Duration) {
	if len(w.out) == 0 {
		return
	}
	for _, i := range w.outSlots {
		w.slots[i].sentAt = now
	}
	n, err := w.send()
	w.st.sent += uint64(n)
	if err != nil {
		// The unsent requests stay in their slots and time out, so that
		// a fill retries them.
		w.st.errs[errSend]++
	}
	w.out = w.out[:0]
	w.outSlots = w.outSlots[:0]
}

// send sends the queued requests and returns how many went out before an
// error.
func (w *udpWorker) send() (int, error) {
	sent := 0
	for sent < len(w.out) {
		n, err := w.mc.Write(w.out[sent:], nil)
		sent += n
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// receive waits up to one tick for replies and handles those that came. It
// reports false when the socket is unusable.
func (w *udpWorker) receive(now, end, tick time.Duration) bool {
	if w.deadline-now < tick/2 || w.deadline > end {
		w.deadline = min(now+tick, end)
		_ = w.conn.SetReadDeadline(w.start.Add(w.deadline))
	}
	n, err := w.mc.Read(w.in)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
		case errors.Is(err, net.ErrClosed):
			return false
		default:
			// ECONNREFUSED: nothing listens (yet); the requests time out.
			w.st.errs[errRecv]++
		}
		return true
	}
	at := time.Since(w.start)
	for k := 0; k < n; k++ {
		w.handle(w.in[k][:w.mc.Len(k)], at)
	}
	return true
}

// handle matches a reply to its request by transaction ID and counts it.
func (w *udpWorker) handle(p []byte, at time.Duration) {
	if len(p) < 8 {
		w.st.errs[errBadReply]++
		return
	}
	action := binary.BigEndian.Uint32(p)
	tx := binary.BigEndian.Uint32(p[4:])
	i := int(tx & (1<<w.slotBits - 1))
	if i >= len(w.slots) || w.slots[i].kind == slotFree || w.slots[i].txID != tx {
		w.st.errs[errStale]++
		return
	}
	s := &w.slots[i]
	ok := false
	switch {
	case action == udpActionError:
		w.st.errs[errTracker]++
		// A fill does not retry a refused peer: a tracker that refuses
		// the torrent (opentracker without it on its whitelist) would
		// refuse it forever, and the fill reports the peers it missed.
		if s.kind == slotConnect {
			w.connecting = false
		} else {
			// Perhaps an expired connection ID: get a new one.
			w.haveConn = false
		}
		w.release(i)
		return
	case s.kind == slotConnect && action == udpActionConnect && len(p) >= 16:
		w.connID = binary.BigEndian.Uint64(p[8:])
		w.haveConn, w.connAt, w.connecting = true, at, false
		w.st.connects++
		w.release(i)
		return
	case s.kind == slotAnnounce && action == udpActionAnnounce:
		ok = len(p) >= 20 && ((len(p)-20)%6 == 0 || (len(p)-20)%18 == 0)
	case s.kind == slotScrape && action == udpActionScrape:
		ok = len(p) >= 8+12*w.cfg.ScrapeHashes
	}
	if !ok {
		w.st.errs[errBadReply]++
		switch {
		case s.kind == slotConnect:
			w.connecting = false
		case s.kind == slotAnnounce && w.cfg.Mode == modeFill:
			w.retry = append(w.retry, s.item)
		}
		w.release(i)
		return
	}
	w.st.responses++
	w.st.hist.Record(at - s.sentAt)
	if w.cfg.Mode == modeFill {
		w.st.acked++
	}
	w.release(i)
}

// appendUDPAnnounce appends a BEP 15 announce (98 bytes) for a.
func appendUDPAnnounce(b []byte, connID uint64, tx uint32, wl *Workload, a *Announce) []byte {
	b = binary.BigEndian.AppendUint64(b, connID)
	b = binary.BigEndian.AppendUint32(b, udpActionAnnounce)
	b = binary.BigEndian.AppendUint32(b, tx)
	b = append(b, wl.InfoHash(a.Torrent)[:]...)
	b = append(b, make([]byte, 20)...) // compiled to a zeroing append, no allocation
	wl.PeerID((*[20]byte)(b[len(b)-20:]), a.Torrent, a.Peer)
	b = binary.BigEndian.AppendUint64(b, 0) // downloaded
	b = binary.BigEndian.AppendUint64(b, a.Left)
	b = binary.BigEndian.AppendUint64(b, 0) // uploaded
	b = binary.BigEndian.AppendUint32(b, uint32(a.Event))
	b = binary.BigEndian.AppendUint32(b, 0) // ip: the source address
	b = binary.BigEndian.AppendUint32(b, uint32(wl.peerMix(a.Torrent, a.Peer)))
	b = binary.BigEndian.AppendUint32(b, uint32(a.NumWant))
	return binary.BigEndian.AppendUint16(b, wl.Port(a.Peer))
}

// appendUDPScrape appends a BEP 15 scrape of n torrents drawn by
// popularity.
func appendUDPScrape(b []byte, connID uint64, tx uint32, pk *Picker, n int) []byte {
	b = binary.BigEndian.AppendUint64(b, connID)
	b = binary.BigEndian.AppendUint32(b, udpActionScrape)
	b = binary.BigEndian.AppendUint32(b, tx)
	for range n {
		b = append(b, pk.w.InfoHash(pk.Torrent())[:]...)
	}
	return b
}
