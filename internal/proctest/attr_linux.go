package proctest

import "syscall"

// procAttr puts the program in a process group of its own, and has the
// kernel kill it if the test binary dies first.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
