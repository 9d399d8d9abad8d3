package udp

import (
	"net"
	"net/netip"

	"github.com/chihaya/chihaya/internal/mmsg"
)

// batchIO is one socket goroutine's batch of datagrams read and replies
// queued, over internal/mmsg (recvmmsg and sendmmsg on Linux). Every
// buffer is allocated once per socket, and a reply goes back to its
// request's source address as the kernel gave it. It is not safe for
// concurrent use.
type batchIO struct {
	mc   *mmsg.Conn
	bufs [][]byte // read buffers, one per slot
	nin  int      // datagrams read by the last read

	replies [][]byte // one reply buffer per slot
	out     [][]byte // replies queued
	to      []int    // the datagram each queued reply answers
	sent    int      // replies handed to the kernel or skipped
}

func newBatchIO(c *net.UDPConn, n, replyCap int) (*batchIO, error) {
	mc, err := mmsg.New(c, n)
	if err != nil {
		return nil, err
	}
	b := &batchIO{
		mc:      mc,
		bufs:    make([][]byte, n),
		replies: make([][]byte, n),
		out:     make([][]byte, 0, n),
		to:      make([]int, 0, n),
	}
	for i := 0; i < n; i++ {
		b.bufs[i] = make([]byte, maxDatagram)
		b.replies[i] = make([]byte, 0, replyCap)
	}
	return b, nil
}

// read waits for at least one datagram and reads as many as are queued, up
// to the batch size. It also forgets the replies of the previous batch.
func (b *batchIO) read() (int, error) {
	b.nin, b.out, b.to, b.sent = 0, b.out[:0], b.to[:0], 0
	n, err := b.mc.Read(b.bufs)
	if err != nil {
		return 0, err
	}
	b.nin = n
	return n, nil
}

// packet returns datagram i of the last read and its source. truncated is
// set when it was longer than the read buffer; src is invalid when the
// source is not an IP address (which a UDP socket never reports).
func (b *batchIO) packet(i int) (p []byte, src netip.AddrPort, truncated bool) {
	if b.mc.Truncated(i) {
		return nil, netip.AddrPort{}, true
	}
	return b.bufs[i][:b.mc.Len(i)], b.mc.Source(i), false
}

// replyBuf returns the empty buffer the reply to datagram i is appended
// to: each datagram has its own, so that replies may be built together.
func (b *batchIO) replyBuf(i int) []byte { return b.replies[i][:0] }

// queue adds reply, built on replyBuf(i), to the outgoing batch, addressed
// to the source of datagram i.
func (b *batchIO) queue(i int, reply []byte) {
	if cap(reply) > cap(b.replies[i]) {
		b.replies[i] = reply[:0]
	}
	b.out = append(b.out, reply)
	b.to = append(b.to, i)
}

// pending reports whether queued replies remain to be written.
func (b *batchIO) pending() bool { return b.sent < len(b.out) }

// write hands the queued replies to the kernel, as many as it takes in one
// call. A reply the kernel refuses is skipped and its error returned, so
// that one bad destination does not hold up the rest of the batch.
func (b *batchIO) write() error {
	n, err := b.mc.Write(b.out[b.sent:], b.to[b.sent:])
	b.sent += n
	if err != nil {
		b.sent++
	}
	return err
}
