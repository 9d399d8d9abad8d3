//go:build !linux

package main

import "net"

// batchConn falls back to one system call per datagram where sendmmsg and
// recvmmsg are not available.
type batchConn struct {
	conn *net.UDPConn
}

func newBatchConn(conn *net.UDPConn, max int) (*batchConn, error) {
	return &batchConn{conn: conn}, nil
}

func (b *batchConn) send(bufs [][]byte) (int, error) {
	for i, buf := range bufs {
		if _, err := b.conn.Write(buf); err != nil {
			return i, err
		}
	}
	return len(bufs), nil
}

// recv reads one datagram.
func (b *batchConn) recv(bufs [][]byte, lens []int) (int, error) {
	n, err := b.conn.Read(bufs[0])
	if err != nil {
		return 0, err
	}
	lens[0] = n
	return 1, nil
}

// setBuffers sizes the socket's buffers as far as the system allows.
func setBuffers(conn *net.UDPConn, n int) {
	_ = conn.SetReadBuffer(n)
	_ = conn.SetWriteBuffer(n)
}
