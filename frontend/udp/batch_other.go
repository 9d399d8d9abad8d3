//go:build !linux

package udp

import (
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// batchConn is what ipv4.PacketConn and ipv6.PacketConn have in common.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// batchIO is the portable batch path, through golang.org/x/net's
// ReadBatch and WriteBatch (recvmmsg/sendmmsg where the system has them,
// one datagram per call elsewhere). Unlike the Linux version it allocates
// the source address of every datagram read.
type batchIO struct {
	bc      batchConn
	in      []ipv4.Message
	out     []ipv4.Message
	replies [][]byte
	nin     int
	nout    int
	sent    int
}

func newBatchIO(c *net.UDPConn, n, replyCap int) (*batchIO, error) {
	b := &batchIO{
		in:      make([]ipv4.Message, n),
		out:     make([]ipv4.Message, n),
		replies: make([][]byte, n),
	}
	// The message layout is the same for both families; the IPv6 variant
	// also serves a dual-stack socket.
	if la, ok := c.LocalAddr().(*net.UDPAddr); ok && la.IP.To4() != nil {
		b.bc = ipv4.NewPacketConn(c)
	} else {
		b.bc = ipv6.NewPacketConn(c)
	}
	for i := 0; i < n; i++ {
		b.in[i].Buffers = [][]byte{make([]byte, maxDatagram)}
		b.replies[i] = make([]byte, 0, replyCap)
		b.out[i].Buffers = make([][]byte, 1)
	}
	return b, nil
}

func (b *batchIO) read() (int, error) {
	b.nin, b.nout, b.sent = 0, 0, 0
	n, err := b.bc.ReadBatch(b.in, 0)
	if err != nil {
		return 0, err
	}
	b.nin = n
	return n, nil
}

func (b *batchIO) packet(i int) (p []byte, src netip.AddrPort, truncated bool) {
	m := &b.in[i]
	if m.Flags&msgTrunc != 0 {
		return nil, netip.AddrPort{}, true
	}
	ua, ok := m.Addr.(*net.UDPAddr)
	if !ok {
		return nil, netip.AddrPort{}, false
	}
	return m.Buffers[0][:m.N], ua.AddrPort(), false
}

func (b *batchIO) replyBuf() []byte { return b.replies[b.nout][:0] }

func (b *batchIO) queue(i int, reply []byte) {
	j := b.nout
	if cap(reply) > cap(b.replies[j]) {
		b.replies[j] = reply[:0]
	}
	// The address read is reused for the reply, so that the write
	// allocates nothing.
	b.out[j].Buffers[0] = reply
	b.out[j].Addr = b.in[i].Addr
	b.nout++
}

func (b *batchIO) pending() bool { return b.sent < b.nout }

func (b *batchIO) write() error {
	n, err := b.bc.WriteBatch(b.out[b.sent:b.nout], 0)
	if err != nil || n <= 0 {
		b.sent++
		return err
	}
	b.sent += n
	return nil
}
