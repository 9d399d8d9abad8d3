//go:build !linux

package mmsg

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

// Conn is the portable batch path. Unlike the Linux version it allocates
// the source address of every datagram read.
type Conn struct {
	bc  batchConn
	in  []ipv4.Message
	out []ipv4.Message
}

// New returns a Conn that moves up to n datagrams per call on c.
func New(c *net.UDPConn, n int) (*Conn, error) {
	b := &Conn{in: make([]ipv4.Message, n), out: make([]ipv4.Message, n)}
	// The message layout is the same for both families; the IPv6 variant
	// also serves a dual-stack socket.
	if la, ok := c.LocalAddr().(*net.UDPAddr); ok && la.IP.To4() != nil {
		b.bc = ipv4.NewPacketConn(c)
	} else {
		b.bc = ipv6.NewPacketConn(c)
	}
	for i := 0; i < n; i++ {
		b.in[i].Buffers = make([][]byte, 1)
		b.out[i].Buffers = make([][]byte, 1)
	}
	return b, nil
}

// Read reads at least one datagram, one into each of bufs.
func (b *Conn) Read(bufs [][]byte) (int, error) {
	n := min(len(bufs), len(b.in))
	for i := 0; i < n; i++ {
		b.in[i].Buffers[0] = bufs[i]
	}
	return b.bc.ReadBatch(b.in[:n], 0)
}

// Len returns the length of datagram i of the last Read.
func (b *Conn) Len(i int) int { return b.in[i].N }

// Truncated reports whether datagram i of the last Read was longer than
// its buffer (where the system says so).
func (b *Conn) Truncated(i int) bool { return b.in[i].Flags&msgTrunc != 0 }

// Source returns the sender of datagram i of the last Read.
func (b *Conn) Source(i int) netip.AddrPort {
	ua, ok := b.in[i].Addr.(*net.UDPAddr)
	if !ok {
		return netip.AddrPort{}
	}
	return ua.AddrPort()
}

// Write sends bufs, bufs[k] to the source of datagram to[k] of the last
// Read, or to a connected socket's peer when to is nil. It returns how
// many were taken; when err is set, bufs[n] was refused.
func (b *Conn) Write(bufs [][]byte, to []int) (int, error) {
	n := min(len(bufs), len(b.out))
	if n == 0 {
		return 0, nil
	}
	for k := 0; k < n; k++ {
		b.out[k].Buffers[0] = bufs[k]
		b.out[k].Addr = nil
		if to != nil {
			// The address read is reused, so that the write allocates
			// nothing.
			b.out[k].Addr = b.in[to[k]].Addr
		}
	}
	sent, err := b.bc.WriteBatch(b.out[:n], 0)
	switch {
	case err != nil:
		return max(sent, 0), err
	case sent <= 0:
		return 0, errNothingSent
	}
	return sent, nil
}

// SetBuffers sizes c's socket buffers to n bytes, as far as the system
// allows.
func SetBuffers(c *net.UDPConn, n int) {
	_ = c.SetReadBuffer(n)
	_ = c.SetWriteBuffer(n)
}
