//go:build !linux

package daemontest

import "syscall"

const sigterm = syscall.SIGTERM

func sysProcAttr() *syscall.SysProcAttr { return nil }
