//go:build unix && !linux

package proctest

import "syscall"

// procAttr puts the program in a process group of its own (only Linux can
// also have it killed with the test binary).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
