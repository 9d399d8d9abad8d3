//go:build !linux

package websocket

import "net"

// poller: on systems other than Linux every connection keeps its reader
// goroutine (see park_linux.go).
type poller struct{}

func newPoller() *poller              { return nil }
func (p *poller) stop()               {}
func (p *poller) add(*conn, net.Conn) {}
func (p *poller) remove(*conn)        {}
func (p *poller) arm(*conn) error     { return nil }

// useSocket: wait reads through net.Conn.
func (p *peekConn) useSocket() {}
