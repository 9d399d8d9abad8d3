// Package mmsg moves the datagrams of one UDP socket in batches: on Linux
// with recvmmsg(2) and sendmmsg(2), called directly; elsewhere through
// golang.org/x/net's ReadBatch and WriteBatch (one datagram per call where
// the system has no batch calls). The UDP frontend and chihaya-bench share
// it.
//
// On Linux it is called directly rather than through golang.org/x/net,
// whose ReadBatch allocates a net.IP and a *net.UDPAddr for every datagram
// read. Here every structure the kernel reads or fills is allocated once
// per Conn: the message headers, their iovecs and one raw socket address
// per slot, which is decoded in place into a netip.AddrPort and handed
// back to the kernel, untouched, as a reply's destination (so a
// link-local client's scope survives the round trip).
//
// A server reads a batch, then answers some of its datagrams:
//
//	n, err := c.Read(bufs)
//	for i := 0; i < n; i++ {
//		p, src := bufs[i][:c.Len(i)], c.Source(i)
//		... replies = append(replies, reply); to = append(to, i)
//	}
//	for sent := 0; sent < len(replies); {
//		k, err := c.Write(replies[sent:], to[sent:])
//		sent += k
//		if err != nil {
//			sent++ // skip the reply the kernel refused
//		}
//	}
//
// A client on a connected socket passes nil as Write's destinations.
package mmsg

import "errors"

// errNothingSent is returned by Write when the system took no datagram
// and reported no error, so that a caller's loop always moves on.
var errNothingSent = errors.New("mmsg: no datagram sent")
