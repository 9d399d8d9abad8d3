package http

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"

	"github.com/chihaya/chihaya/frontend/frontendtest"
)

// BenchmarkLoopbackServerAllocs is BenchmarkLoopback's new connection per
// request with a client made of plain system calls, which allocate
// nothing: what allocs/op counts is the server's (Linux only).
func BenchmarkLoopbackServerAllocs(b *testing.B) {
	f, err := NewFrontend(frontendtest.NewLogic(), Config{Addr: "127.0.0.1:0"}.WithDefaults())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Stop(context.Background()) })
	sa := syscallAddr(b, f.Addr())
	req := []byte("GET " + announceURL("", "/announce", 1) + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	buf := make([]byte, 16<<10)
	b.ReportAllocs()
	for b.Loop() {
		if err := syscallRequest(sa, req, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// syscallAddr is a's address for syscall.Connect.
func syscallAddr(b *testing.B, a net.Addr) *syscall.SockaddrInet4 {
	ta, ok := a.(*net.TCPAddr)
	if !ok || ta.IP.To4() == nil {
		b.Fatalf("%v is not an IPv4 TCP address", a)
	}
	sa := &syscall.SockaddrInet4{Port: ta.Port}
	copy(sa.Addr[:], ta.IP.To4())
	return sa
}

// syscallRequest sends req on a new blocking connection to sa, reads the
// reply until the server closes, and closes, with plain system calls.
func syscallRequest(sa *syscall.SockaddrInet4, req, buf []byte) error {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	if err := syscall.Connect(fd, sa); err != nil {
		return err
	}
	if _, err := syscall.Write(fd, req); err != nil {
		return err
	}
	got := 0
	for {
		n, err := syscall.Read(fd, buf[got:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		got += n
	}
	if got < 12 || string(buf[:12]) != "HTTP/1.1 200" {
		return errors.New("not a 200 reply: " + string(buf[:got]))
	}
	return nil
}
