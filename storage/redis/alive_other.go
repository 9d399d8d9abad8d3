//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package redis

// peekAlive cannot peek at a socket here (Windows, and the systems
// without MSG_DONTWAIT): the connection is taken as open, and a batch on
// one Redis closed fails as a broken connection would.
func peekAlive(uintptr) bool { return true }
