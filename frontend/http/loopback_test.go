package http

import (
	"bytes"
	"context"
	"io"
	"net"
	"strconv"
	"testing"

	"github.com/chihaya/chihaya/frontend/frontendtest"
)

// BenchmarkLoopback measures whole announces over loopback TCP, the
// client's share included: with a new connection each (accept, read,
// parse, reply, close) and on one kept-alive connection. It uses only the
// frontend's public behaviour, so that it runs unchanged against older
// trees for before/after comparisons.
func BenchmarkLoopback(b *testing.B) {
	for _, keepAlive := range []bool{false, true} {
		name := "new-conn"
		if keepAlive {
			name = "keep-alive"
		}
		b.Run(name, func(b *testing.B) {
			f, err := NewFrontend(frontendtest.NewLogic(), Config{Addr: "127.0.0.1:0", EnableKeepAlive: keepAlive}.WithDefaults())
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { f.Stop(context.Background()) })
			head := "GET " + announceURL("", "/announce", 1) + " HTTP/1.1\r\nHost: x\r\n"
			if !keepAlive {
				head += "Connection: close\r\n"
			}
			req := []byte(head + "\r\n")
			buf := make([]byte, 16<<10)
			var c net.Conn
			b.ReportAllocs()
			for b.Loop() {
				if c == nil {
					if c, err = net.Dial("tcp", f.Addr().String()); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				if err := readWholeReply(c, buf); err != nil {
					b.Fatal(err)
				}
				if !keepAlive {
					c.Close()
					c = nil
				}
			}
			if c != nil {
				c.Close()
			}
		})
	}
}

// readWholeReply reads one reply with a Content-Length from c.
func readWholeReply(c net.Conn, buf []byte) error {
	n := 0
	for {
		m, err := c.Read(buf[n:])
		n += m
		if end := bytes.Index(buf[:n], []byte("\r\n\r\n")); end >= 0 {
			i := bytes.Index(buf[:end], []byte("Content-Length: "))
			if i < 0 {
				return io.ErrUnexpectedEOF
			}
			j := bytes.IndexByte(buf[i:end+2], '\r')
			length, perr := strconv.Atoi(string(buf[i+16 : i+j]))
			if perr != nil {
				return perr
			}
			if n >= end+4+length {
				return nil
			}
		}
		if err != nil {
			return err
		}
		if n == len(buf) {
			return io.ErrShortBuffer
		}
	}
}
