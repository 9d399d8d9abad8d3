//go:build !linux

package daemontest

import "syscall"

const (
	sigterm = syscall.SIGTERM
	sighup  = syscall.SIGHUP
)

func sysProcAttr() *syscall.SysProcAttr { return nil }
