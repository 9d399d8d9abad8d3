package daemontest

import "syscall"

const (
	sigterm = syscall.SIGTERM
	sighup  = syscall.SIGHUP
)

// sysProcAttr has the daemon killed with the test binary (Pdeathsig),
// should the test itself be killed before its cleanup runs.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
