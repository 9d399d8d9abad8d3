//go:build !unix

package http

import "errors"

// Elsewhere (Windows) every connection is a net.Conn: these are never
// called.

var errNoRawSocket = errors.New("frontend/http: no raw socket calls on this system")

func sysRead(int, []byte) (int, error)  { return 0, errNoRawSocket }
func sysWrite(int, []byte) (int, error) { return 0, errNoRawSocket }
func sysClose(int)                      {}
func sysShutdownWrite(int) error        { return errNoRawSocket }
