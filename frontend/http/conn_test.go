package http

import (
	"net"
	"testing"
)

// nullConn is a connection whose reads return a request and whose writes
// vanish, so that a benchmark sees only the cost of what wraps it.
type nullConn struct {
	net.Conn
	req []byte
}

func (c *nullConn) Read(p []byte) (int, error)  { return copy(p, c.req), nil }
func (c *nullConn) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkConn measures what conn, which keeps net/http's own error
// answers off the wire, adds to each request: one read of the request and
// one write of the reply, against the bare connection. "accept" is the
// wrapping of an accepted connection.
func BenchmarkConn(b *testing.B) {
	req := []byte("GET /announce?info_hash=aaaaaaaaaaaaaaaaaaaa&peer_id=bbbbbbbbbbbbbbbbbbbb&port=6881 HTTP/1.1\r\nHost: x\r\n\r\n")
	reply := []byte("HTTP/1.1 200 OK\r\nContent-Length: 90\r\nContent-Type: text/plain\r\n\r\nd8:completei1e10:incompletei0e8:intervali1800e12:min intervali900e5:peers0:e")
	f := &Frontend{}
	buf := make([]byte, 4096)
	bare := &nullConn{req: req}
	for _, bc := range []struct {
		name string
		c    net.Conn
	}{
		{"read+write/bare", bare},
		{"read+write/wrapped", &conn{Conn: bare, f: f}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.c.Read(buf); err != nil {
					b.Fatal(err)
				}
				if _, err := bc.c.Write(reply); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("accept", func(b *testing.B) {
		ln := &listener{Listener: oneConnListener{bare}, f: f}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ln.Accept(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

type oneConnListener struct{ c net.Conn }

func (l oneConnListener) Accept() (net.Conn, error) { return l.c, nil }
func (l oneConnListener) Close() error              { return nil }
func (l oneConnListener) Addr() net.Addr            { return nil }
